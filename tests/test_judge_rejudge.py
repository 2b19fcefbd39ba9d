"""Judging a stored run again (`evalkit judge RUN`): a judge that cannot be reached loses no earlier
grade, a failed grade gives way to the earlier reply for the very same prompt, and the run's key
variable is remembered (its name only) and used by default at the same URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.judge import JudgeRecord, PairRecord, keep_earlier
from tests.conftest import cli_env, run_cli, write_suite
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_judge_e2e import JUDGE_KEY, JUDGE_MODEL, judge_handler, prompt_of, read_jsonl, router_handler

def judged_run(tmp_path: Path, judge: FakeOpenAI, env: dict[str, str], ids: tuple[str, ...] = ("c1", "c2"),
               key_env: str = "JUDGE_KEY") -> Path:
    """A run of the e2e router stand-in, judged once by ``judge``; returns its directory."""
    suite = write_suite(tmp_path / "mini", [{"id": i, "prompt": prompt_of(i), "expected_route": "classify"}
                                            for i in ids])
    with FakeOpenAI(router_handler) as router:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", router.base_url, "--out", tmp_path / "out",
                       "--judge", JUDGE_MODEL, "--judge-base-url", judge.base_url, "--judge-api-key-env", key_env,
                       "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return next((tmp_path / "out" / "mini").iterdir())


def test_failed_grade_keeps_the_earlier_reply_for_the_same_prompt(tmp_path):
    """Judged once; judged again (no cache) by a judge that refuses every call about case c2: c1 is
    graded anew, c2 keeps its earlier grades, and the run is not reported as unreachable."""
    env = cli_env(JUDGE_KEY=JUDGE_KEY, EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    down_for_c2 = False

    def handler(body: dict[str, Any], headers: dict[str, str]) -> Reply:
        if down_for_c2 and "Case c2:" in json.dumps(body):
            return Reply(status=400, error_message="bad judge request")
        return judge_handler(body, headers)

    with FakeOpenAI(handler) as judge:
        run_dir = judged_run(tmp_path, judge, env)
        first = {(r["id"], r["criterion"]): r for r in read_jsonl(run_dir / "judge.jsonl")}
        assert {r["status"] for r in first.values()} == {"scored"}
        down_for_c2 = True
        n_before = len(judge.requests)
        proc = run_cli("judge", run_dir, "--judge-api-key-env", "JUDGE_KEY", "--no-judge-cache", "--quiet", env=env)
        asked = [json.dumps(b) for b in judge.requests[n_before:]]
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert sum("Case c1:" in a for a in asked) == 2 and sum("Case c2:" in a for a in asked) == 2  # all sent again
    rows = {(r["id"], r["criterion"]): r for r in read_jsonl(run_dir / "judge.jsonl")}
    for criterion in ("correctness", "completeness"):
        kept = rows[("c2", criterion)]
        assert (kept["status"], kept["score"], kept["rationale"]) == (
            "scored", first[("c2", criterion)]["score"], first[("c2", criterion)]["rationale"])
        assert kept["cost_usd"] == 0.0 and kept["prompt_tokens"] == 0  # nothing paid for it this time
        assert rows[("c1", criterion)]["status"] == "scored"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["judge"]["overall"]["correctness"]["n"] == 2
    assert summary["judge"]["overall"]["correctness"]["n_error"] == 0


def _record(status: str, *, sha: str | None = "p1", model: str = JUDGE_MODEL, version: str = "v1",
            samples: list[int | None] | None = None, score: float | None = None) -> JudgeRecord:
    return JudgeRecord(id="c1", criterion="correctness", status=status, score=score, judge_model=model,  # type: ignore[arg-type]
                       prompt_version=version, prompt_sha256=sha, samples=samples or [None], cost_usd=0.5,
                       prompt_tokens=10)


def test_keep_earlier_only_for_the_same_case_model_version_prompt_and_samples():
    earlier = [_record("scored", samples=[4], score=4.0)]
    error = _record("error")
    merged, kept = keep_earlier([error], earlier)
    assert kept == 1 and (merged[0].status, merged[0].score, merged[0].cost_usd) == ("scored", 4.0, 0.0)
    # a new reply (scored or unscored) is never replaced
    assert keep_earlier([_record("unscored")], earlier) == ([_record("unscored")], 0)
    # another answer or prompt, judge model, prompt version or sample count: the error stands
    for other in (_record("error", sha="p2"), _record("error", model="other-judge"), _record("error", version="v2"),
                  _record("error", samples=[None, None, None])):
        assert keep_earlier([other], earlier) == ([other], 0)
    # an earlier row written before prompts were fingerprinted cannot prove it graded this answer
    assert keep_earlier([error], [_record("scored", sha=None, samples=[4], score=4.0)]) == ([error], 0)
    # an earlier error is nothing to keep
    assert keep_earlier([error], [_record("error")]) == ([error], 0)
    # pairwise verdicts follow the same rule
    pair = PairRecord(id="c1", status="scored", winner="router", orders=["router", "router"], judge_model=JUDGE_MODEL,
                      prompt_version="v1", prompt_sha256="p1")
    failed = PairRecord(id="c1", status="error", orders=[None, None], judge_model=JUDGE_MODEL, prompt_version="v1",
                        prompt_sha256="p1")
    merged_pairs, kept_pairs = keep_earlier([failed], [pair])
    assert kept_pairs == 1 and merged_pairs[0].winner == "router"


def test_rejudge_uses_the_key_variable_the_run_was_judged_with(tmp_path):
    """Judged with --judge-api-key-env JUDGE_KEY; judged again without the option: JUDGE_KEY's key
    is sent (not MODEL_ACCESS_KEY's), the manifest holds the variable's name and never the key;
    another URL does not get the run's key by default, and an explicit --judge-api-key-env wins."""
    other_key = "sk-other-secret-0815"
    default_key = "sk-default-secret-1234"
    env = cli_env(JUDGE_KEY=JUDGE_KEY, OTHER_KEY=other_key, MODEL_ACCESS_KEY=default_key,
                  EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    with FakeOpenAI(judge_handler) as judge, FakeOpenAI(judge_handler) as elsewhere:
        run_dir = judged_run(tmp_path, judge, env, ids=("c1",))
        manifest = (run_dir / "manifest.json").read_text()
        assert json.loads(manifest)["judge"]["api_key_env"] == "JUDGE_KEY" and JUDGE_KEY not in manifest

        def keys_sent(*args: str, env: dict[str, str] = env) -> dict[str, set[str]]:
            judge.request_headers.clear()
            elsewhere.request_headers.clear()
            proc = run_cli("judge", run_dir, *args, "--no-judge-cache", "--quiet", env=env)
            assert proc.returncode == 0, proc.stderr + proc.stdout
            return {name: {h["authorization"] for h in server.request_headers}
                    for name, server in (("judge", judge), ("elsewhere", elsewhere))}

        assert keys_sent() == {"judge": {f"Bearer {JUDGE_KEY}"}, "elsewhere": set()}
        # the remembered variable is named when it is not set
        proc = run_cli("judge", run_dir, env={k: v for k, v in env.items() if k != "JUDGE_KEY"})
        assert proc.returncode == 2
        assert "environment variable JUDGE_KEY is not set (the variable this run was judged with)" in proc.stderr
        assert keys_sent("--judge-base-url", elsewhere.base_url) == {"judge": set(),
                                                                     "elsewhere": {f"Bearer {default_key}"}}
        assert keys_sent("--judge-base-url", judge.base_url, "--judge-api-key-env", "OTHER_KEY") == {
            "judge": {f"Bearer {other_key}"}, "elsewhere": set()}
        assert json.loads((run_dir / "manifest.json").read_text())["judge"]["api_key_env"] == "OTHER_KEY"
