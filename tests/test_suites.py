"""suites: suite.yaml plus JSONL / CSV / Parquet cases, columns mapping, errors with file and line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from evalkit.errors import SuiteError
from evalkit.suites import load_suite

from conftest import ROOT, run_cli, write_suite

GOOD = [
    {"id": "a", "prompt": "Classify: my card was charged twice", "expected_route": "classify"},
    {"id": "b", "prompt": "How do I add a seat?", "expected_route": "customer-qa", "tags": ["seats"]},
    {"id": "c1", "prompt": "Can I pause my plan?", "expected_route": "customer-qa", "session": "s", "turn": 1},
    {"id": "c2", "prompt": "and for how long?", "expected_route": "customer-qa", "session": "s", "turn": 2},
]


def test_loads_jsonl_cases_with_their_lines(tmp_path: Path):
    suite = load_suite(write_suite(tmp_path / "ok", GOOD))
    assert [c.id for c in suite.cases] == ["a", "b", "c1", "c2"]
    assert suite.cases[2].line == 3
    assert suite.cases[1].tags == ["seats"]
    assert suite.router.name == "cost-governance-demo"


def test_suite_yaml_path_or_folder_both_work(tmp_path: Path):
    folder = write_suite(tmp_path / "ok", GOOD)
    assert load_suite(folder / "suite.yaml").hash == load_suite(folder).hash


def test_csv_cases(tmp_path: Path):
    folder = write_suite(tmp_path / "csv", "", cases_name="cases.csv")
    (folder / "cases.csv").write_text(
        "id,prompt,expected_route,tags,session,turn\n"
        "a,\"Classify: refund, please\",classify,billing;short,,\n"
        "b,How do I export?,customer-qa,,s1,1\n")
    suite = load_suite(folder)
    assert suite.cases[0].prompt == "Classify: refund, please"
    assert suite.cases[0].tags == ["billing", "short"]
    assert suite.cases[1].turn == 1 and suite.cases[1].session == "s1"


def test_parquet_cases_with_columns_mapping(tmp_path: Path):
    folder = write_suite(tmp_path / "pq", "", cases_name="cases.parquet",
                         suite_yaml="name: pq\nrouter: router.json\ncases: cases.parquet\n"
                                    "columns: {prompt: text, expected_route: label, id: uid}\n")
    pd.DataFrame({"uid": ["x1", "x2"], "text": ["write a poem", "How do I reset SSO?"],
                  "label": ["fallback", "customer-qa"], "extra": [1, 2]}).to_parquet(folder / "cases.parquet")
    suite = load_suite(folder)
    assert [(c.id, c.expected_route) for c in suite.cases] == [("x1", "fallback"), ("x2", "customer-qa")]


def test_foreign_jsonl_with_columns_mapping_ignores_extra_columns(tmp_path: Path):
    rows = [{"uid": "q1", "text": "what's the weather", "label": "fallback", "intent": "weather"},
            {"uid": "q2", "text": "Categorize: login fails", "label": "classify", "intent": "x"}]
    folder = write_suite(tmp_path / "foreign", rows,
                         suite_yaml="name: foreign\nrouter: router.json\ncases: cases.jsonl\n"
                                    "columns: {id: uid, prompt: text, expected_route: label}\n")
    suite = load_suite(folder)
    assert [c.prompt for c in suite.cases] == ["what's the weather", "Categorize: login fails"]


BAD = [
    ("unknown field", [{"id": "a", "prompt": "x", "expected_route": "classify", "colour": "red"}],
     r"unknown field 'colour'", 1),
    ("unknown task", [GOOD[0], {"id": "b", "prompt": "x", "expected_route": "billing"}],
     r"unknown task 'billing'.*\n.*classify, customer-qa, reasoning, fallback", 2),
    ("duplicate id", [GOOD[0], GOOD[1], dict(GOOD[0])], r"duplicate id 'a' \(first at .*:1\)", 3),
    ("empty prompt", [{"id": "a", "prompt": "   ", "expected_route": "classify"}], r"empty prompt", 1),
    ("turn gap", [GOOD[2], {**GOOD[3], "turn": 3}], r"broken turn order in session 's': turn 3 after turn 1", 2),
    ("turn without session", [{"id": "a", "prompt": "x", "expected_route": "classify", "turn": 1}],
     r"'session' and 'turn' go together", 1),
    ("session starts at 2", [{**GOOD[3]}], r"broken turn order.*turn 2", 1),
    ("messages end with assistant", [{"id": "m", "expected_route": "classify",
                                     "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}],
     r"last message must be from the user", 1),
    ("no expected route", [{"id": "a", "prompt": "x"}], r"missing required field 'expected_route'", 1),
    ("missing id", [{"prompt": "x", "expected_route": "classify"}], r"missing required field 'id'", 1),
    ("unknown label source", [{**GOOD[0], "label_source": "guess"}], r"unknown label_source.*\n.*'guess'", 1),
    ("reviewed not a bool", [{**GOOD[0], "reviewed": "yes"}], r"'reviewed' must be true or false", 1),
    ("labeler route unknown", [{**GOOD[0], "labeler_route": "billing"}], r"labeler_route names unknown task", 1),
    ("router route not text", [{**GOOD[0], "router_route": 3}], r"'router_route' must be a task name", 1),
    ("typo of a label field", [{**GOOD[0], "reviewd": True}], r"unknown field 'reviewd'", 1),
]


@pytest.mark.parametrize("label,rows,message,line", BAD, ids=[b[0] for b in BAD])
def test_bad_cases_name_file_and_line(tmp_path: Path, label, rows, message, line):
    folder = write_suite(tmp_path / "bad", rows)
    with pytest.raises(SuiteError, match=message) as info:
        load_suite(folder)
    assert f"cases.jsonl:{line}" in str(info.value)
    assert "fix:" in str(info.value)


def test_invalid_json_line(tmp_path: Path):
    folder = write_suite(tmp_path / "bad", json.dumps(GOOD[0]) + "\n{\"id\": \"b\", \"prompt\": \n")
    with pytest.raises(SuiteError, match=r"cases.jsonl:2.*\n?.*invalid JSON|invalid JSON"):
        load_suite(folder)


def test_unknown_suite_yaml_key_names_its_line(tmp_path: Path):
    folder = write_suite(tmp_path / "bad", GOOD, suite_yaml="name: x\nrouter: router.json\ncases: cases.jsonl\ncasess: y\n")
    with pytest.raises(SuiteError, match=r"suite.yaml:4: unknown key 'casess'"):
        load_suite(folder)


def test_cli_bad_suite_exits_2_without_traceback(tmp_path: Path):
    folder = write_suite(tmp_path / "bad", [GOOD[0], {"id": "b", "prompt": "x", "expected_route": "nope"}])
    proc = run_cli("run", folder, "--out", tmp_path / "out", "-q")
    assert proc.returncode == 2
    assert "cases.jsonl:2" in proc.stderr and "unknown task 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_folder_without_suite(tmp_path: Path):
    proc = run_cli("run", tmp_path, "-q")
    assert proc.returncode == 2
    assert "no suite.yaml" in proc.stderr


def test_bundled_suite_meets_the_issue_counts():
    suite = load_suite(ROOT / "suites" / "saas-support")
    routes = Counter(c.expected_route for c in suite.cases)
    assert len(suite.cases) >= 220
    assert routes["classify"] >= 60 and routes["customer-qa"] >= 60
    assert routes["reasoning"] >= 40 and routes["fallback"] >= 30
    sessions: dict[str, list[int]] = {}
    for c in suite.cases:
        if c.session:
            sessions.setdefault(c.session, []).append(c.turn)
    qa_sessions = [s for s, turns in sessions.items() if 2 <= len(turns) <= 4]
    assert len(qa_sessions) >= 8
    assert sum("ambiguous" in c.tags for c in suite.cases) >= 25
    assert sum(bool(c.reference) for c in suite.cases) >= 40
    duplicate = [c for c in suite.cases if "tutorial" in c.tags and "My invoice shows a duplicate charge" in c.user_text]
    assert duplicate and all(c.expected_route == "classify" for c in duplicate)


def test_hf_source_from_a_local_dataset_folder(tmp_path: Path):
    data = tmp_path / "ds" / "data"
    data.mkdir(parents=True)
    (data / "test.jsonl").write_text('{"text": "write me a poem", "label": "fallback"}\n'
                                     '{"text": "Classify: refund", "label": "classify"}\n')
    folder = write_suite(tmp_path / "hf", [], suite_yaml=(
        f"name: hf\nrouter: router.json\ncases: hf://{tmp_path / 'ds'}:test\n"
        "columns: {prompt: text, expected_route: label}\n"))
    suite = load_suite(folder)
    assert [(c.id, c.prompt, c.expected_route) for c in suite.cases] == [
        ("row-1", "write me a poem", "fallback"), ("row-2", "Classify: refund", "classify")]


def test_prelabel_fields_of_suites_from_traffic(tmp_path: Path):
    rows = [{**GOOD[0], "label_source": "router", "reviewed": False, "router_route": "classify",
             "labeler_route": "customer-qa", "tags": ["labeler-disagrees"]},
            {**GOOD[1], "label_source": "human", "reviewed": True, "router_route": "classify", "labeler_route": None}]
    cases = load_suite(write_suite(tmp_path / "pre", rows)).cases
    assert (cases[0].label_source, cases[0].reviewed, cases[0].router_route, cases[0].labeler_route) == (
        "router", False, "classify", "customer-qa")
    assert (cases[1].label_source, cases[1].reviewed, cases[1].labeler_route) == ("human", True, None)


def test_csv_reviewed_column_reads_as_a_boolean(tmp_path: Path):
    folder = write_suite(tmp_path / "csv", "", cases_name="cases.csv")
    (folder / "cases.csv").write_text("id,prompt,expected_route,label_source,reviewed\n"
                                      "a,Classify: refund,classify,router,false\n"
                                      "b,How do I export?,customer-qa,human,true\n")
    assert [c.reviewed for c in load_suite(folder).cases] == [False, True]


def test_every_problem_of_suite_yaml_at_once_with_lines_and_near_names(tmp_path: Path):
    """Schema problems and gate problems of suite.yaml come together, each at its line, with the
    near metric or task name (the README: a file's problems are reported at once)."""
    yaml_text = ("name: x\nrouter: router.json\ncases: cases.jsonl\n"
                 "defaults: {temperature: 5}\n"         # line 4
                 "gates:\n"
                 "  - acuracy >= 0.9\n"                 # line 6
                 "  - recall[reasonin] >= 0.5\n"        # line 7
                 "  - recall(reasoning) >= 0.5\n"       # line 8
                 "extra_key: 1\n")                      # line 9
    folder = write_suite(tmp_path / "bad", GOOD, suite_yaml=yaml_text)
    with pytest.raises(SuiteError) as info:
        load_suite(folder)
    text = str(info.value)
    assert "5 problems" in text
    assert "suite.yaml:4: temperature must be a number between 0 and 2" in text
    assert "suite.yaml:6: unknown metric 'acuracy' (did you mean 'accuracy'?)" in text
    assert "suite.yaml:7: gate names unknown task 'reasonin' (did you mean 'reasoning'?)" in text
    assert "suite.yaml:8: malformed gate expression" in text
    assert "suite.yaml:9: unknown key 'extra_key'" in text


def test_gate_tasks_of_suite_yaml_are_checked_against_the_router_given(tmp_path: Path):
    folder = write_suite(tmp_path / "s", GOOD, suite_yaml=(
        "name: x\nrouter: router.json\ncases: cases.jsonl\ngates:\n  - recall[classify] >= 0.9\n"))
    other = json.loads((folder / "router.json").read_text())
    other["policies"][0]["custom_task"]["name"] = "sorting"
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(SuiteError, match=r"suite.yaml:5: gate names unknown task 'classify'") as info:
        load_suite(folder, router_path=tmp_path / "other.json")
    assert "other.json" in str(info.value)


def _renamed_router(folder: Path, out: Path) -> Path:
    body = json.loads((folder / "router.json").read_text())
    for i, policy in enumerate(body["policies"]):
        policy["custom_task"]["name"] = f"domain-{i}"
    out.write_text(json.dumps(body))
    return out


def test_a_router_config_with_other_tasks_is_named_as_the_cause(tmp_path: Path):
    """Most cases expecting tasks the router config lacks: one message saying the router config
    does not match the suite, naming both sets of names and the file, not a problem per case."""
    folder = write_suite(tmp_path / "s", GOOD)
    other = _renamed_router(folder, tmp_path / "other-router.json")
    with pytest.raises(SuiteError) as info:
        load_suite(folder, router_path=other)
    text = str(info.value)
    assert "the router config's tasks do not match the suite's expected routes" in text
    assert "4 of 4 cases" in text and str(other) in text
    assert "domain-0" in text and "classify, customer-qa" in text
    assert str(folder / "router.json") in text  # the fix names the suite's own router config
    assert "problems" not in text and "unknown task" not in text
    proc = run_cli("run", folder, "--router", other, "--out", tmp_path / "out", "-q")
    assert proc.returncode == 2 and "do not match the suite's expected routes" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_a_typo_in_one_case_is_still_reported_at_its_line(tmp_path: Path):
    rows = [*GOOD, {"id": "d", "prompt": "Why?", "expected_route": "reasonin"}]
    with pytest.raises(SuiteError, match=r"cases.jsonl:5.*unknown task 'reasonin' \(did you mean 'reasoning'\?\)"):
        load_suite(write_suite(tmp_path / "s", rows))


def test_overlap_with_a_suite_of_other_tasks_names_the_mismatch(tmp_path: Path):
    folder = write_suite(tmp_path / "s", GOOD)
    other = _renamed_router(folder, tmp_path / "other-router.json")
    proc = run_cli("overlap", other, "--suite", folder)
    assert proc.returncode == 2, proc.stderr
    assert "do not match the suite's expected routes" in proc.stderr and "Traceback" not in proc.stderr


def test_a_typo_repeated_in_most_cases_is_not_taken_for_another_router(tmp_path: Path):
    rows = [{"id": f"t{i}", "prompt": "Classify: refund", "expected_route": "clasify"} for i in range(5)]
    with pytest.raises(SuiteError, match=r"5 problems") as info:
        load_suite(write_suite(tmp_path / "s", [GOOD[0], *rows]))
    assert "did you mean 'classify'?" in str(info.value) and "do not match" not in str(info.value)


def test_missing_router_and_cases_files_come_with_the_other_problems_of_suite_yaml(tmp_path: Path):
    """A router config or case file that does not exist is a problem of suite.yaml at its line,
    reported with its unknown keys and gate problems, not one attempt after another."""
    yaml_text = ("name: x\n"
                 "router: nope.json\n"                  # line 2
                 "cases: nope.jsonl\n"                  # line 3
                 "gates:\n"
                 "  - acuracy >= 0.5\n"                 # line 5
                 "  - recall(foo) >= 1\n"               # line 6
                 "foo: 1\n")                            # line 7
    folder = write_suite(tmp_path / "bad", GOOD, suite_yaml=yaml_text)
    with pytest.raises(SuiteError) as info:
        load_suite(folder)
    text = str(info.value)
    assert "5 problems" in text
    assert f"suite.yaml:2: router config not found: {folder / 'nope.json'}" in text
    assert f"suite.yaml:3: case file not found: {folder / 'nope.jsonl'}" in text
    assert "suite.yaml:5: unknown metric 'acuracy' (did you mean 'accuracy'?)" in text
    assert "suite.yaml:6: malformed gate expression" in text
    assert "suite.yaml:7: unknown key 'foo'" in text
    assert text.index("suite.yaml:2:") < text.index("suite.yaml:3:") < text.index("suite.yaml:7:")


def test_a_missing_router_given_instead_is_reported_with_the_problems_of_suite_yaml(tmp_path: Path):
    folder = write_suite(tmp_path / "s", GOOD, suite_yaml=(
        "name: x\nrouter: router.json\ncases: gone.csv\ngates:\n  - acuracy >= 0.9\n"))
    with pytest.raises(SuiteError) as info:
        load_suite(folder, router_path=tmp_path / "other.json")
    text = str(info.value)
    assert "3 problems" in text
    assert f"{tmp_path / 'other.json'}: router config not found (--router)" in text
    assert "suite.yaml:3: case file not found" in text and "suite.yaml:5: unknown metric 'acuracy'" in text


def test_a_case_file_of_an_unknown_type_is_a_problem_of_suite_yaml(tmp_path: Path):
    folder = write_suite(tmp_path / "s", GOOD, suite_yaml="name: x\nrouter: router.json\ncases: cases.txt\nbogus: 1\n")
    (folder / "cases.txt").write_text("hello\n")
    with pytest.raises(SuiteError) as info:
        load_suite(folder)
    text = str(info.value)
    assert "suite.yaml:3: unsupported case file type '.txt'" in text and "suite.yaml:4: unknown key 'bogus'" in text
