"""Validation through pydantic: every problem of a router config, suite.yaml or case file at once
(up to 20, then "and N more"), each with its place, what was found, the fix, and "did you mean"
where a near name exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evalkit.errors import ConfigError, SuiteError
from evalkit.router_config import parse_router_config
from evalkit.suites import load_suite
from evalkit.validation import MAX_REPORTED

from conftest import TUTORIAL_ROUTER, run_cli, write_suite


def body(**over):
    data = json.loads(json.dumps(TUTORIAL_ROUTER))
    data.update(over)
    return data


def _problem_lines(message: str) -> list[str]:
    return [line for line in message.splitlines() if line.startswith("- ")]


# --- router configs ---

def test_a_router_config_reports_every_problem_at_once():
    data = body(name="Bad Name", fallback_model=["x"])
    del data["fallback_models"]
    data["policies"][0]["models"] = ["a", "b", "c", "d"]
    data["policies"][1]["custom_task"]["descripton"] = data["policies"][1]["custom_task"].pop("description")
    data["policies"][2]["selection_policy"] = {"prefer": "smartest"}
    with pytest.raises(ConfigError) as info:
        parse_router_config(json.dumps(data), source="router.json")
    message = str(info.value)
    assert message.startswith("router.json: 7 problems")
    lines = _problem_lines(message)
    assert len(lines) == 7
    for path, text in [
        ("name", "lowercase a-z, 0-9"),
        ("fallback_models", "missing required field 'fallback_models'"),
        ("fallback_model", "unknown field 'fallback_model' (did you mean 'fallback_models'?)"),
        ("policies[0].models", "at most 3 models, found 4"),
        ("policies[1].custom_task.descripton", "unknown field 'descripton' (did you mean 'description'?)"),
        ("policies[1].custom_task.description", "missing required field 'description'"),
        ("policies[2].selection_policy.prefer", "'cheapest' or 'fastest'"),
    ]:
        assert any(line.startswith(f"- router.json at {path}: ") and text in line for line in lines), (path, message)
    assert "found: 'Bad Name'" in message and "found: 'smartest'" in message
    assert message.count("fix:") == 8  # one per problem and the closing one
    assert len(info.value.problems) == 7


def test_cross_policy_problems_are_all_reported():
    data = body()
    data["policies"][1]["custom_task"]["name"] = "classify"
    data["policies"][2]["custom_task"]["name"] = "fallback"
    with pytest.raises(ConfigError) as info:
        parse_router_config(data, source="router.json")
    lines = _problem_lines(str(info.value))
    assert len(lines) == 2
    assert "policies[1].custom_task.name: duplicate task name 'classify'" in lines[0]
    assert "policies[2].custom_task.name: a task may not be named 'fallback'" in lines[1]


def test_more_than_20_problems_show_20_and_say_how_many_more():
    data = body(policies=[{"custom_task": {"name": f"t{i}", "description": "x"}, "models": []} for i in range(25)])
    with pytest.raises(ConfigError) as info:
        parse_router_config(data, source="router.json")
    message = str(info.value)
    assert message.startswith("router.json: 25 problems")
    lines = _problem_lines(message)
    assert len(lines) == MAX_REPORTED + 1 == 21
    assert lines[-1] == "- and 5 more"
    assert all("model list is empty" in line for line in lines[:-1])


def test_a_single_problem_keeps_the_one_line_form():
    with pytest.raises(ConfigError) as info:
        parse_router_config(body(name="Bad Name"), source="router.json")
    assert str(info.value).startswith("router.json at name: router name must use only lowercase")


def test_lint_json_lists_every_schema_problem(tmp_path: Path):
    path = tmp_path / "router.json"
    path.write_text(json.dumps({"name": "Bad Name", "polices": []}))
    proc = run_cli("lint", path, "--json")
    assert proc.returncode == 2, proc.stderr
    data = json.loads(proc.stdout)
    assert data["valid"] is False and data["n_errors"] == len(data["findings"]) == 4
    wheres = {f["where"].split(" at ")[-1] for f in data["findings"]}
    assert wheres == {"name", "policies", "polices", "fallback_models"}
    assert any("did you mean 'policies'?" in f["message"] for f in data["findings"])


# --- suite.yaml ---

def test_suite_yaml_problems_come_together_with_their_lines_and_near_names(tmp_path: Path):
    folder = write_suite(tmp_path / "s", [{"id": "a", "prompt": "x", "expected_route": "classify"}],
                         suite_yaml="name: s\nrouterr: router.json\ncases: cases.jsonl\n"
                                    "defaults: {max_completion_token: 5}\ncolumns: {promt: text}\n")
    with pytest.raises(SuiteError) as info:
        load_suite(folder)
    message = str(info.value)
    lines = _problem_lines(message)
    assert len(lines) == 3, message
    assert any("suite.yaml:2" in x and "unknown key 'routerr' (did you mean 'router'?)" in x for x in lines)
    assert any("suite.yaml:4" in x and "'max_completion_token' (did you mean 'max_completion_tokens'?)" in x
               for x in lines)
    assert any("suite.yaml:5" in x and "'promt' (did you mean 'prompt'?)" in x for x in lines)


# --- case files ---

def test_case_file_problems_come_together_up_to_20(tmp_path: Path):
    rows = [{"id": f"q{i}", "prompt": "hello", "expected_route": "clasify"} for i in range(23)]
    rows.insert(0, {"id": "ok", "prompt": "hello", "expected_route": "classify"})
    folder = write_suite(tmp_path / "s", rows)
    proc = run_cli("run", folder, "--out", tmp_path / "runs", "-q")
    assert proc.returncode == 2
    message = proc.stderr
    assert "Traceback" not in message
    assert re.search(r"cases\.jsonl: 23 problems", message), message
    lines = _problem_lines(message)
    assert len(lines) == 21 and lines[-1] == "- and 3 more"
    assert lines[0].startswith(f"- {folder / 'cases.jsonl'}:2: ")
    assert "unknown task 'clasify' (did you mean 'classify'?)" in lines[0]
    assert lines[19].startswith(f"- {folder / 'cases.jsonl'}:21: ")
    assert not (tmp_path / "runs").exists()


def test_different_problems_in_different_rows_and_fields(tmp_path: Path):
    rows = [
        {"id": "a", "prompt": "x", "expected_route": "classify", "tgas": ["t"]},
        {"id": "b", "prompt": 42, "expected_route": "customer-qa"},
        {"id": "a", "prompt": "dup", "expected_route": "reasoning"},
        {"id": "c", "prompt": "y", "expected_route": "reasonin", "max_completion_tokens": 0},
        {"id": "d", "prompt": "z", "expected_route": "classify", "session": "s", "turn": 2},
    ]
    folder = write_suite(tmp_path / "s", rows)
    with pytest.raises(SuiteError) as info:
        load_suite(folder)
    lines = _problem_lines(str(info.value))
    where = str(folder / "cases.jsonl")
    expected = [
        (1, "unknown field 'tgas' (did you mean 'tags'?)"),
        (2, "'prompt' must be a string"),
        (3, "duplicate id 'a' (first at"),
        (4, "unknown task 'reasonin' (did you mean 'reasoning'?)"),
        (4, "max_completion_tokens must be a positive integer"),
        (5, "broken turn order in session 's'"),
    ]
    assert len(lines) == len(expected), lines
    for line_no, text in expected:
        assert any(x.startswith(f"- {where}:{line_no}") and text in x for x in lines), (line_no, text, lines)


def test_a_csv_problem_names_its_line(tmp_path: Path):
    folder = write_suite(tmp_path / "s", "", cases_name="cases.csv")
    (folder / "cases.csv").write_text("id,prompt,expected_route\na,hi,classify\nb,yo,custmer-qa\nc,hey,nope\n")
    with pytest.raises(SuiteError) as info:
        load_suite(folder)
    lines = _problem_lines(str(info.value))
    assert len(lines) == 2
    assert lines[0].startswith(f"- {folder / 'cases.csv'}:3: ") and "did you mean 'customer-qa'?" in lines[0]
    assert lines[1].startswith(f"- {folder / 'cases.csv'}:4: ") and "unknown task 'nope'" in lines[1]
    assert "did you mean" not in lines[1]


def test_a_line_that_stops_the_reader_ends_the_list_after_the_problems_before_it(tmp_path: Path):
    text = (json.dumps({"id": "a", "prompt": "x", "expected_route": "billing"}) + "\n"
            + '{"id": "b", "prompt": \n'
            + json.dumps({"id": "c", "prompt": "x", "expected_route": "nope"}) + "\n")
    folder = write_suite(tmp_path / "s", text)
    with pytest.raises(SuiteError) as info:
        load_suite(folder)
    lines = _problem_lines(str(info.value))
    assert len(lines) == 2, str(info.value)
    assert "cases.jsonl:1: case 'a': unknown task 'billing'" in lines[0]
    assert "cases.jsonl:2: invalid JSON" in lines[1]


@pytest.mark.parametrize("defaults,needle", [
    ("{max_completion_tokens: 0}", "max_completion_tokens must be a positive integer"),
    ("{max_completion_tokens: lots}", "max_completion_tokens must be a positive integer"),
    ("{temperature: 7}", "temperature must be a number between 0 and 2"),
])
def test_suite_defaults_are_checked(tmp_path: Path, defaults, needle):
    folder = write_suite(tmp_path / "s", [{"id": "a", "prompt": "x", "expected_route": "classify"}],
                         suite_yaml=f"name: s\ndefaults: {defaults}\n")
    with pytest.raises(SuiteError, match=needle) as info:
        load_suite(folder)
    assert "suite.yaml:2" in str(info.value) and "fix:" in str(info.value)
