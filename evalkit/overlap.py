"""Overlapping and weak task descriptions (pure, given embeddings and scores).

A router's accuracy is decided by its task descriptions. Two descriptions that lean on the same
topic words pull the same prompts; a description that is a bare label, or that sounds like every
other task's prompts, catches traffic it should not. This module scores every pair of tasks from
up to three kinds of evidence and flags weak descriptions:

- static: embedding cosine of the two descriptions (the local router's encoder), TF-IDF cosine
  over the router's descriptions, and the salient terms both descriptions use;
- suite: how many prompts the local classifier places *between* the pair (its top two tasks are
  this pair and the margin between them is under ``margin``), with examples;
- run: the symmetric confusion between the pair in a stored run, with the misrouted prompts.

Severity (``high`` > ``medium`` > ``low`` > ``none``) is the strongest level any evidence
reaches (thresholds below, documented in docs/overlap-and-lint.md). With a run, measured
confusion is the strongest evidence, so the static level drops one step (high to medium,
medium to low).

Nothing here loads a model or reads a file: callers pass description vectors (unit-normalised)
and per-prompt score rows (``EmbeddingClassifier.scores_for``), which keeps this testable and
deterministic.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import combinations
from typing import TYPE_CHECKING, Any, Literal, Sequence, TypeVar

from pydantic import BaseModel, Field

from evalkit.records import Case, CaseResult

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from evalkit.router_config import RouterConfig

Severity = Literal["high", "medium", "low", "none"]
SEVERITIES: tuple[Severity, ...] = ("none", "low", "medium", "high")

# Static thresholds. MiniLM cosines of unrelated task descriptions sit around 0.0-0.45
# (code generation / summarization / translation: 0.18-0.43 however worded); related but
# different scopes reach about 0.67 ("Answer billing questions." / "Answer account
# questions."); paraphrases of one scope start about 0.70 and reworded copies exceed 0.9.
EMBED_HIGH = 0.70
EMBED_MEDIUM = 0.50
EMBED_LOW = 0.30
TFIDF_HIGH = 0.70
TFIDF_MEDIUM = 0.40
SHARED_TERMS_MEDIUM = 2      # this many shared salient terms, plus EMBED_LOW, make a pair medium

# Suite thresholds: share of the pair's prompts that fall between the two tasks.
AMBIGUOUS_MARGIN = 0.05
BETWEEN_HIGH = 0.25
BETWEEN_MEDIUM = 0.10

# Run thresholds: symmetric confusion rate, or the pair's share of all task-to-task misroutes.
CONFUSION_HIGH = 0.10
CONFUSION_MEDIUM = 0.03
MASS_SHARE_HIGH = 0.25
MASS_SHARE_MEDIUM = 0.10
MIN_MASS_HIGH = 3
MIN_MASS_MEDIUM = 2

# With a run, measured confusion decides: similar descriptions the run did not confuse drop one
# level (near-identical ones stay visible as medium; the suite may lack cases for one of them).
STATIC_WITH_RUN: dict[str, Severity] = {"high": "medium", "medium": "low", "low": "low", "none": "none"}

MAX_EXAMPLES = 5
MAX_PROMPT_CHARS = 300
MAX_SHARED_TERMS = 8

# English stop words: the Glasgow Information Retrieval Group list, as scikit-learn ships it
# (``sklearn.feature_extraction.text.ENGLISH_STOP_WORDS``; tests check that the two are equal).
# Kept here because importing scikit-learn costs a run more than the rest of its analysis.
STOP_WORDS = frozenset("""
a about above across after afterwards again against all almost alone along already also although
always am among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere
are around as at back be became because become becomes becoming been before beforehand behind being
below beside besides between beyond bill both bottom but by call can cannot cant co con could
couldnt cry de describe detail do done down due during each eg eight either eleven else elsewhere
empty enough etc even ever every everyone everything everywhere except few fifteen fifty fill find
fire first five for former formerly forty found four from front full further get give go had has
hasnt have he hence her here hereafter hereby herein hereupon hers herself him himself his how
however hundred i ie if in inc indeed interest into is it its itself keep last latter latterly
least less ltd made many may me meanwhile might mill mine more moreover most mostly move much must
my myself name namely neither never nevertheless next nine no nobody none noone nor not nothing now
nowhere of off often on once one only onto or other others otherwise our ours ourselves out over
own part per perhaps please put rather re same see seem seemed seeming seems serious several she
should show side since sincere six sixty so some somehow someone something sometime sometimes
somewhere still such system take ten than that the their them themselves then thence there
thereafter thereby therefore therein thereupon these they thick thin third this those though three
through throughout thru thus to together too top toward towards twelve twenty two un under until up
upon us very via was we well were what whatever when whence whenever where whereafter whereas
whereby wherein whereupon wherever whether which while whither who whoever whole whom whose why
will with within without would yet you your yours yourself yourselves
""".split())

# Words that every router description uses for its input; sharing them says nothing about topic.
BOILERPLATE = frozenset("""
task tasks prompt prompts request requests user users message messages text texts query queries
input inputs output outputs given use using used may might can could should would one two
following type types kind kinds various related like part etc e g eg i.e ie also must need needs
short long based whether such any thing things way ways include includes including
multi non pre sub self semi anti
help helps helping handle handles handling action actions ask asks asked asking current currently
change changes changing make makes making get gets getting set sets want wants
""".split())

# Verbs a task description typically starts with (matched on the stem).
TASK_VERBS = frozenset("""
answer classify categorize categorise label tag sort route assign detect identify extract
summarize summarise translate generate write draft rewrite edit compose create produce return
explain solve analyze analyse compute calculate convert compare evaluate assess review debug fix
recommend suggest find search look book schedule plan manage track check handle help assist respond
reply chat converse perform provide give tell describe list draw make build design refactor
complete fill predict estimate forecast diagnose troubleshoot resolve process parse format
""".split())

# Phrases that say what a task outputs, and the output type each implies.
OUTPUT_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a category label", re.compile(r"\b(classif\w*|categori[sz]\w*|categor(y|ies)|label\w*|tag(s|ging)?|intent)\b")),
    ("a step-by-step explanation", re.compile(r"\b(step[- ]by[- ]step|explanation|explain\w*|derivation|proof|"
                                              r"reasoning|intermediate (steps|conclusions)|work(ed)? through)\b")),
    ("code", re.compile(r"\b(code|function|script|program|snippet|sql|regex)\b")),
    ("a summary", re.compile(r"\b(summar\w*|tl;?dr|key points)\b")),
    ("a translation", re.compile(r"\b(translat\w*)\b")),
    ("structured data", re.compile(r"\b(json|yaml|csv|table)\b")),
    ("a prose answer", re.compile(r"\b(answer\w*|repl(y|ies)|respon(d|ds|se)|advice|recommend\w*|suggest\w*)\b")),
)
EXPLICIT_OUTPUT = re.compile(r"\b(output|outputs|returns?|produces?|responds? with|replies with)\b\s*:?\s+([^.;\n]+)")
GENERIC_CUES = re.compile(r"\b(general|generic|anything|everything|miscellaneous|misc|other|any (question|topic|request)s?|"
                          r"all (kinds|sorts) of)\b")
LABEL_LIKE_MAX_WORDS = 4
NO_VERB_MAX_WORDS = 8
GENERIC_SHARE = 0.20          # share of another task's prompts a description outscores their own task on
GENERIC_STATIC_COSINE = 0.45  # mean cosine to the other descriptions


class OverlapPair(BaseModel):
    """One pair of tasks with its severity, reason, evidence and suggested edits."""

    tasks: list[str]
    severity: Severity
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    suggestions: list[str] = Field(default_factory=list)


class WeakTask(BaseModel):
    """A task whose description is label-like, generic or silent about its output."""

    task: str
    problems: list[str]
    details: dict[str, str] = Field(default_factory=dict)


class OverlapReport(BaseModel):
    """What ``evalkit overlap`` finds; ``pairs`` is also summary.json's ``overlap``."""

    pairs: list[OverlapPair]
    weak: list[WeakTask]
    evidence_kinds: list[str] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------------
