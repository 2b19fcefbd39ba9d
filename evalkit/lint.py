"""Lint a router config: warnings a valid config can still deserve (pure).

``router_config.load_router_config`` enforces the schema and limits (an error: exit 2);
``lint_router`` then looks for what is legal but likely wrong:

- ``short-description``: a custom task description under 12 words. The router decides from the
  description alone; a few words cannot say what prompts the task takes and what it outputs.
- ``duplicate-description`` / ``near-identical-descriptions``: two tasks described the same way
  (after normalising case, punctuation and spacing), or nearly so (TF-IDF cosine over salient
  terms at least 0.80, or a character-sequence ratio at least 0.90). The router cannot tell
  them apart. No model is loaded: ``evalkit overlap`` gives the embedding evidence.
- ``fallback-costs-more``: a fallback model whose blended price (3 input : 1 output tokens)
  is above every priced model of the task pools it backs, so unmatched traffic is the most
  expensive traffic. Models missing from the price catalog are reported as ``info``.
- ``task-name-not-slug``: a custom task name that is not lowercase words of ``a-z0-9`` joined
  by ``-`` or ``_`` (the name is what the route header reports; scripts and gates match it).
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from itertools import combinations
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.cost import Price
    from evalkit.router_config import RouterConfig

Level = Literal["error", "warning", "info"]

MIN_DESCRIPTION_WORDS = 12
NEAR_IDENTICAL_TFIDF = 0.80
NEAR_IDENTICAL_RATIO = 0.90
SLUG_RE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")


class Finding(BaseModel):
    """One lint result: what, where (a JSON path of the config), how to fix it."""

    level: Level
    code: str
    where: str
    message: str
    fix: str | None = None


def blended_price(price: "Price") -> float:
    """USD per million tokens for a 3:1 input:output mix (a typical chat request)."""
    return (3 * price.input + price.output) / 4


def _normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _desc_path(i: int) -> str:
    return f"policies[{i}].custom_task.description"


def lint_router(config: "RouterConfig", prices: "dict[str, Price] | None" = None) -> list[Finding]:
    """Warnings (and info) about a valid router config, in config order."""
    findings: list[Finding] = []
    custom = [(i, t) for i, t in enumerate(config.tasks) if not t.preset]
    for i, task in custom:
        if not SLUG_RE.match(task.name):
            findings.append(Finding(
                level="warning", code="task-name-not-slug", where=f"policies[{i}].custom_task.name",
                message=f"task name '{task.name}' is not a slug",
                fix="use lowercase letters and digits joined by '-' or '_', e.g. 'customer-qa'"))
        n_words = len(task.description.split())
        if n_words < MIN_DESCRIPTION_WORDS:
            findings.append(Finding(
                level="warning", code="short-description", where=_desc_path(i),
                message=f"task '{task.name}' has a {n_words}-word description (under {MIN_DESCRIPTION_WORDS})",
                fix="say what prompts this task takes and what it outputs (a category label, a prose answer, "
                    "a step-by-step explanation...), in one or two sentences"))
    findings.extend(_similar_descriptions(custom))
    if prices is not None:
        findings.extend(_fallback_cost(config, prices))
    return findings


def _similar_descriptions(custom: list) -> list[Finding]:
    from evalkit.overlap import tfidf_matrix

    if len(custom) < 2:
        return []
    tfidf, _ = tfidf_matrix([t.description for _, t in custom])
    sims = tfidf @ tfidf.T if tfidf.size else None
    findings = []
    for (x, (_i, a)), (y, (j, b)) in combinations(enumerate(custom), 2):
        na, nb = _normalise(a.description), _normalise(b.description)
        if na == nb:
            findings.append(Finding(
                level="warning", code="duplicate-description", where=_desc_path(j),
                message=f"tasks '{a.name}' and '{b.name}' have the same description",
                fix=f"describe what sets '{b.name}' apart, or merge the two tasks"))
            continue
        cosine = float(sims[x, y]) if sims is not None else 0.0
        ratio = SequenceMatcher(None, na, nb, autojunk=False).ratio()
        if cosine >= NEAR_IDENTICAL_TFIDF or ratio >= NEAR_IDENTICAL_RATIO:
            findings.append(Finding(
                level="warning", code="near-identical-descriptions", where=_desc_path(j),
                message=(f"tasks '{a.name}' and '{b.name}' have near-identical descriptions "
                         f"(TF-IDF cosine {cosine:.2f}, text ratio {ratio:.2f})"),
                fix="rewrite one around what its prompts ask for and what it outputs; "
                    "`evalkit overlap` shows the shared terms"))
    return findings


def _fallback_cost(config: "RouterConfig", prices: "dict[str, Price]") -> list[Finding]:
    findings: list[Finding] = []
    pool_models = sorted({m for t in config.tasks for m in t.models})
    for m in [*pool_models, *config.fallback_models]:
        if m not in prices and not any(f.where == m for f in findings):
            findings.append(Finding(level="info", code="unpriced-model", where=m,
                                    message=f"model '{m}' is not in the price catalog: the cost check skips it",
                                    fix="add it to a catalog and pass --prices FILE"))
    priced = [(blended_price(prices[m]), m) for m in pool_models if m in prices]
    if not priced:
        return findings
    top_price, top_model = max(priced)
    for k, m in enumerate(config.fallback_models):
        if m in prices and blended_price(prices[m]) > top_price:
            findings.append(Finding(
                level="warning", code="fallback-costs-more", where=f"fallback_models[{k}]",
                message=(f"fallback model '{m}' costs ${blended_price(prices[m]):.2f}/M tokens (blended 3:1), more "
                         f"than every model of the pools it backs (the most expensive, '{top_model}', costs "
                         f"${top_price:.2f}/M)"),
                fix="use a fallback model no more expensive than the task pools, so unmatched prompts "
                    "are not the costliest traffic"))
    return findings
