"""``evalkit suite from-traffic``: a request log in, a suite folder out.

Read and scrub the log (``logs``), sample it (``sample``), optionally ask a labeler model for a
second opinion (``labeler``), then write the suite folder in one step: the files are written
into a temporary folder beside ``out`` and renamed into place, so a failure leaves nothing
half-written and an existing suite is never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from evalkit.errors import RunError, UsageError
from evalkit.records import FALLBACK
from evalkit.redact import safe_url
from evalkit.router_config import RouterConfig, load_router_config
from evalkit.scrub import KINDS, PLACEHOLDERS, Scrubber
from evalkit.suites import SUITE_NAME_RE, load_suite
from evalkit.traffic.labeler import LabelerSettings, propose_labels, transcript
from evalkit.traffic.logs import SKIP_REASONS, LogFields, LogReadout, read_log
from evalkit.traffic.sample import (DEFAULT_FLOOR, DEFAULT_NEAR_DUPLICATE, DEFAULT_SAMPLE, SampleStats, Unit,
                                    exact_dedup, sample_units)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

DISAGREE_TAG = "labeler-disagrees"
README_TEMPLATE = Path(__file__).parent / "suite_readme.md.jinja2"
MAX_SAMPLE = 100_000


@dataclass
class TrafficOptions:
    """Everything ``suite from-traffic`` can be told, checked by ``validate``."""

    fields: LogFields = field(default_factory=LogFields)
    sample: int = DEFAULT_SAMPLE
    floor: int = DEFAULT_FLOOR
    seed: int = 0
    near_duplicate: float = DEFAULT_NEAR_DUPLICATE
    phone_region: str = "US"
    skip_unknown_routes: bool = False
    name: str | None = None
    labeler: LabelerSettings | None = None

    def validate(self) -> None:
        if not 1 <= self.sample <= MAX_SAMPLE:
            raise UsageError(f"the sample size must be between 1 and {MAX_SAMPLE:,}", where="--sample",
                             got=str(self.sample), fix="e.g. --sample 300 (the default)")
        if self.floor < 0:
            raise UsageError("the floor per route cannot be negative", where="--floor", got=str(self.floor),
                             fix="e.g. --floor 10 (the default): every route gets at least 10 cases when it has them")
        if not 0.5 <= self.near_duplicate <= 1.0:
            raise UsageError("the near-duplicate similarity must be between 0.5 and 1", where="--near-duplicate",
                             got=str(self.near_duplicate), fix="e.g. --near-duplicate 0.95 (the default); 1 keeps "
                                                               "everything but exact duplicates")
        if self.name is not None and not SUITE_NAME_RE.match(self.name):
            raise UsageError("a suite name is letters, digits, '.', '_' or '-', starting with a letter or digit",
                             where="--name", got=repr(self.name), fix="e.g. --name support-traffic")


@dataclass
class TrafficReport:
    """What ``build_suite`` did (printed by the command, in ``--json`` and in the suite's README)."""

    out: str
    log: str
    router: str
    n_rows: int
    n_requests: int
    skipped: dict[str, int]
    scrubbed_log: dict[str, int]
    scrubbed_suite: dict[str, int]
    observed_routes: dict[str, int]
    sample: SampleStats
    n_cases: int
    case_routes: dict[str, int]
    n_sessions: int
    labeler: dict[str, Any] | None = None
    malformed_lines: list[int] = field(default_factory=list)  # the first lines that were not JSON objects

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["sample"] = dict(self.sample.__dict__)
        return data


def build_suite(log: str | Path, router_path: str | Path, out: str | Path, options: TrafficOptions, *,
                encode: Callable[[list[str]], "np.ndarray"] | None = None, labeler_key: str | None = None,
                labeler_client: Any = None, status: Callable[[str], None] = lambda s: None) -> TrafficReport:
    """Read, scrub, sample and (optionally) label a log, and write the suite folder ``out``."""
    options.validate()
    if options.labeler is not None and labeler_key is None and labeler_client is None:
        raise UsageError(f"no labeler key: environment variable {options.labeler.api_key_env} is not set",
                         where="--labeler-api-key-env",
                         fix=f"export {options.labeler.api_key_env}=<key>, or name another variable with "
                             "--labeler-api-key-env")
    out = Path(out)
    _check_out(out)
    router = load_router_config(router_path)
    name = options.name or _suite_name(out)
    try:
        scrubber = Scrubber(region=options.phone_region)
    except ValueError:
        raise UsageError("unknown phone region", where="--phone-region", got=repr(options.phone_region),
                         fix="an ISO 3166 country code such as US, GB, DE or FR") from None
    labels = router.labels
    status(f"reading {log}")
    readout = read_log(log, options.fields, labels=labels, scrubber=scrubber,
                       skip_unknown_routes=options.skip_unknown_routes)
    units, n_exact = exact_dedup(readout.conversations, readout.routes)
    if encode is None:
        from evalkit.emulator.classifier import encode as default_encode

        encode = default_encode
    status(f"sampling {options.sample} cases from {len(units)} distinct conversations (embedding the candidates)")
    chosen, stats = sample_units(units, n=options.sample, floor=options.floor,
                                 near_duplicate=options.near_duplicate, seed=options.seed, encode=encode)
    stats.n_conversations = len(readout.conversations)
    stats.n_exact_duplicates = n_exact
    cases = cases_from_units(chosen, labels)
    labeler_block = None
    if options.labeler is not None:
        status(f"asking {options.labeler.model} for a second label on {len(cases)} cases")
        labeler_block = _label(cases, options.labeler, labeler_key, router, client=labeler_client)
    scrubbed_suite = _scrub_counts(cases)
    report = TrafficReport(
        out=str(out), log=str(log), router=str(router_path), n_rows=readout.n_rows,
        n_requests=readout.n_requests, skipped=dict(readout.skipped), scrubbed_log=_by_kind(readout.scrubbed),
        scrubbed_suite=scrubbed_suite, observed_routes=_ordered(readout.routes, labels), sample=stats,
        n_cases=len(cases), case_routes=_ordered(Counter(c["expected_route"] for c in cases), labels),
        n_sessions=len({c["session"] for c in cases if c.get("session")}), labeler=labeler_block,
        malformed_lines=list(readout.malformed_lines))
    _write_suite(out, name, Path(router_path), cases, report, options, readout)
    return report


def cases_from_units(units: list[Unit], labels: list[str]) -> list[dict[str, Any]]:
    """Case dicts in suite order (by task, then as sampled); ids derive from the text, so they are
    stable across samples of the same log."""
    order = {label: i for i, label in enumerate(labels)}
    ranked = sorted(enumerate(units), key=lambda p: (order.get(p[1].stratum, len(order)), p[0]))
    cases: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, unit in ranked:
        base = "tr-" + unit.key[:10]
        while base in seen:  # two texts sharing a 40-bit prefix: keep ids unique
            base += "x"
        seen.add(base)
        requests = unit.conversation.requests
        if len(requests) == 1:
            cases.append(_case(base, requests[0].messages, requests[0].route, plain=requests[0].plain_prompt))
            continue
        for turn, request in enumerate(requests, start=1):
            own = request.messages if turn == 1 else _new_messages(request.messages)
            case = _case(f"{base}-t{turn}", own, request.route, plain=False)
            case.update(session=base, turn=turn)
            cases.append(case)
    return cases


def _new_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """A later turn's own messages: those after the last assistant message (the runner carries the history)."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    own = messages[last + 1:]
    if last < 0:
        own = [m for m in messages if m["role"] not in ("system", "developer")] or messages
    return own


def _case(cid: str, messages: list[dict[str, str]], route: str, *, plain: bool) -> dict[str, Any]:
    case: dict[str, Any] = {"id": cid}
    if len(messages) == 1 and messages[0]["role"] == "user":
        case["prompt"] = messages[0]["content"]
    else:
        case["messages"] = [dict(m) for m in messages]
    case.update(expected_route=route, label_source="router", reviewed=False, router_route=route)
    return case


def _label(cases: list[dict[str, Any]], settings: LabelerSettings, key: str | None, router: RouterConfig, *,
           client: Any) -> dict[str, Any]:
    histories = _histories(cases)
    texts = [transcript(histories[c["id"]]) for c in cases]
    outcome = propose_labels(settings, key or "none", texts, router, client=client)
    if cases and outcome.failures["error"] == len(cases):
        raise RunError("the labeler could not be reached: every call failed", where=safe_url(settings.base_url),
                       got=outcome.first_error,
                       fix="check --labeler-base-url, the model name and its key; nothing was written")
    disagree = 0
    for case, route in zip(cases, outcome.routes):
        case["labeler_route"] = route
        if route is not None and route != case["router_route"]:
            case["tags"] = [DISAGREE_TAG]
            disagree += 1
    return {"model": settings.model, "n_proposed": sum(r is not None for r in outcome.routes),
            "n_disagreements": disagree, "n_errors": outcome.failures["error"],
            "n_unparseable": outcome.failures["unparseable"], "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens}


def _histories(cases: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Each case's conversation up to and including its own message (sessions: earlier turns' user
    messages; the log's assistant replies are not kept in later turns)."""
    out: dict[str, list[dict[str, str]]] = {}
    running: dict[str, list[dict[str, str]]] = {}
    for case in cases:
        own = case.get("messages") or [{"role": "user", "content": case["prompt"]}]
        session = case.get("session")
        history = running.get(session, []) if session else []
        full = [*history, *own]
        out[case["id"]] = full
        if session:
            running[session] = full
    return out


def _scrub_counts(cases: list[dict[str, Any]]) -> dict[str, int]:
    """Placeholders in the written cases, by kind (counts, never values)."""
    text = "\n".join(json.dumps(c.get("prompt") or c.get("messages"), ensure_ascii=False) for c in cases)
    return {kind: text.count(PLACEHOLDERS[kind]) for kind in KINDS if PLACEHOLDERS[kind] in text}


def _by_kind(counts: Counter[str]) -> dict[str, int]:
    return {kind: counts[kind] for kind in KINDS if counts.get(kind)}


def _ordered(counts: Counter[str], labels: list[str]) -> dict[str, int]:
    order = {label: i for i, label in enumerate(labels)}
    return {r: counts[r] for r in sorted(counts, key=lambda r: (order.get(r, len(order)), r))}


def _suite_name(out: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", out.resolve().name).strip("-._") or "traffic"
    return name[:100] if name[0].isalnum() else "t" + name[:99]


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError("the output folder is a file", where=f"--out {out}",
                         fix="give a new folder with --out (it is created; nothing is overwritten)")
    if out.exists() and any(out.iterdir()):
        raise UsageError("the output folder already exists and is not empty", where=str(out),
                         fix="give a new folder with --out (nothing is overwritten), or delete this one first")


def _write_suite(out: Path, name: str, router_path: Path, cases: list[dict[str, Any]], report: TrafficReport,
                 options: TrafficOptions, readout: LogReadout) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.copyfile(router_path, tmp / "router.json")
        description = (f"Sampled from the request log {Path(report.log).name}; expected routes are the router's own "
                       "until reviewed")
        spec = {"name": name, "description": description, "router": "router.json", "cases": "cases.jsonl"}
        (tmp / "suite.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
        with (tmp / "cases.jsonl").open("w", encoding="utf-8") as fh:
            for case in cases:
                fh.write(json.dumps(case, ensure_ascii=False) + "\n")
        (tmp / "README.md").write_text(render_readme(name, report, options), encoding="utf-8")
        load_suite(tmp)  # what we wrote must load: a failure here is a bug, caught before anything is in place
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def malformed_lines(report: TrafficReport) -> str:
    """``line 36`` / ``lines 3, 9, 36, …``: where the log's malformed lines are (the first ones)."""
    lines = report.malformed_lines
    if not lines:
        return ""
    more = ", …" if report.skipped.get("malformed", 0) > len(lines) else ""
    return f"line{'s' if len(lines) > 1 or more else ''} {', '.join(map(str, lines))}{more}"


def render_readme(name: str, report: TrafficReport, options: TrafficOptions) -> str:
    """The suite's README: where the cases came from, what was removed and scrubbed, what is next."""
    import jinja2

    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    template = env.from_string(README_TEMPLATE.read_text(encoding="utf-8"))
    rows = []
    for route in report.observed_routes | report.case_routes:
        rows.append({"route": route, "observed": report.observed_routes.get(route, 0),
                     "cases": report.case_routes.get(route, 0)})
    return template.render(
        name=name, r=report, options=options, fields=options.fields, route_rows=rows,
        skipped=[{"reason": SKIP_REASONS[k], "n": n,
                  "lines": malformed_lines(report) if k == "malformed" else ""} for k, n in report.skipped.items() if n],
        kinds=[{"kind": k, "placeholder": PLACEHOLDERS[k], "log": report.scrubbed_log.get(k, 0),
                "suite": report.scrubbed_suite.get(k, 0)} for k in KINDS],
        fallback=FALLBACK, created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        log_name=Path(report.log).name, out=report.out)