# Text helpers


_TOKEN = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """A light, deterministic stem so 'plans'/'plan' and 'categories'/'category' match."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Salient term stems of a text: no stop words, boilerplate or short tokens."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if len(tok) < 3 or tok.isdigit() or tok in STOP_WORDS or tok in BOILERPLATE:
            continue
        s = stem(tok)
        if s in BOILERPLATE:
            continue
        out.append(s)
    return out


def words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def output_type(description: str) -> str | None:
    """The output type a description states, or None.

    An explicit statement ("Output: a short answer", "returns the code") wins; otherwise the
    first cue in ``OUTPUT_CUES`` order (classify -> a category label, answer -> a prose answer...).
    """
    low = description.lower()
    explicit = EXPLICIT_OUTPUT.search(low)
    if explicit:
        phrase = " ".join(explicit.group(2).split()[:10]).strip(" ,:")
        if phrase:
            return phrase
    for kind, pattern in OUTPUT_CUES:
        if pattern.search(low):
            return kind
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_PROMPT_CHARS else text[: MAX_PROMPT_CHARS - 1] + "…"


def tfidf_matrix(descriptions: Sequence[str]) -> tuple["np.ndarray", list[str]]:
    """L2-normalised TF-IDF rows of the descriptions over their salient term stems, and the terms.

    The weighting of scikit-learn's ``TfidfVectorizer(sublinear_tf=True, norm="l2")`` (tests
    check the two agree): tf = 1 + ln(count), idf = ln((1 + n) / (1 + df)) + 1, terms sorted. A
    router has a few dozen short descriptions, so a dense matrix is the simple choice.
    """
    import numpy as np

    counts = [Counter(terms(d)) for d in descriptions]
    vocab = sorted(set().union(*counts))
    if not vocab:  # no salient term at all (every description is boilerplate)
        return np.zeros((len(descriptions), 0)), []
    column = {t: j for j, t in enumerate(vocab)}
    tf = np.zeros((len(counts), len(vocab)))
    for i, c in enumerate(counts):
        for term, k in c.items():
            tf[i, column[term]] = 1.0 + np.log(k)
    df = np.count_nonzero(tf, axis=0)
    weights = tf * (np.log((1 + len(counts)) / (1 + df)) + 1.0)
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    return weights / np.where(norms == 0, 1.0, norms), vocab


# --------------------------------------------------------------------------------------------
# Evidence


def _rank(severity: Severity) -> int:
    return SEVERITIES.index(severity)


def _max(*levels: Severity) -> Severity:
    return max(levels, key=_rank)


def static_rule(embed: float | None, tfidf: float, n_shared: int) -> tuple[Severity, str]:
    """The static level of a pair and the rule that gave it (docs/overlap-and-lint.md, Severity).

    Without an embedding (``--tfidf-only``, run reports of remote targets) the shared-terms rule
    for medium cannot ask for an embedding cosine >= EMBED_LOW: 2+ shared terms alone make medium.
    """
    if embed is not None and embed >= EMBED_HIGH:
        return "high", f"embedding cosine >= {EMBED_HIGH:.2f}"
    if tfidf >= TFIDF_HIGH:
        return "high", f"TF-IDF cosine >= {TFIDF_HIGH:.2f}"
    if embed is not None and embed >= EMBED_MEDIUM:
        return "medium", f"embedding cosine >= {EMBED_MEDIUM:.2f}"
    if tfidf >= TFIDF_MEDIUM:
        return "medium", f"TF-IDF cosine >= {TFIDF_MEDIUM:.2f}"
    if n_shared >= SHARED_TERMS_MEDIUM:
        if embed is None:
            return "medium", f"{SHARED_TERMS_MEDIUM}+ shared terms without an embedding, the TF-IDF-only rule"
        if embed >= EMBED_LOW:
            return "medium", f"{SHARED_TERMS_MEDIUM}+ shared terms with embedding cosine >= {EMBED_LOW:.2f}"
    if embed is not None and embed >= EMBED_LOW:
        return "low", f"embedding cosine >= {EMBED_LOW:.2f}"
    if n_shared:
        return "low", "a shared term"
    return "none", "no rule reached"


def static_level(embed: float | None, tfidf: float, n_shared: int) -> Severity:
    return static_rule(embed, tfidf, n_shared)[0]


def pair_static_rule(pair: OverlapPair) -> str:
    """The static rule that gave a pair's description level, from its evidence (``evalkit overlap``
    prints it; summary.json's evidence is as before)."""
    ev = pair.evidence
    return static_rule(ev["embedding_cosine"], ev["tfidf_cosine"], len(ev["shared_terms"]))[1]


