"""evalkit/overlap.py and `evalkit overlap`: evidence, severity, suggestions, weak descriptions."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalkit.overlap import find_overlaps, output_type, terms
from evalkit.records import Case, CaseResult
from evalkit.router_config import parse_router_config
from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli, write_suite

TRANSLATE = "Translate text between human languages and output only the translation in the target language."
SUMMARIZE = "Summarize a long document or meeting transcript into a brief summary paragraph of its key points."
CODEGEN = "Generate Python source code for a function from a specification and return the code block."


def router(*descriptions: str, names: tuple[str, ...] = ("a", "b", "c", "d")) -> Any:
    return parse_router_config({
        "name": "t",
        "policies": [{"custom_task": {"name": n, "description": d}, "models": ["m"]}
                     for n, d in zip(names, descriptions)],
        "fallback_models": ["m"],
    })


def pair(report: Any, a: str, b: str) -> Any:
    for p in report.pairs:
        if set(p.tasks) == {a, b}:
            return p
    raise AssertionError(f"no pair {a}/{b}")


def result(cid: str, expected: str, route: str | None, status: str = "ok") -> CaseResult:
    return CaseResult(id=cid, expected_route=expected, route=route, status=status, prompt=f"prompt {cid}")


# --- pure: static evidence -------------------------------------------------------------------


def test_terms_drop_stop_words_and_boilerplate_and_stem_plurals() -> None:
    assert terms("Answer the user's questions about billing plans and invoices") == \
        ["answer", "question", "billing", "plan", "invoice"]


def test_embedding_cosine_decides_static_severity() -> None:
    cfg = router(TRANSLATE, SUMMARIZE, CODEGEN)
    # a.b = 0.9 (near-identical meaning), c orthogonal to both.
    vectors = np.array([[1.0, 0.0, 0.0], [0.9, math.sqrt(1 - 0.81), 0.0], [0.0, 0.0, 1.0]])
    report = find_overlaps(cfg, description_vectors=vectors)
    ab = pair(report, "a", "b")
    assert ab.severity == "high"
    assert ab.evidence["embedding_cosine"] == pytest.approx(0.9)
    assert pair(report, "a", "c").severity == "none"
    assert pair(report, "b", "c").severity == "none"
    assert report.pairs[0].tasks == ["a", "b"]  # most severe first


def test_shared_terms_and_tfidf_cosine_are_reported() -> None:
    cfg = router("Answer billing questions about invoices and refunds with a short prose answer.",
                 "Classify a billing ticket about invoices into one category label.")
    p = pair(find_overlaps(cfg), "a", "b")
    assert set(p.evidence["shared_terms"]) == {"billing", "invoice"}
    assert p.evidence["tfidf_cosine"] > 0
    assert p.evidence["embedding_cosine"] is None  # no vectors given
    assert any("'billing'" in s for s in p.suggestions)


def test_terms_most_descriptions_use_are_not_a_pairs_shared_terms() -> None:
    cfg = router("Answer billing questions about refunds in prose.", "Classify billing tickets about refunds into a label.",
                 "Translate billing documents into French.", "Summarize billing reports into key points.")
    report = find_overlaps(cfg)
    assert pair(report, "a", "b").evidence["shared_terms"] == ["refund"]  # 'billing' is in all four
    assert pair(report, "c", "d").evidence["shared_terms"] == []


def test_identical_wording_is_high_from_tfidf_alone() -> None:
    cfg = router("Answer billing questions about invoices, charges and refunds for a customer.",
                 "Answer customer billing questions about invoices, refunds and charges.")
    p = pair(find_overlaps(cfg), "a", "b")
    assert p.evidence["tfidf_cosine"] == pytest.approx(1.0)
    assert p.severity == "high"


def test_output_types_are_detected() -> None:
    assert output_type("Classify a support message into one category") == "a category label"
    assert output_type("Answer a customer question about plans") == "a prose answer"
    assert output_type("Work out the maths and give a step-by-step explanation") == "a step-by-step explanation"
    assert output_type("Billing and invoices") is None
    assert output_type("Handle card requests. Output: a confirmation of the action.") == "a confirmation of the action"


# --- pure: suite evidence --------------------------------------------------------------------


def test_prompts_between_two_tasks_are_counted_with_examples() -> None:
    cfg = router(TRANSLATE, SUMMARIZE, CODEGEN)
    cases = [Case(id="1", prompt="p1", expected_route="a"), Case(id="2", prompt="p2", expected_route="b"),
             Case(id="3", prompt="p3", expected_route="fallback"), Case(id="4", prompt="p4", expected_route="c")]
    scores = np.array([
        [0.50, 0.48, 0.10],  # a/b, gap 0.02: between
        [0.30, 0.40, 0.00],  # gap 0.10: not between
        [0.06, 0.05, 0.00],  # under the fallback threshold: goes to fallback, not between
        [0.20, 0.00, 0.22],  # a/c, gap 0.02: between
    ])
    report = find_overlaps(cfg, cases=cases, prompt_scores=scores, margin=0.05, threshold=0.10)
    ab = pair(report, "a", "b").evidence["suite"]
    assert ab["n_between"] == 1
    assert [e["id"] for e in ab["examples"]] == ["1"]
    assert ab["rate"] == pytest.approx(1 / 2)  # prompts 1 and 2 involve the pair
    assert pair(report, "a", "c").evidence["suite"]["n_between"] == 1
    assert pair(report, "b", "c").evidence["suite"]["n_between"] == 0
    assert pair(report, "b", "c").severity == "none"


# --- pure: run evidence ----------------------------------------------------------------------


def run_results() -> list[CaseResult]:
    out = []
    out += [result(f"a{i}", "a", "a") for i in range(7)] + [result(f"a{i}", "a", "b") for i in range(7, 10)]
    out += [result(f"b{i}", "b", "b") for i in range(8)] + [result("b8", "b", "a"), result("b9", "b", "c")]
    out += [result(f"c{i}", "c", "c") for i in range(10)]
    out += [result("f0", "fallback", "c"), result("f1", "fallback", "fallback")]
    out += [result("e0", "a", None, status="error")]  # errors are not misroutes
    return out


def test_run_confusion_between_a_pair_is_symmetric_with_misrouted_prompts() -> None:
    report = find_overlaps(router(TRANSLATE, SUMMARIZE, CODEGEN), results=run_results())
    ab = pair(report, "a", "b")
    run = ab.evidence["run"]
    assert (run["a_to_b"], run["b_to_a"]) == (3, 1)
    assert run["support"] == {"a": 10, "b": 10}
    assert run["confusion_rate"] == pytest.approx(4 / 20)
    assert run["share_of_misroutes"] == pytest.approx(4 / 5)
    assert sorted(m["id"] for m in run["misrouted"]) == ["a7", "a8", "a9", "b8"]
    assert ab.severity == "high"
    assert report.pairs[0].tasks == ["a", "b"]
    bc = pair(report, "b", "c")
    assert (bc.evidence["run"]["a_to_b"], bc.evidence["run"]["b_to_a"]) == (1, 0)
    assert bc.severity == "low"
    assert pair(report, "a", "c").severity == "none"


def test_pairs_are_ordered_by_off_diagonal_mass() -> None:
    results = ([result(f"x{i}", "a", "c") for i in range(6)] + [result(f"y{i}", "b", "c") for i in range(3)]
               + [result(f"z{i}", t, t) for i, t in enumerate("abc" * 10)])
    report = find_overlaps(router(TRANSLATE, SUMMARIZE, CODEGEN), results=results)
    assert [p.tasks for p in report.pairs[:2]] == [["a", "c"], ["b", "c"]]
    assert report.pairs[0].severity == "high"


def test_with_a_run_static_similarity_alone_drops_one_level() -> None:
    # c = 0.6 b + 0.8 e3: a.b = 0.95 (high without a run), b.c = 0.6 (medium), a.c = 0.57 (medium).
    b = [0.95, math.sqrt(1 - 0.95 ** 2), 0.0]
    vectors = np.array([[1.0, 0.0, 0.0], b, [0.6 * b[0], 0.6 * b[1], 0.8]])
    cfg = router(TRANSLATE, SUMMARIZE, CODEGEN)
    static = find_overlaps(cfg, description_vectors=vectors)
    assert (pair(static, "a", "b").severity, pair(static, "b", "c").severity) == ("high", "medium")
    results = [result(f"{t}{i}", t, t) for t in "abc" for i in range(5)]
    report = find_overlaps(cfg, description_vectors=vectors, results=results)
    assert pair(report, "a", "b").severity == "medium"
    assert pair(report, "b", "c").severity == "low"


# --- pure: weak descriptions -----------------------------------------------------------------


def test_weak_descriptions_label_like_generic_and_no_output_type() -> None:
    cfg = router("general questions", "Anything else a visitor wants to chat about, on any topic at all.", TRANSLATE)
    weak = {w.task: w for w in find_overlaps(cfg).weak}
    assert "label-like" in weak["a"].problems and "no-output-type" in weak["a"].problems
    assert "generic" in weak["b"].problems
    assert "c" not in weak


# --- with the packaged embedding model -------------------------------------------------------


@pytest.fixture(scope="module")
def encode() -> Any:
    from evalkit.emulator.classifier import encode as enc

    return enc


def embedded(cfg: Any, encode: Any) -> Any:
    return find_overlaps(cfg, description_vectors=encode([t.description for t in cfg.tasks]))


def test_tutorial_router_flags_classify_and_customer_qa_not_reasoning(encode: Any) -> None:
    report = embedded(parse_router_config(TUTORIAL_ROUTER), encode)
    p = pair(report, "classify", "customer-qa")
    assert p.severity in ("high", "medium")
    assert "account" in p.evidence["shared_terms"]
    assert "account" in p.reason
    assert any("category label" in s and "prose answer" in s for s in p.suggestions)
    assert pair(report, "classify", "reasoning").severity != "high"
    assert pair(report, "customer-qa", "reasoning").severity != "high"


def test_near_identical_descriptions_are_high_and_distinct_ones_are_not(encode: Any) -> None:
    near = router("Answer questions about invoices, payments and refunds with a short prose reply.",
                  "Reply in prose to questions about payments, refunds and invoices.", TRANSLATE)
    assert pair(embedded(near, encode), "a", "b").severity == "high"
    distinct = embedded(router(CODEGEN, SUMMARIZE, TRANSLATE, names=("codegen", "summarize", "translate")), encode)
    assert all(p.severity != "high" for p in distinct.pairs)


def test_results_are_deterministic(encode: Any) -> None:
    cfg = parse_router_config(TUTORIAL_ROUTER)
    assert embedded(cfg, encode).to_dict() == embedded(cfg, encode).to_dict()


# --- the command -----------------------------------------------------------------------------


def test_overlap_json_on_the_tutorial_router(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    path.write_text(json.dumps(TUTORIAL_ROUTER))
    proc = run_cli("overlap", path, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"pairs", "weak"}
    assert len(data["pairs"]) == 3
    first = data["pairs"][0]
    assert first["tasks"] == ["classify", "customer-qa"]
    assert set(first) >= {"tasks", "severity", "reason", "evidence", "suggestions"}
    assert first["evidence"]["embedding_cosine"] is not None


def test_overlap_with_suite_counts_prompts_between_tasks(tmp_path: Path) -> None:
    cases = [
        {"id": "c1", "prompt": "Classify this ticket: 'I was charged twice on my invoice'", "expected_route": "classify"},
        {"id": "q1", "prompt": "How do I change the billing email on my account?", "expected_route": "customer-qa"},
        {"id": "r1", "prompt": "Work out step by step how many servers we need for 40k requests per second.", "expected_route": "reasoning"},
    ]
    folder = write_suite(tmp_path / "s", cases)
    env = cli_env(EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    proc = run_cli("overlap", folder / "router.json", "--suite", folder, "--json", "--fail-on", "high", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1
    again = run_cli("overlap", folder / "router.json", "--suite", folder, "--json", "--fail-on", "high", env=env)
    assert again.stdout == proc.stdout  # the cached prompt embeddings give the same result
    data = json.loads(proc.stdout)
    suite = [p["evidence"]["suite"] for p in data["pairs"]]
    assert all(set(s) >= {"n_between", "rate", "examples", "margin"} for s in suite)
    assert sum(s["n_pair_prompts"] for s in suite) == 2 * 3  # each prompt counts for the two pairs of its task
    high = any(p["severity"] == "high" for p in data["pairs"])
    assert proc.returncode == (1 if high else 0)


def write_run(folder: Path, results: list[CaseResult], tasks: list[str], config_hash: str = "y") -> Path:
    folder.mkdir(parents=True)
    manifest = {
        "schema_version": 1, "evalkit_version": "0.1.0", "run_id": folder.name,
        "suite": {"name": "s", "path": "s", "hash": "x", "n_cases": len(results)},
        "router": {"name": "t", "hash": config_hash, "tasks": tasks},
        "target": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "router:t",
                   "route_header": "x-model-router-selected-route"},
        "started_at": "2026-01-01T00:00:00Z",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "results.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in results))
    return folder


def test_overlap_with_run_flags_the_confused_pair(tmp_path: Path) -> None:
    config = router(TRANSLATE, SUMMARIZE, CODEGEN)
    run_dir = write_run(tmp_path / "run", run_results(), ["a", "b", "c"], config.hash)
    path = tmp_path / "router.json"
    path.write_text(json.dumps(config.to_body()))
    proc = run_cli("overlap", path, "--run", run_dir, "--tfidf-only", "--json")
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)["pairs"][0]
    assert first["tasks"] == ["a", "b"] and first["severity"] == "high"
    assert sorted(m["id"] for m in first["evidence"]["run"]["misrouted"]) == ["a7", "a8", "a9", "b8"]
    text = run_cli("overlap", path, "--run", run_dir, "--tfidf-only")
    assert text.returncode == 0
    assert "a7" in text.stdout and "high" in text.stdout


def test_overlap_run_of_another_config_exits_2_naming_both(tmp_path: Path) -> None:
    measured = router(TRANSLATE, SUMMARIZE, CODEGEN)
    edited = router(TRANSLATE, SUMMARIZE, CODEGEN + " Only Python.")
    run_dir = write_run(tmp_path / "run", run_results(), ["a", "b", "c"], measured.hash)
    path = tmp_path / "router.improved.json"
    path.write_text(json.dumps(edited.to_body()))
    for extra in ([], ["--json"]):
        proc = run_cli("overlap", path, "--run", run_dir, "--tfidf-only", *extra)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        message = " ".join(proc.stderr.split())
        assert measured.hash in message and edited.hash in message and measured.hash != edited.hash
        assert str(run_dir / "manifest.json") in message and str(path) in message


def test_overlap_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "router.json"
    bad.write_text("{not json")
    proc = run_cli("overlap", bad, "--tfidf-only")
    assert proc.returncode == 2
    assert "invalid JSON" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("overlap", bad, "--fail-on", "severe")
    assert proc.returncode == 2 and "--fail-on" in proc.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps(TUTORIAL_ROUTER))
    proc = run_cli("overlap", good, "--run", tmp_path / "nope", "--tfidf-only")
    assert proc.returncode == 2 and "run directory not found" in proc.stderr


def test_run_summary_and_report_carry_the_overlap_section(tmp_path: Path) -> None:
    cases = [
        {"id": "c1", "prompt": "Classify this ticket: 'I was charged twice on my invoice'", "expected_route": "classify"},
        {"id": "q1", "prompt": "How do I change the billing email on my account?", "expected_route": "customer-qa"},
        {"id": "q2", "prompt": "Can I pause my subscription for a month?", "expected_route": "customer-qa"},
        {"id": "r1", "prompt": "Work out step by step how many servers we need for 40k requests per second.", "expected_route": "reasoning"},
    ]
    folder = write_suite(tmp_path / "s", cases)
    proc = run_cli("run", folder, "--out", tmp_path / "runs", "--quiet")
    assert proc.returncode == 0, proc.stderr
    run_dir = next((tmp_path / "runs" / "s").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["overlap"]) == 3
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    tasks = ["classify", "customer-qa", "reasoning"]
    for p in summary["overlap"]:
        a, b = p["tasks"]
        expected_ids = sorted(r["id"] for r in results
                              if {r["expected_route"], r["route"]} == {a, b} and r["route"] in tasks)
        assert sorted(m["id"] for m in p["evidence"]["run"]["misrouted"]) == expected_ids
        assert p["evidence"]["embedding_cosine"] is not None  # local run: the encoder is shared
    html = (run_dir / "report.html").read_text()
    assert "Overlapping task descriptions" in html and "classify / customer-qa" in html


# --- TF-IDF without scikit-learn at run time -------------------------------------------------


def test_stop_words_are_scikit_learns_english_list() -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from evalkit.overlap import STOP_WORDS

    assert STOP_WORDS == ENGLISH_STOP_WORDS


@pytest.mark.parametrize("descriptions", [
    [t["custom_task"]["description"] for t in TUTORIAL_ROUTER["policies"]],
    [CODEGEN, CODEGEN, "Translate a support ticket into English, keeping product names and codes unchanged."],
    ["Answer billing questions about invoices and refunds.", "Answer billing questions about plans.", "Refunds."],
])
def test_tfidf_matrix_equals_scikit_learns_vectorizer(descriptions: list[str]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from evalkit.overlap import terms, tfidf_matrix

    matrix, vocab = tfidf_matrix(descriptions)
    vectorizer = TfidfVectorizer(analyzer=terms, sublinear_tf=True, norm="l2")
    expected = vectorizer.fit_transform(descriptions).toarray()
    assert vocab == list(vectorizer.get_feature_names_out())
    assert matrix == pytest.approx(expected)


def test_tfidf_matrix_of_boilerplate_only_is_empty() -> None:
    from evalkit.overlap import tfidf_matrix

    matrix, vocab = tfidf_matrix(["Handle the user request.", "Use the given input."])
    assert vocab == [] and matrix.shape == (2, 0)


def test_tfidf_only_medium_from_shared_terms_names_the_rule_the_docs_give(tmp_path: Path) -> None:
    """Without an embedding, 2 shared terms make classify/customer-qa medium: the docs' Severity
    table must give that rule (not only the one that needs an embedding cosine >= 0.30), and the
    output must say the TF-IDF-only rule was used."""
    docs = " ".join((Path(__file__).resolve().parents[1] / "docs" / "overlap-and-lint.md").read_text().split())
    path = tmp_path / "router.json"
    path.write_text(json.dumps(TUTORIAL_ROUTER))
    proc = run_cli("overlap", path, "--tfidf-only", "--json")
    p = pair_of(json.loads(proc.stdout)["pairs"], "classify", "customer-qa")
    assert p["severity"] == "medium" and p["evidence"]["embedding_cosine"] is None
    assert p["evidence"]["tfidf_cosine"] < 0.40 and len(p["evidence"]["shared_terms"]) == 2
    rule = p["evidence"]["static_rule"]
    assert "without an embedding" in rule
    assert "without an embedding: 2+ shared terms alone" in docs and f"`{rule}`" in docs
    # with an embedding the shared-terms rule still needs the cosine the docs name
    from evalkit.overlap import EMBED_LOW, static_rule

    assert static_rule(EMBED_LOW - 0.01, 0.1, 2)[0] == "low" and static_rule(EMBED_LOW, 0.1, 2)[0] == "medium"
    text = " ".join(run_cli("overlap", path, "--tfidf-only").stdout.split())
    assert "TF-IDF-only rule" in text and f"static rule: {rule}" in text


def pair_of(pairs: list[dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    return next(p for p in pairs if set(p["tasks"]) == {a, b})
