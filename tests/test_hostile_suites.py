"""Hostile or awkward suite folders: files outside the suite, YAML alias bombs, huge CSV cells,
a byte order mark, an over-long router name. Each is refused (exit 2, a message saying why) or
accepted, through the in-process CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evalkit.cost import parse_prices
from evalkit.errors import PriceError
from evalkit.suites import MAX_CSV_CELL_CHARS, MAX_PROMPT_CHARS, load_suite

from conftest import TUTORIAL_ROUTER, run_cli, write_suite

CASES = [{"id": "q1", "prompt": "My invoice shows a duplicate charge", "expected_route": "classify"}]


def _run(tmp_path: Path, folder: Path):
    proc = run_cli("run", folder, "--out", tmp_path / "runs", "-q")
    message = " ".join((proc.stdout + proc.stderr).split())
    assert "Traceback" not in message
    return proc, message


# --- case and router files stay inside the suite folder (issue 18, item 7) ---

def test_a_cases_file_linked_outside_the_suite_is_refused(tmp_path: Path):
    secret = tmp_path / "secret.csv"
    secret.write_text("id,prompt,expected_route\nq1,the password is hunter2,classify\n")
    folder = write_suite(tmp_path / "s", CASES, suite_yaml="name: s\nrouter: router.json\ncases: cases.csv\n",
                         cases_name="cases.csv")
    (folder / "cases.csv").unlink()
    os.symlink(secret, folder / "cases.csv")
    proc, message = _run(tmp_path, folder)
    assert proc.returncode == 2, message
    assert "cases file must be inside the suite folder" in message and "symbolic link" in message
    assert str(secret) in message and "suite.yaml" in message
    assert "hunter2" not in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key,ref", [("cases", "../outside.jsonl"), ("router", "../router.json")])
def test_a_path_climbing_out_of_the_suite_is_refused(tmp_path: Path, key, ref):
    (tmp_path / "outside.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    (tmp_path / "router.json").write_text(json.dumps(TUTORIAL_ROUTER))
    refs = {"router": "router.json", "cases": "cases.jsonl", key: ref}
    folder = write_suite(tmp_path / "s", CASES, suite_yaml=f"name: s\nrouter: {refs['router']}\ncases: {refs['cases']}\n")
    proc, message = _run(tmp_path, folder)
    assert proc.returncode == 2, message
    assert f"{key} file must be inside the suite folder" in message and ref in message and "fix:" in message


def test_a_symlink_that_stays_inside_the_suite_is_fine(tmp_path: Path):
    folder = write_suite(tmp_path / "s", CASES, suite_yaml="name: s\nrouter: router.json\ncases: current.jsonl\n")
    os.symlink(folder / "cases.jsonl", folder / "current.jsonl")
    assert [c.id for c in load_suite(folder).cases] == ["q1"]


# --- YAML alias bombs (issue 18, item 13) ---

LAUGHS = "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
BILLION_LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + LAUGHS


def test_billion_laughs_in_suite_yaml_is_refused(tmp_path: Path):
    assert len(BILLION_LAUGHS) < 450  # 9**9 = 387,420,489 strings once expanded
    folder = write_suite(tmp_path / "s", CASES, suite_yaml="name: s\nrouter: router.json\ncases: cases.jsonl\n"
                                                          + BILLION_LAUGHS)
    proc, message = _run(tmp_path, folder)
    assert proc.returncode == 2, message
    assert "suite.yaml" in message and "YAML aliases expand" in message and "fix:" in message


def test_billion_laughs_under_a_valid_key_is_refused_too(tmp_path: Path):
    bomb = BILLION_LAUGHS.replace("\n", "\n  ").rstrip() + "\n"
    folder = write_suite(tmp_path / "s", CASES, suite_yaml="name: s\ndefaults:\n  " + bomb)
    proc, message = _run(tmp_path, folder)
    assert proc.returncode == 2, message
    assert "YAML aliases expand" in message


def test_billion_laughs_in_a_price_file_is_refused():
    with pytest.raises(PriceError, match="YAML aliases expand"):
        parse_prices("models:\n  x: {input: 1, output: 1}\nextra:\n  " + BILLION_LAUGHS.replace("\n", "\n  "),
                     source="prices.yaml")


def test_a_few_aliases_are_still_fine(tmp_path: Path):
    catalog = parse_prices("base: &p {input: 0.1, output: 0.4}\nmodels:\n  a: *p\n  b: *p\n", source="prices.yaml")
    assert catalog["a"].input == catalog["b"].input == 0.1


# --- CSV: huge cells (issue 18, item 17) and a byte order mark (item 21) ---

def _csv_suite(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    folder = write_suite(tmp_path / "s", "", cases_name="cases.csv")
    (folder / "cases.csv").write_bytes(text.encode(encoding))
    return folder


def test_a_csv_prompt_over_the_csv_modules_default_gets_the_prompt_limit_message(tmp_path: Path):
    n = 140_000  # over csv's default cell limit (131,072), like the JSONL case of the same size
    assert n > 131_072 and n > MAX_PROMPT_CHARS
    folder = _csv_suite(tmp_path, f'id,prompt,expected_route\nq0,hi,classify\nq1,"{"x" * n}",classify\n')
    proc, message = _run(tmp_path, folder)
    assert proc.returncode == 2, message
    assert "cases.csv:3" in message and f"{n:,} characters" in message and "fix:" in message


def test_a_csv_cell_over_the_cell_limit_names_file_and_line(tmp_path: Path):
    folder = _csv_suite(tmp_path, f'id,prompt,expected_route\nq0,hi,classify\nq1,"{"x" * (MAX_CSV_CELL_CHARS + 10)}",classify\n')
    proc, message = _run(tmp_path, folder)
    assert proc.returncode == 2, message
    assert "cases.csv:3" in message and f"over {MAX_CSV_CELL_CHARS:,} characters" in message and "fix:" in message


def test_a_csv_with_a_byte_order_mark_loads(tmp_path: Path):
    folder = _csv_suite(tmp_path, "id,prompt,expected_route\nq1,hello there,classify\n", encoding="utf-8-sig")
    assert (folder / "cases.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    suite = load_suite(folder)
    assert [(c.id, c.prompt) for c in suite.cases] == [("q1", "hello there")]


def test_a_jsonl_file_with_a_byte_order_mark_loads(tmp_path: Path):
    folder = write_suite(tmp_path / "s", "")
    lines = [json.dumps(c) for c in [*CASES, {"id": "q2", "prompt": "hi", "expected_route": "classify"}]]
    (folder / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8-sig")  # Notepad's "UTF-8 with BOM"
    suite = load_suite(folder)
    assert [c.id for c in suite.cases] == ["q1", "q2"]


def test_a_byte_order_mark_after_the_first_line_of_a_jsonl_file_is_still_refused(tmp_path: Path):
    folder = write_suite(tmp_path / "s", json.dumps(CASES[0]) + "\n\ufeff" + json.dumps(CASES[0] | {"id": "q2"}) + "\n")
    proc, message = _run(tmp_path, folder)
    assert proc.returncode == 2 and "cases.jsonl:2" in message, message


# --- router names over DigitalOcean's 255 characters (issue 18, item 21) ---

def test_lint_refuses_a_router_name_over_255_characters(tmp_path: Path):
    body = {**TUTORIAL_ROUTER, "name": "r" * 300}
    (tmp_path / "router.json").write_text(json.dumps(body))
    proc = run_cli("lint", tmp_path / "router.json")
    message = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, message
    assert "router.json at name" in message and "300 characters" in message and "255" in message


def test_a_router_name_of_255_characters_is_fine(tmp_path: Path):
    (tmp_path / "router.json").write_text(json.dumps({**TUTORIAL_ROUTER, "name": "r" * 255}))
    assert run_cli("lint", tmp_path / "router.json").returncode == 0


@pytest.mark.parametrize("column", ["messages", "tags"])
def test_a_csv_json_cell_nested_too_deeply_names_file_and_line(tmp_path: Path, column: str):
    folder = _csv_suite(tmp_path, f"id,prompt,expected_route,{column}\nq0,hi,classify,\n"
                                  f"q1,hello,classify,\"{'[' * 100_000}\"\n")
    proc, message = _run(tmp_path, folder)
    assert proc.returncode == 2, message
    assert "cases.csv:3" in message and "nested too deeply" in message and "fix:" in message