def suite_level(n_between: int, rate: float) -> Severity:
    if not n_between:
        return "none"
    if rate >= BETWEEN_HIGH:
        return "high"
    if rate >= BETWEEN_MEDIUM:
        return "medium"
    return "low"


def run_level(mass: int, rate: float, share: float) -> Severity:
    if mass >= MIN_MASS_HIGH and (rate >= CONFUSION_HIGH or share >= MASS_SHARE_HIGH):
        return "high"
    if mass >= MIN_MASS_MEDIUM and (rate >= CONFUSION_MEDIUM or share >= MASS_SHARE_MEDIUM):
        return "medium"
    return "low" if mass else "none"


def _between(scores: "np.ndarray", margin: float, threshold: float
             ) -> dict[tuple[int, int], list[tuple[float, int]]]:
    """For each pair (i < j): the prompts whose top two tasks are i and j within ``margin``.

    A prompt whose best score is under the fallback ``threshold`` goes to fallback, not between
    two tasks, so it is not counted.
    """
    import numpy as np

    found: dict[tuple[int, int], list[tuple[float, int]]] = {}
    if scores.shape[1] < 2:
        return found
    order = np.argsort(-scores, axis=1, kind="stable")
    top, second = order[:, 0], order[:, 1]
    rows = np.arange(len(scores))
    gaps = scores[rows, top] - scores[rows, second]
    for k in np.nonzero((gaps < margin) & (scores[rows, top] >= threshold))[0]:
        i, j = sorted((int(top[k]), int(second[k])))
        found.setdefault((i, j), []).append((float(gaps[k]), int(k)))
    return found


