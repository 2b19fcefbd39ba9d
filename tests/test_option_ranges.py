"""Every numeric command-line option is range-checked before a command does any work: the
message names the option, the value and the allowed range; the exit code is 2."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from conftest import run_cli


def _commands() -> list[tuple[list[str], object]]:
    """(command words, click command) for every leaf command of the app."""
    import typer

    from evalkit.cli import _register_commands, app

    _register_commands()
    found: list[tuple[list[str], object]] = []

    def walk(words: list[str], command: object) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in sorted(subcommands.items()):
                walk([*words, name], sub)
        else:
            found.append((words, command))

    walk([], typer.main.get_command(app))
    return found


def _is_numeric(param: object) -> bool:
    kind = getattr(getattr(param, "type", None), "name", "")  # click's INT and FLOAT types
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)  # typer's own parameters
    return kind in ("integer", "float") or annotation in (int, float) or \
        {a for a in typing.get_args(annotation) if a is not type(None)} in ({int}, {float})


def _numeric_options() -> list[tuple[list[str], str, list[str]]]:
    """(command words, option, placeholder arguments) for every int or float option."""
    rows = []
    for words, command in _commands():
        params = command.params  # type: ignore[attr-defined]
        placeholders = ["placeholder"] * sum(1 for p in params if p.param_type_name == "argument")
        for p in params:
            if p.param_type_name == "option" and _is_numeric(p):
                rows.append((words, max(p.opts, key=len), placeholders))
    return rows


NUMERIC = _numeric_options()


def test_the_walk_finds_the_options_the_issue_names():
    seen = {(" ".join(w), o) for w, o, _ in NUMERIC}
    assert {("run", "--threshold"), ("run", "--concurrency"), ("run", "--timeout"), ("run", "--retries"),
            ("suite from-traffic", "--sample"), ("serve", "--port"), ("compare", "--alpha")} <= seen
    assert len(NUMERIC) >= 30


@pytest.mark.parametrize("words,option,placeholders", NUMERIC, ids=[f"{' '.join(w)} {o}" for w, o, _ in NUMERIC])
def test_every_numeric_option_refuses_a_value_far_below_its_range(tmp_path: Path, words, option, placeholders):
    proc = run_cli(*words, option, "-1000000000", *placeholders, cwd=tmp_path, timeout=60)
    message = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, message
    assert "Traceback" not in message
    assert f"{option}:" in message and "must be" in message and "-1000000000" in message and "fix:" in message
    assert not any(tmp_path.iterdir())


# (command words, option, value, the allowed range as the message says it)
BAD = [
    (["run"], "--threshold", "2", "between 0 and 1"),
    (["run"], "--threshold", "-0.1", "between 0 and 1"),
    (["run"], "--threshold", "nan", "between 0 and 1"),
    (["run"], "--concurrency", "0", "at least 1"),
    (["run"], "--timeout", "0", "a positive number"),
    (["run"], "--timeout", "inf", "a positive number"),
    (["run"], "--ready-timeout", "-1", "a positive number"),
    (["run"], "--retries", "-1", "zero or more"),
    (["run"], "--backoff", "-0.5", "zero or more"),
    (["run"], "--rpm", "-5", "zero or more"),
    (["run"], "--max-error-rate", "1.5", "between 0 and 1"),
    (["run"], "--judge-samples", "0", "at least 1"),
    (["judge"], "--concurrency", "0", "at least 1"),
    (["judge"], "--timeout", "-3", "a positive number"),
    (["compare"], "--alpha", "1", "between 0 and 1 (> 0, < 1)"),
    (["compare"], "--alpha", "0", "between 0 and 1 (> 0, < 1)"),
    (["compare"], "--bootstrap", "0", "at least 1"),
    (["compare"], "--seed", "-1", "zero or more"),
    (["cost"], "--monthly-requests", "0", "at least 1"),
    (["overlap"], "--margin", "1.5", "between 0 and 1"),
    (["overlap"], "--examples", "-1", "zero or more"),
    (["serve"], "--port", "70000", "between 1 and 65535"),
    (["serve"], "--threshold", "1.01", "between 0 and 1"),
    (["serve"], "--fault-rate", "2", "between 0 and 1"),
    (["serve"], "--affinity-ttl", "0", "a positive number"),
    (["serve"], "--latency-ms", "-1", "zero or more"),
    (["router", "export"], "--port", "0", "between 1 and 65535"),
    (["suite", "from-traffic"], "--sample", "0", "between 1 and 100000"),
    (["suite", "from-traffic"], "--near-duplicate", "0.2", "between 0.5 and 1"),
    (["suite", "from-traffic"], "--labeler-concurrency", "0", "at least 1"),
    (["suite", "review"], "--port", "65536", "between 0 and 65535"),
    (["suite", "review"], "--threshold", "3", "between 0 and 1"),
]


@pytest.mark.parametrize("words,option,value,allowed", BAD, ids=[f"{' '.join(b[0])} {b[1]} {b[2]}" for b in BAD])
def test_out_of_range_values_name_option_value_and_range(tmp_path: Path, words, option, value, allowed):
    command = dict((" ".join(w), p) for w, _, p in NUMERIC)
    proc = run_cli(*words, option, value, *command[" ".join(words)], cwd=tmp_path, timeout=60)
    message = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, message
    assert "Traceback" not in message
    assert f"{option}:" in message and f"must be {allowed}" in message and f"found: {value}" in message \
        and "fix:" in message


@pytest.mark.parametrize("words,option,value", [
    (["run"], "--threshold", "0"), (["run"], "--threshold", "1"), (["run"], "--retries", "0"),
    (["run"], "--rpm", "0"), (["suite", "review"], "--port", "0"), (["compare"], "--seed", "0"),
])
def test_values_at_the_edges_of_a_range_pass_the_check(tmp_path: Path, words, option, value):
    command = dict((" ".join(w), p) for w, _, p in NUMERIC)
    proc = run_cli(*words, option, value, *command[" ".join(words)], cwd=tmp_path, timeout=60)
    assert option + ":" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--requests", "a=-5", "--tokens", "a=1/1"], "0 or more"),
    (["--requests", "a=5", "--tokens", "a=-1/1"], "0 or more"),
    (["--requests", "a=5", "--tokens", "a=inf/1"], "two finite numbers"),
    (["--requests", "a=5", "--tokens", "a=1/nan"], "two finite numbers"),
])
def test_numbers_inside_cost_pairs_are_range_checked(tmp_path: Path, args, needle):
    proc = run_cli("cost", *args, "--model", "a=openai-gpt-5", cwd=tmp_path, timeout=60)
    message = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, message
    assert "Traceback" not in message and needle in message and "fix:" in message
