"""The bad-input catalogue: malformed router configs, suites, CLI arguments, price files and run
folders, each through the real CLI in a subprocess. Every one must exit 2 with a message that
names the file, line or field and says how to fix it, print no traceback, and leave every file
that existed before byte-identical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from evalkit import SCHEMA_VERSION
from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli, write_suite

GOOD_CASES = [
    {"id": "q1", "prompt": "My invoice shows a duplicate charge", "expected_route": "classify"},
    {"id": "q2", "prompt": "Write a haiku about the sea", "expected_route": "fallback"},
]


@dataclass
class Bad:
    """One catalogue entry: ``setup(tmp)`` writes files and returns the CLI arguments."""

    setup: Callable[[Path], list[str]]
    expect: list[str]                       # every one must appear in the message
    env: dict[str, str] = field(default_factory=dict)


def suite_with(tmp: Path, cases=None, *, router=None, suite_yaml=None, cases_name="cases.jsonl") -> Path:
    return write_suite(tmp / "suite", GOOD_CASES if cases is None else cases, router=router,
                       suite_yaml=suite_yaml, cases_name=cases_name)


def run_args(tmp: Path, *extra: str, **suite_kw) -> list[str]:
    return ["run", str(suite_with(tmp, **suite_kw)), "--out", str(tmp / "runs"), "-q", *extra]


def router_text(tmp: Path, text: str | bytes, *extra: str) -> list[str]:
    args = run_args(tmp, *extra)
    path = tmp / "suite" / "router.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return args


def router_edit(tmp: Path, edit: Callable[[dict], None]) -> list[str]:
    body = json.loads(json.dumps(TUTORIAL_ROUTER))
    edit(body)
    return run_args(tmp, router=body)


def cases_text(tmp: Path, text: str | bytes, name: str = "cases.jsonl") -> list[str]:
    args = run_args(tmp, cases_name=name)
    (tmp / "suite" / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return args


def prices_text(tmp: Path, text: str) -> list[str]:
    (tmp / "prices.yaml").write_text(text)
    return run_args(tmp, "--prices", str(tmp / "prices.yaml"))


def manifest_dict(**over) -> dict:
    data = {
        "schema_version": SCHEMA_VERSION, "evalkit_version": "0.1.0", "run_id": "20260101T000000Z-abcdef",
        "suite": {"name": "suite", "path": "suite", "hash": "0123456789ab", "n_cases": 2},
        "router": {"name": "cost-governance-demo", "hash": "0123456789ab",
                   "tasks": ["classify", "customer-qa", "reasoning"]},
        "target": {"kind": "local", "base_url": "http://127.0.0.1:1/v1", "model": "router:cost-governance-demo",
                   "route_header": "x-model-router-selected-route"},
        "started_at": "2026-01-01T00:00:00Z",
    }
    data.update(over)
    return data


GOOD_RESULT = {"id": "q1", "expected_route": "classify", "route": "classify", "status": "ok"}


def run_folder(tmp: Path, *, manifest: str | bytes | None = None, results: str | bytes | None = None,
               command: str = "report") -> list[str]:
    folder = tmp / "runs" / "suite" / "20260101T000000Z-abcdef"
    folder.mkdir(parents=True)
    m = manifest if manifest is not None else json.dumps(manifest_dict())
    (folder / "manifest.json").write_bytes(m if isinstance(m, bytes) else m.encode())
    r = results if results is not None else json.dumps(GOOD_RESULT) + "\n"
    (folder / "results.jsonl").write_bytes(r if isinstance(r, bytes) else r.encode())
    if command == "report":
        return ["report", str(folder)]
    return run_args(tmp, "--resume", str(folder))


CATALOGUE: dict[str, Bad] = {
    # --- router configs ---
    "router-truncated-json": Bad(lambda t: router_text(t, json.dumps(TUTORIAL_ROUTER, indent=2)[:300]),
                                 ["router.json:", "invalid JSON", "fix:"]),
    "router-empty-file": Bad(lambda t: router_text(t, ""), ["router.json", "router config is empty", "fix:"]),
    "router-binary-file": Bad(lambda t: router_text(t, bytes(range(256)) * 8), ["router.json", "not UTF-8", "fix:"]),
    "router-top-level-list": Bad(lambda t: router_text(t, "[1, 2, 3]"), ["router.json", "must be a JSON object", "fix:"]),
    "router-policies-wrong-type": Bad(lambda t: router_edit(t, lambda b: b.update(policies="classify")),
                                      ["router.json at policies", "non-empty list", "fix:"]),
    "router-pool-of-four": Bad(lambda t: router_edit(t, lambda b: b["policies"][0].update(models=["a", "b", "c", "d"])),
                               ["policies[0].models", "at most 3", "fix:"]),
    "router-bad-prefer": Bad(lambda t: router_edit(t, lambda b: b["policies"][0].update(selection_policy={"prefer": "smartest"})),
                             ["policies[0].selection_policy.prefer", "cheapest", "fix:"]),
    "router-name-uppercase": Bad(lambda t: router_edit(t, lambda b: b.update(name="My Router")),
                                 ["router.json at name", "lowercase", "fix:"]),
    "router-task-name-not-ascii": Bad(lambda t: router_edit(t, lambda b: b["policies"][1]["custom_task"].update(name="客户问答")),
                                      ["router.json at policies[1].custom_task.name", "客户问答",
                                       "outside printable ASCII", "HTTP response header", "rename it with ASCII", "fix:"]),
    "router-deeply-nested": Bad(lambda t: router_text(t, "[" * 200_000), ["router.json", "nested too deeply", "fix:"]),
    "router-name-over-255": Bad(lambda t: router_edit(t, lambda b: b.update(name="r" * 300)),
                                ["router.json at name", "300 characters", "at most 255", "fix:"]),
    "router-option-is-a-folder": Bad(lambda t: run_args(t, "--router", str(t)),
                                     ["expected a router config file, got a folder", "fix:"]),
    # --- suites ---
    "suite-path-missing": Bad(lambda t: ["run", str(t / "nowhere")], ["nowhere", "suite not found", "fix:"]),
    "suite-folder-without-suite-yaml": Bad(lambda t: (t / "empty").mkdir() or ["run", str(t / "empty")],
                                           ["empty", "no suite.yaml in this folder", "fix:"]),
    "suite-yaml-empty": Bad(lambda t: run_args(t, suite_yaml=" \n"), ["suite.yaml", "suite file is empty", "fix:"]),
    "suite-yaml-invalid": Bad(lambda t: run_args(t, suite_yaml="name: x\nrouter: [router.json\ncases: c.jsonl\n"),
                              ["suite.yaml:", "invalid YAML", "fix:"]),
    "suite-yaml-unknown-key": Bad(lambda t: run_args(t, suite_yaml="name: x\nrouterr: router.json\n"),
                                  ["suite.yaml:2", "unknown key 'routerr'", "fix:"]),
    "suite-yaml-is-a-list": Bad(lambda t: run_args(t, suite_yaml="- name: x\n"), ["suite.yaml", "must be a mapping", "fix:"]),
    "cases-truncated-json": Bad(lambda t: cases_text(t, json.dumps(GOOD_CASES[0]) + "\n" + json.dumps(GOOD_CASES[1])[:25] + "\n"),
                                ["cases.jsonl:2", "invalid JSON", "line 2 ends before its JSON object does",
                                 "a newline inside a string?", "fix:"]),
    # Python says "line 2 column 1" of the one-line document for this: the line, not a column, is the news.
    "cases-line-cut-mid-object": Bad(lambda t: cases_text(t, '{"id": "q1", "prompt": "hi",\n'),
                                     ["cases.jsonl:1", "line 1 ends before its JSON object does", "fix:"]),
    # '{"id": "q1", "prompt": "a' is 25 characters: the tab is the 26th.
    "cases-raw-tab-in-string": Bad(lambda t: cases_text(t, '{"id": "q1", "prompt": "a\tb", "expected_route": "classify"}\n'),
                                   ["cases.jsonl:1", "raw control character", "inside a string at column 26",
                                    "escape it as \\t / \\n", "fix:"]),
    "cases-two-objects-on-a-line": Bad(lambda t: cases_text(t, json.dumps(GOOD_CASES[0]) + " " + json.dumps(GOOD_CASES[1]) + "\n"),
                                       ["cases.jsonl:1", "more than one JSON value on line 1",
                                        f"column {len(json.dumps(GOOD_CASES[0])) + 2}", "fix:"]),
    "cases-deeply-nested": Bad(lambda t: cases_text(t, '{"id": ' + "[" * 200_000 + "\n"),
                               ["cases.jsonl:1", "fix:"]),
    "cases-line-is-a-list": Bad(lambda t: cases_text(t, '["q1", "hi", "classify"]\n'),
                                ["cases.jsonl:1", "must be a JSON object", "fix:"]),
    "suite-name-path-traversal": Bad(lambda t: run_args(t, suite_yaml="name: ../../escape\n"),
                                     ["suite.yaml:1", "suite name must be", "fix:"]),
    "cases-unknown-task": Bad(lambda t: run_args(t, cases=[{**GOOD_CASES[0], "expected_route": "billing"}]),
                              ["cases.jsonl:1", "unknown task 'billing'", "classify, customer-qa, reasoning, fallback"]),
    "cases-one-megabyte-prompt": Bad(lambda t: run_args(t, cases=[{**GOOD_CASES[0], "prompt": "x" * 1_000_000}]),
                                     ["cases.jsonl:1", "1,000,000 characters", "fix:"]),
    "cases-binary-file": Bad(lambda t: cases_text(t, b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
                             ["cases.jsonl:1", "not UTF-8", "fix:"]),
    "cases-empty-file": Bad(lambda t: cases_text(t, ""), ["cases.jsonl", "no cases", "fix:"]),
    "cases-duplicate-id": Bad(lambda t: run_args(t, cases=[GOOD_CASES[0], GOOD_CASES[0]]),
                              ["cases.jsonl:2", "duplicate id 'q1'", "fix:"]),
    "cases-prompt-wrong-type": Bad(lambda t: run_args(t, cases=[{**GOOD_CASES[0], "prompt": 42}]),
                                   ["cases.jsonl:1", "'prompt' must be a string", "fix:"]),
    "cases-unknown-field": Bad(lambda t: run_args(t, cases=[{**GOOD_CASES[0], "expected": "classify"}]),
                               ["cases.jsonl:1", "unknown field 'expected'", "fix:"]),
    "cases-broken-turn-order": Bad(lambda t: run_args(t, cases=[
        {"id": "a", "prompt": "hi", "expected_route": "customer-qa", "session": "s", "turn": 2}]),
        ["cases.jsonl:1", "broken turn order", "fix:"]),
    "cases-file-missing": Bad(lambda t: run_args(t, suite_yaml="name: s\ncases: gone.jsonl\n"),
                              ["gone.jsonl", "case file not found", "fix:"]),
    "suite-yaml-every-problem-at-once": Bad(lambda t: run_args(t, suite_yaml=(
        "name: s\nrouter: nope.json\ncases: nope.jsonl\ngates: [\"acuracy >= 0.5\"]\nfoo: 1\n")),
        ["4 problems", "suite.yaml:2: router config not found", "nope.json", "suite.yaml:3: case file not found",
         "nope.jsonl", "suite.yaml:4: unknown metric 'acuracy'", "suite.yaml:5: unknown key 'foo'", "fix:"]),
    "cases-unsupported-type": Bad(lambda t: cases_text(t, "hello", name="cases.txt"),
                                  ["cases.txt", "unsupported case file type", "fix:"]),
    "cases-outside-the-suite": Bad(lambda t: (t / "elsewhere.jsonl").write_text(json.dumps(GOOD_CASES[0]) + "\n")
                                   and run_args(t, suite_yaml="name: s\ncases: ../elsewhere.jsonl\n"),
                                   ["suite.yaml", "cases file must be inside the suite folder", "fix:"]),
    "suite-yaml-alias-bomb": Bad(lambda t: run_args(t, suite_yaml="name: s\nx: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"x{i}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))),
                                 ["suite.yaml", "YAML aliases expand", "fix:"]),
    "cases-csv-huge-cell": Bad(lambda t: cases_text(t, 'id,prompt,expected_route\nq1,"' + "x" * 1_100_000 + '",classify\n',
                                                    name="cases.csv"),
                               ["cases.csv:2", "over 1,048,576 characters", "fix:"]),
    "cases-csv-extra-cell": Bad(lambda t: cases_text(t, "id,prompt,expected_route\nq1,hi,there,classify\n", name="cases.csv"),
                                ["cases.csv:2", "more cells than the header", "fix:"]),
    # --- command-line arguments ---
    "cli-concurrency-zero": Bad(lambda t: run_args(t, "--concurrency", "0"), ["--concurrency", "at least 1", "fix:"]),
    "cli-threshold-over-one": Bad(lambda t: run_args(t, "--threshold", "2"), ["--threshold", "between 0 and 1", "found: 2", "fix:"]),
    "cli-concurrency-not-a-number": Bad(lambda t: run_args(t, "--concurrency", "lots"), ["Invalid value for '--concurrency'", "valid integer", "--help"]),
    "cli-out-is-a-file": Bad(lambda t: (t / "out.txt").write_text("keep me") and
                             ["run", str(suite_with(t)), "--out", str(t / "out.txt"), "-q"],
                             ["--out", "output folder is a file", "fix:"]),
    "cli-unknown-target": Bad(lambda t: run_args(t, "--target", "azure"), ["--target", "unknown target 'azure'", "fix:"]),
    "cli-upstream-without-url": Bad(lambda t: run_args(t, "--upstream", "gpt"), ["--upstream", "SLUG=URL", "fix:"]),
    "cli-error-budget-over-one": Bad(lambda t: run_args(t, "--max-error-rate", "1.5"), ["--max-error-rate", "between 0 and 1", "fix:"]),
    "cli-negative-rpm": Bad(lambda t: run_args(t, "--rpm", "-5"), ["--rpm", "fix:"]),
    "cli-negative-retries": Bad(lambda t: run_args(t, "--retries", "-1"), ["--retries", "fix:"]),
    "cli-zero-timeout": Bad(lambda t: run_args(t, "--timeout", "0"), ["--timeout", "positive", "fix:"]),
    "cli-openai-without-base-url": Bad(lambda t: run_args(t, "--target", "openai"), ["--base-url", "fix:"]),
    # options of another kind of target would be ignored, and the run would measure another router
    "cli-base-url-without-remote-target": Bad(lambda t: run_args(t, "--base-url", "http://127.0.0.1:9/v1", "--model", "m"),
                                              ["--base-url, --model are for a remote router", "--target local",
                                               "fix: add --target openai"]),
    "cli-local-option-on-a-remote-target": Bad(lambda t: run_args(t, "--target", "openai", "--base-url",
                                                                  "http://127.0.0.1:9/v1", "--threshold", "0.2"),
                                               ["--threshold is for the embedded local router", "--target openai", "fix:"]),
    "cli-api-url-without-do": Bad(lambda t: run_args(t, "--target", "openai", "--base-url", "http://127.0.0.1:9/v1",
                                                     "--api-url", "http://127.0.0.1:9"), ["--api-url", "--target do", "fix:"]),
    "cli-base-url-without-scheme": Bad(lambda t: run_args(t, "--target", "openai", "--base-url", "me:pw@notaurl/v1"),
                                       ["--base-url", "not an http(s) URL", "found: notaurl/v1", "fix:"]),
    "cli-do-target-with-a-token": Bad(lambda t: run_args(t, "--target", "do"), ["MODEL_ACCESS_KEY", "personal access token", "fix:"],
                                      env={"MODEL_ACCESS_KEY": "dop_v1_" + "0" * 64}),
    "cli-do-target-without-key": Bad(lambda t: run_args(t, "--target", "do"), ["MODEL_ACCESS_KEY is not set", "fix:"],
                                     env={"MODEL_ACCESS_KEY": ""}),
    "cli-cache-dir-is-a-file": Bad(lambda t: (t / "cachefile").write_text("x") and run_args(t, "--cache"),
                                   ["cachefile", "cannot create the response cache folder", "EVALKIT_CACHE_DIR"], env={"EVALKIT_CACHE_DIR": "{tmp}/cachefile"}),
    # --- price files ---
    "prices-truncated-yaml": Bad(lambda t: prices_text(t, "models:\n  a: {input: 0.1, output: [\n"), ["prices.yaml", "invalid YAML", "fix:"]),
    "prices-negative": Bad(lambda t: prices_text(t, "models:\n  m1: {input: -1, output: 0.4}\n"),
                           ["prices.yaml at models.m1.input", "non-negative", "fix:"]),
    "prices-no-models": Bad(lambda t: prices_text(t, "gpt: 1\n"), ["prices.yaml", "'models' mapping", "fix:"]),
    "prices-file-missing": Bad(lambda t: run_args(t, "--prices", str(t / "nope.yaml")), ["nope.yaml", "price file not found", "fix:"]),
    # --- run folders ---
    "run-folder-without-manifest": Bad(lambda t: (t / "r").mkdir() or ["report", str(t / "r")],
                                       ["no manifest.json", "fix:"]),
    "run-folder-truncated-manifest": Bad(lambda t: run_folder(t, manifest=json.dumps(manifest_dict())[:80]),
                                         ["manifest.json", "not valid JSON", "fix:"]),
    "run-folder-newer-schema": Bad(lambda t: run_folder(t, manifest=json.dumps(manifest_dict(schema_version=SCHEMA_VERSION + 1))),
                                   ["manifest.json", f"schema version {SCHEMA_VERSION + 1}", "newer", "fix:"]),
    "run-folder-manifest-wrong-type": Bad(lambda t: run_folder(t, manifest=json.dumps(manifest_dict(suite="s"))),
                                          ["manifest.json", "field 'suite'", "fix:"]),
    "run-folder-garbage-results-line": Bad(lambda t: run_folder(t, results=json.dumps(GOOD_RESULT) + "\nnot json\n"
                                                                + json.dumps({**GOOD_RESULT, "id": "q2"}) + "\n"),
                                           ["results.jsonl:2", "not valid JSON", "fix:"]),
    "run-folder-results-line-cut-short": Bad(lambda t: run_folder(t, results=json.dumps(GOOD_RESULT) + "\n"
                                                                  + json.dumps({**GOOD_RESULT, "id": "q2"})[:30] + "\n"
                                                                  + json.dumps({**GOOD_RESULT, "id": "q3"}) + "\n"),
                                             ["results.jsonl:2", "not valid JSON", "line 2 ends before its JSON object does",
                                              "fix:"]),
    "run-folder-result-wrong-status": Bad(lambda t: run_folder(t, results=json.dumps({**GOOD_RESULT, "status": "maybe"}) + "\n"),
                                          ["results.jsonl:1", "field 'status'", "fix:"]),
    "run-folder-binary-results": Bad(lambda t: run_folder(t, results=b"\x00\xff\xfe" * 50 + b"\n"),
                                     ["results.jsonl:1", "fix:"]),
    "run-folder-no-results": Bad(lambda t: (run_folder(t), (t / "runs/suite/20260101T000000Z-abcdef/results.jsonl").unlink())[0],
                                 ["no results.jsonl", "fix:"]),
    "resume-missing-folder": Bad(lambda t: run_args(t, "--resume", str(t / "gone")), ["gone", "run directory not found", "fix:"]),
    "resume-other-suite": Bad(lambda t: run_folder(t, command="resume"), ["manifest.json", "not of the suite given", "fix:"]),
    "resume-newer-schema": Bad(lambda t: run_folder(t, manifest=json.dumps(manifest_dict(schema_version=99)), command="resume"),
                               ["schema version 99", "fix:"]),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_catalogue_is_large_enough():
    groups = {name.split("-")[0] for name in CATALOGUE}
    assert len(CATALOGUE) >= 25 and {"router", "suite", "cases", "cli", "prices", "run", "resume"} <= groups


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_bad_input_exits_2_with_a_clear_message_and_damages_nothing(name, tmp_path):
    bad = CATALOGUE[name]
    args = bad.setup(tmp_path)
    env = cli_env(**{k: v.replace("{tmp}", str(tmp_path)) for k, v in bad.env.items()})
    before = snapshot(tmp_path)
    proc = run_cli(*args, cwd=tmp_path, env=env, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    message = " ".join(output.split())  # the console wraps long lines
    for needle in bad.expect:
        assert needle in message, f"{needle!r} not in: {output}"
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "runs").exists() or all(
        p.name in ("manifest.json", "results.jsonl") for p in (tmp_path / "runs").rglob("*") if p.is_file())