def _confusion_pairs(names: list[str], results: Sequence[CaseResult]) -> tuple[dict[tuple[str, str], list[CaseResult]], Counter[str]]:
    """Misrouted scored results between two tasks, by (expected, route); support per task."""
    known = set(names)
    support: Counter[str] = Counter()
    misrouted: dict[tuple[str, str], list[CaseResult]] = {}
    for r in results:
        if not r.scored:
            continue
        support[r.expected_route] += 1
        if r.route != r.expected_route and r.expected_route in known and r.route in known:
            misrouted.setdefault((r.expected_route, r.route), []).append(r)  # type: ignore[index]
    return misrouted, support


def _term_owner(term: str, a: str, b: str, weights: dict[str, dict[str, float]],
                prompt_terms: dict[str, Counter[str]] | None, descriptions: dict[str, str]) -> tuple[str, str, str]:
    """(keep_in, drop_from, why) for a shared term."""
    if prompt_terms is not None and (prompt_terms.get(a) or prompt_terms.get(b)):
        na = prompt_terms.get(a, Counter())
        nb = prompt_terms.get(b, Counter())
        ra = na[term] / max(1, na["__n__"])
        rb = nb[term] / max(1, nb["__n__"])
        if ra != rb:
            keep, drop = (a, b) if ra > rb else (b, a)
            return keep, drop, (f"{ra * 100:.1f}% of {a}'s prompts use it, {rb * 100:.1f}% of {b}'s")
    wa, wb = weights[a].get(term, 0.0), weights[b].get(term, 0.0)
    if abs(wa - wb) > 1e-9:
        keep, drop = (a, b) if wa > wb else (b, a)
        return keep, drop, f"it weighs more in {keep}'s description"
    # Tie: the description that mentions it later leans on it less.
    pa = terms(descriptions[a]).index(term) / max(1, len(terms(descriptions[a])))
    pb = terms(descriptions[b]).index(term) / max(1, len(terms(descriptions[b])))
    keep, drop = (a, b) if pa <= pb else (b, a)
    return keep, drop, f"it comes earlier in {keep}'s description"


# --------------------------------------------------------------------------------------------
# The analysis


