"""Small sharp edges a new user hits: `report` on a truncated results.jsonl, the judge model's
price, and the help text of every command."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, run_cli
from tests.run_helpers import make_run, result


def test_report_on_a_truncated_results_file_warns_in_the_terminal_too(tmp_path: Path) -> None:
    results = [result(f"c{i}", "classify", "classify") for i in range(6)]
    run_dir = make_run(tmp_path / "run", results)
    path = run_dir / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # 3 whole lines and a torn one
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0, proc.stderr
    warning = " ".join(proc.stderr.split())
    assert "warning:" in warning and "3 of 6 cases have no result" in warning
    assert f"--resume {run_dir}" in warning and "the figures cover the 3 that do" in warning
    assert "torn line" in warning
    assert "Incomplete run" in (run_dir / "report.html").read_text()  # the report agrees

    path.write_text("".join(lines))  # whole again: no warning
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_the_finish_command_of_report_on_an_incomplete_run_works_as_printed(tmp_path: Path) -> None:
    """An openai-target run of a suite in a folder with a space, made with --router and another route
    header, then cut short: the command `evalkit report` prints finishes it as printed."""
    import json
    import shlex

    from tests.fake_openai import FakeOpenAI
    from tests.fault_helpers import make_cases, ok_reply, write_case_suite

    header = "x-my-route"
    cases = make_cases(6)
    suite = write_case_suite(tmp_path / "my suites" / "s", cases)
    (suite / "router.other.json").write_text((suite / "router.json").read_text() + "\n")  # another file, same tasks

    def decide(body: dict, headers: dict) -> object:
        reply = ok_reply(body["messages"][-1]["content"][1:5])
        reply.headers = {header: next(iter(reply.headers.values()))}
        return reply

    with FakeOpenAI(decide) as router:
        proc = run_cli("run", suite, "--router", suite / "router.other.json", "--target", "openai", "--base-url",
                       router.base_url, "--route-header", header, "--out", tmp_path / "runs", "-q")
        assert proc.returncode == 0, proc.stderr
        run_dir = next((tmp_path / "runs").glob("*/*"))
        path = run_dir / "results.jsonl"
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))  # 2 of 6 left
        proc = run_cli("report", run_dir)
        assert proc.returncode == 0, proc.stderr
        warning = " ".join(proc.stderr.split())
        command = shlex.split(warning[warning.index("`evalkit run") + 1:warning.rindex("`")])
        assert command[:2] == ["evalkit", "run"] and command[-2:] == ["--resume", str(run_dir)]
        finished = run_cli(*command[1:])
        assert finished.returncode == 0, finished.stderr
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(c.id for c in cases)
    assert all(r["status"] == "ok" and r["route"] == r["expected_route"] for r in lines)


def test_every_judge_model_of_the_docs_examples_has_a_price_with_its_source() -> None:
    from evalkit.cost import load_prices

    catalog = load_prices()
    models = set(re.findall(r"--judge\s+([a-z0-9][a-z0-9.\-]+)", (ROOT / "docs" / "judge.md").read_text()))
    assert "openai-gpt-oss-120b" in models
    for slug in models:
        assert slug in catalog, f"{slug} (docs/judge.md) is not in evalkit/data/prices.yaml"
        assert catalog[slug].source and catalog[slug].date, slug


# -- help text ---------------------------------------------------------------------------------

TYPE_LABEL = re.compile(r"<(?:str|int|float|bool|path|Path|file|dir|text|list\[[^\]]*\]|tuple[^>]*|[a-z]+ range)>")
DEFAULT_SHOWN = ("--threshold", "--prices", "--route-header", "--seed", "--max-error-rate")


def _commands() -> list[tuple[list[str], object]]:
    import typer

    from evalkit.cli import _register_commands, app
    from evalkit.commands.help_text import humanise

    _register_commands()
    found = []

    def walk(command: object, path: list[str]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
    walk(humanise(typer.main.get_command(app)), [])
    return found


def test_every_help_has_human_metavars_and_shows_defaults() -> None:
    import click

    commands = _commands()
    assert len(commands) > 15  # every command and subcommand, `router diff` and `suite from-traffic` too
    for path, command in commands:
        proc = run_cli(*path, "--help")
        where = "evalkit " + " ".join(path)
        assert proc.returncode == 0, where + proc.stderr
        text = proc.stdout
        assert not TYPE_LABEL.search(text), f"{where} --help shows a type label: {TYPE_LABEL.search(text)}"
        usage = text.split("\n\n", 1)[0]
        assert not re.search(r"\{[a-z_]+\}", usage), f"{where}: {usage}"
        ctx = click.Context(command, info_name=where) if isinstance(command, click.Command) else None
        for param in command.params:  # type: ignore[attr-defined]
            if param.param_type_name == "argument":
                assert param.metavar and param.metavar == param.metavar.upper(), (where, param.name)
                assert param.metavar in usage, (where, param.metavar, usage)
                continue
            if param.is_flag or param.count or param.hidden:
                continue
            assert param.metavar and param.metavar == param.metavar.upper(), (where, param.opts)
            record = " ".join(param.get_help_record(ctx or _typer_ctx(command, where))[1].split())
            if param.default not in (None, (), []):
                assert "[default:" in record, (where, param.opts, record)
            if set(param.opts) & set(DEFAULT_SHOWN):
                assert "default" in record, (where, param.opts, record)
            assert "".join(record.split()) in "".join(text.split()), (where, param.opts)  # what --help printed


def _typer_ctx(command: object, where: str) -> object:
    import typer

    return typer._click.Context(command, info_name=where)  # type: ignore[attr-defined]


def test_options_that_name_a_model_or_a_header_say_so_in_help() -> None:
    """`--judge MODEL` as the README writes it, not `--judge JUDGE` or `--baseline-model BASELINE_MODEL`."""
    expected = {("run", "--judge"): "MODEL", ("run", "--baseline-model"): "MODEL", ("run", "--model"): "MODEL",
                ("run", "--classifier-model"): "MODEL", ("judge", "--judge"): "MODEL",
                ("suite", "from-traffic", "--labeler"): "MODEL", ("router", "export", "--routing-model"): "MODEL",
                ("run", "--route-header"): "HEADER", ("run", "--router-name"): "NAME"}
    for (*path, option), metavar in expected.items():
        text = run_cli(*path, "--help").stdout
        assert re.search(rf"{re.escape(option)} {metavar}\b", text), (path, option, metavar)