def find_overlaps(
    router: "RouterConfig",
    *,
    description_vectors: "np.ndarray | None" = None,
    cases: Sequence[Case] = (),
    prompt_scores: "Sequence[dict[str, float]] | np.ndarray | None" = None,
    results: Sequence[CaseResult] | None = None,
    margin: float = AMBIGUOUS_MARGIN,
    threshold: float = 0.0,
    max_examples: int = MAX_EXAMPLES,
) -> OverlapReport:
    """Score every pair of tasks and flag weak descriptions.

    ``description_vectors``: unit-normalised embeddings of the task descriptions, in config
    order (None: TF-IDF and shared terms only). ``cases`` with ``prompt_scores`` (one row of
    cosine scores per case, as ``EmbeddingClassifier.scores_for`` returns): suite evidence;
    ``threshold`` is the local router's fallback threshold (prompts under it are not between
    two tasks).
    ``results``: a run's case results (run evidence).
    """
    import numpy as np

    names = router.task_names
    descriptions = {t.name: t.description for t in router.tasks}
    n = len(names)
    kinds = ["static"]
    tfidf, vocab = tfidf_matrix([descriptions[t] for t in names])
    tfidf_sims = tfidf @ tfidf.T if tfidf.size else np.zeros((n, n))
    weights = {t: {vocab[k]: float(tfidf[i, k]) for k in np.nonzero(tfidf[i])[0]} for i, t in enumerate(names)}
    embed_sims = None
    if description_vectors is not None:
        vecs = np.asarray(description_vectors, dtype=float)
        if vecs.shape[0] != n:
            raise ValueError(f"expected {n} description vectors, got {vecs.shape[0]}")
        embed_sims = vecs @ vecs.T
        kinds.insert(0, "embedding")
    suite = _SuiteEvidence.of(names, cases, prompt_scores, margin=margin, threshold=threshold,
                              max_examples=max_examples) if cases and prompt_scores is not None else None
    if suite is not None:
        kinds.append("suite")
    run = _RunEvidence.of(names, results) if results is not None else None
    if run is not None:
        kinds.append("run")

    # A term most descriptions use is the router's domain (or its boilerplate), not a pair's overlap.
    df = Counter(term for t in names for term in weights[t])
    router_wide = {term for term, k in df.items() if k > max(2, n / 2)}
    output_types = {t: output_type(descriptions[t]) for t in names}
    pairs: list[OverlapPair] = []
    for i, j in combinations(range(n), 2):
        a, b = names[i], names[j]
        embed = float(embed_sims[i, j]) if embed_sims is not None else None
        tf = float(tfidf_sims[i, j])
        shared = sorted((set(weights[a]) & set(weights[b])) - router_wide,
                        key=lambda term: (-min(weights[a][term], weights[b][term]), term))[:MAX_SHARED_TERMS]
        evidence: dict[str, Any] = {"embedding_cosine": None if embed is None else round(embed, 4),
                                    "tfidf_cosine": round(tf, 4), "shared_terms": shared}
        s_level = static_level(embed, tf, len(shared))
        levels: dict[str, Severity] = {"static": s_level}
        if suite is not None:
            evidence["suite"], levels["suite"] = suite.pair(i, j, a, b)
        if run is not None:
            evidence["run"], levels["run"] = run.pair(a, b)
            levels["static"] = STATIC_WITH_RUN[s_level]
        severity = _max(*levels.values())
        pairs.append(OverlapPair(
            tasks=[a, b], severity=severity,
            reason=_reason(a, b, severity, levels, evidence),
            evidence=evidence,
            suggestions=_suggestions(a, b, severity, shared, weights, suite.prompt_terms if suite else None,
                                     descriptions, output_types),
        ))
    pairs.sort(key=_pair_order)
    weak = weak_descriptions(router, embed_sims=embed_sims, cases=cases,
                             score_matrix=suite.scores if suite is not None else None,
                             margin=margin, output_types=output_types)
    return OverlapReport(pairs=pairs, weak=weak, evidence_kinds=kinds)


def analyse_router(router: "RouterConfig", *, cases: Sequence[Case] = (), results: Sequence[CaseResult] | None = None,
                   margin: float | None = None, embeddings: bool = True, use_cache: bool = True) -> OverlapReport:
    """``evalkit overlap``: embed the descriptions and the suite's prompts (each once; the prompts'
    vectors cached on disk), then ``find_overlaps``. ``embeddings=False``: TF-IDF and shared terms
    only, with no model load."""
    vectors = scores = None
    threshold = 0.0
    if embeddings:
        from evalkit.embedding import encode, encode_cached
        from evalkit.emulator.classifier import DEFAULT_THRESHOLD

        threshold = DEFAULT_THRESHOLD
        vectors = encode([t.description for t in router.tasks])
        if cases:
            scores = encode_cached([c.user_text for c in cases], use_cache=use_cache) @ vectors.T
    return find_overlaps(router, description_vectors=vectors, cases=list(cases) if scores is not None else (),
                         prompt_scores=scores, results=results,
                         margin=AMBIGUOUS_MARGIN if margin is None else margin, threshold=threshold)


def _pair_order(p: OverlapPair) -> tuple[Any, ...]:
    """Most severe first; then most confused in the run, most prompts between, most similar."""
    ev = p.evidence
    run = ev.get("run") or {}
    suite = ev.get("suite") or {}
    return (-_rank(p.severity), -(run.get("a_to_b", 0) + run.get("b_to_a", 0)), -suite.get("n_between", 0),
            -(ev["embedding_cosine"] if ev["embedding_cosine"] is not None else ev["tfidf_cosine"]), p.tasks)


class _SuiteEvidence:
    """A suite's prompts scored against every task: which fall between two tasks (the margin)."""

    def __init__(self, cases: Sequence[Case], scores: "np.ndarray", between: dict[tuple[int, int], list[tuple[float, int]]],
                 prompt_terms: dict[str, Counter[str]], *, margin: float, max_examples: int) -> None:
        self.cases, self.scores, self.between, self.prompt_terms = cases, scores, between, prompt_terms
        self.expected_counts = Counter(c.expected_route for c in cases)
        self.margin, self.max_examples = margin, max_examples

    @classmethod
    def of(cls, names: Sequence[str], cases: Sequence[Case], prompt_scores: Any, *, margin: float,
           threshold: float, max_examples: int) -> "_SuiteEvidence":
        import numpy as np

        if isinstance(prompt_scores, np.ndarray):
            scores = np.asarray(prompt_scores, dtype=float)
        else:
            scores = np.array([[row[t] for t in names] for row in prompt_scores], dtype=float)
        if scores.shape != (len(cases), len(names)):
            raise ValueError(f"expected a {len(cases)} x {len(names)} score matrix, got {scores.shape}")
        prompt_terms: dict[str, Counter[str]] = {}
        for c in cases:
            bag = prompt_terms.setdefault(c.expected_route, Counter())
            bag["__n__"] += 1
            bag.update(set(terms(c.user_text)))
        return cls(cases, scores, _between(scores, margin, threshold), prompt_terms, margin=margin,
                   max_examples=max_examples)

    def pair(self, i: int, j: int, a: str, b: str) -> tuple[dict[str, Any], Severity]:
        found = sorted(self.between.get((i, j), []))
        involved = {k for _, k in found} | {k for k, c in enumerate(self.cases) if c.expected_route in (a, b)}
        rate = len(found) / len(involved) if involved else 0.0
        cases, scores = self.cases, self.scores
        evidence = {
            "n_between": len(found),
            "n_pair_prompts": self.expected_counts[a] + self.expected_counts[b],
            "rate": round(rate, 4),
            "margin": self.margin,
            "examples": [{"id": cases[k].id, "expected_route": cases[k].expected_route,
                          "prompt": _clip(cases[k].user_text),
                          "scores": {a: round(float(scores[k, i]), 4), b: round(float(scores[k, j]), 4)}}
                         for _, k in found[:self.max_examples]],
        }
        return evidence, suite_level(len(found), rate)


class _RunEvidence:
    """A run's misroutes between each pair of tasks."""

    def __init__(self, misrouted: dict[tuple[str, str], list[CaseResult]], support: Counter[str]) -> None:
        self.misrouted, self.support = misrouted, support
        self.total_mass = sum(len(v) for v in misrouted.values())

    @classmethod
    def of(cls, names: Sequence[str], results: Sequence[CaseResult]) -> "_RunEvidence":
        return cls(*_confusion_pairs(list(names), results))

    def pair(self, a: str, b: str) -> tuple[dict[str, Any], Severity]:
        ab, ba = self.misrouted.get((a, b), []), self.misrouted.get((b, a), [])
        mass = len(ab) + len(ba)
        denom = self.support[a] + self.support[b]
        rate = mass / denom if denom else 0.0
        share = mass / self.total_mass if self.total_mass else 0.0
        evidence = {
            "a_to_b": len(ab), "b_to_a": len(ba), "support": {a: self.support[a], b: self.support[b]},
            "confusion_rate": round(rate, 4), "share_of_misroutes": round(share, 4),
            "misrouted": [{"id": r.id, "expected_route": r.expected_route, "route": r.route,
                           "prompt": _clip(r.prompt)} for r in sorted([*ab, *ba], key=lambda r: r.id)],
        }
        return evidence, run_level(mass, rate, share)


def _reason(a: str, b: str, severity: Severity, levels: dict[str, Severity], ev: dict[str, Any]) -> str:
    """One line naming the evidence that decided the severity."""
    static_bits = []
    if ev["embedding_cosine"] is not None:
        static_bits.append(f"embedding cosine {ev['embedding_cosine']:.2f}")
    static_bits.append(f"TF-IDF cosine {ev['tfidf_cosine']:.2f}")
    if ev["shared_terms"]:
        static_bits.append("shared terms " + ", ".join(f"'{t}'" for t in ev["shared_terms"][:4]))
    parts = {"static": "descriptions: " + ", ".join(static_bits)}
    if "run" in ev:
        r = ev["run"]
        mass = r["a_to_b"] + r["b_to_a"]
        total = r["support"][a] + r["support"][b]
        parts["run"] = (f"run: {mass} of {total} cases misrouted between them ({r['confusion_rate'] * 100:.1f}%; "
                        f"{r['a_to_b']} {a}→{b}, {r['b_to_a']} {b}→{a})")
    if "suite" in ev:
        s = ev["suite"]
        parts["suite"] = (f"suite: {s['n_between']} prompts fall between them (margin < {s['margin']:.2f}, "
                          f"{s['rate'] * 100:.0f}% of the pair's prompts)")
    # Lead with the evidence that decided the severity, then the rest, strongest kind first.
    kinds = [k for k in ("run", "suite", "static") if k in parts]
    deciding = next((k for k in kinds if levels.get(k) == severity), kinds[0])
    ordered = [deciding, *(k for k in kinds if k != deciding)]
    head = {"high": "overlap", "medium": "likely overlap", "low": "slight overlap", "none": "distinct"}[severity]
    return f"{head}: " + "; ".join(parts[k] for k in ordered)


def _suggestions(a: str, b: str, severity: Severity, shared: list[str], weights: dict[str, dict[str, float]],
                 prompt_terms: dict[str, Counter[str]] | None, descriptions: dict[str, str],
                 output_types: dict[str, str | None]) -> list[str]:
    if severity == "none":
        return []
    out: list[str] = []
    for term in shared[:4]:
        keep, drop, why = _term_owner(term, a, b, weights, prompt_terms, descriptions)
        out.append(f"drop '{term}' from {drop}'s description (or qualify it), keep it in {keep}'s: {why}")
    if severity in ("high", "medium"):
        ta, tb = output_types[a], output_types[b]
        if ta and tb and ta != tb:
            out.append(f"say what each task outputs, first: {a} outputs {ta}, {b} outputs {tb}")
        else:
            for task, kind in ((a, ta), (b, tb)):
                if kind is None:
                    out.append(f"state what {task} outputs (a category label, a prose answer, "
                               "a step-by-step explanation, code...)")
            if ta and ta == tb:
                out.append(f"both descriptions read as producing {ta}: say what distinguishes the input each "
                           f"task takes, or merge {a} and {b} into one task")
    return out


def weak_descriptions(router: "RouterConfig", *, embed_sims: "np.ndarray | None" = None,
                      cases: Sequence[Case] = (), score_matrix: "np.ndarray | None" = None,
                      margin: float = AMBIGUOUS_MARGIN, output_types: dict[str, str | None] | None = None
                      ) -> list[WeakTask]:
    """Per task: label-like, generic, or no output type stated."""
    import numpy as np

    names = router.task_names
    output_types = output_types or {t.name: output_type(t.description) for t in router.tasks}
    rows_of: dict[str, list[int]] = {}
    for k, c in enumerate(cases):
        rows_of.setdefault(c.expected_route, []).append(k)
    weak: list[WeakTask] = []
    for i, task in enumerate(router.tasks):
        problems: dict[str, str] = {}
        ws = words(task.description)
        has_verb = any(stem(w) in TASK_VERBS or w in TASK_VERBS for w in ws)
        if len(ws) <= LABEL_LIKE_MAX_WORDS or (len(ws) <= NO_VERB_MAX_WORDS and not has_verb):
            problems["label-like"] = (f"{len(ws)} words{'' if has_verb else ', no verb'}: a label, not a "
                                      "description; say what the prompts ask for and what the task outputs")
        generic_reasons = []
        cue = GENERIC_CUES.search(task.description.lower())
        if cue:
            generic_reasons.append(f"uses the catch-all word '{cue.group(0)}'")
        if score_matrix is not None and cases and len(names) > 2:
            competed = []
            for j, other in enumerate(names):
                if j == i:
                    continue
                rows = rows_of.get(other, [])
                if not rows:
                    continue
                sub = score_matrix[rows]
                share = float(np.mean(sub[:, i] > sub[:, j]))
                if share >= GENERIC_SHARE:
                    competed.append((other, share))
            if len(competed) >= max(2, len(names) // 2):
                generic_reasons.append("close to the prompts of " + ", ".join(
                    f"{o} ({s * 100:.0f}%)" for o, s in competed) + " (scores above their own task's description)")
        elif embed_sims is not None and len(names) > 2:
            others = [float(embed_sims[i, j]) for j in range(len(names)) if j != i]
            mean = sum(others) / len(others)
            if mean >= GENERIC_STATIC_COSINE:
                generic_reasons.append(f"mean cosine {mean:.2f} to the other descriptions")
        if generic_reasons:
            problems["generic"] = "; ".join(generic_reasons)
        if output_types[task.name] is None:
            problems["no-output-type"] = ("does not say what the task outputs: add it (a category label, a prose "
                                          "answer, a step-by-step explanation, code...)")
        if problems:
            weak.append(WeakTask(task=task.name, problems=list(problems), details=problems))
    return weak


# A router of n tasks has n(n-1)/2 pairs (19,900 for 200 tasks), nearly all of them low or none.
# summary.json and report.html keep every flagged pair (medium, high) and the strongest of the
# rest; ``evalkit overlap`` prints them the same way unless --all.
KEPT_BELOW_MEDIUM = 50      # summary.json / report.html
SHOWN_BELOW_MEDIUM = 20     # the terminal table of `evalkit overlap`

P = TypeVar("P", OverlapPair, dict)


def flagged(severity: str) -> bool:
    """A pair that matters: medium or high."""
    return severity in ("high", "medium")


def bound_pairs(pairs: Sequence[P], keep_below: int) -> tuple[list[P], int]:
    """Every flagged pair (medium, high), then the first ``keep_below`` of the others in the order
    given (``find_overlaps`` sorts them most severe and most similar first, so the strongest low
    pairs), and how many were left out. Pairs are ``OverlapPair`` or their JSON dicts."""
    def severity(p: P) -> str:
        return str(p["severity"] if isinstance(p, dict) else p.severity)

    kept: list[P] = []
    below = 0
    for p in pairs:
        if flagged(severity(p)):
            kept.append(p)
        elif below < keep_below:
            kept.append(p)
            below += 1
    return kept, len(pairs) - len(kept)


def severity_at_least(severity: str, floor: str) -> bool:
    return _rank(severity) >= _rank(floor)  # type: ignore[arg-type]


__all__ = ["AMBIGUOUS_MARGIN", "KEPT_BELOW_MEDIUM", "OverlapPair", "bound_pairs", "OverlapReport", "WeakTask", "find_overlaps", "output_type",
           "severity_at_least", "terms", "weak_descriptions"]
