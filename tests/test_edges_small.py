"""Small sharp edges a new user hits: `report` on a truncated results.jsonl, reports of runs that
measured nothing (every case an error, no route header) or only a shard, the judge model's price,
and the help text of every command."""

from __future__ import annotations

import json
import re
from html import unescape
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


def _text(html: str) -> str:
    """The visible text of a report, one space between words."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _md_task_rows(markdown: str) -> dict[str, list[str]]:
    """The cells of summary.md's per-task table, by task."""
    table = markdown.split("### Per task", 1)[1].split("###", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.startswith("|") and not line.startswith(("| Task", "|---"))]
    return {r[0]: r[1:] for r in rows}


def _html_task_rows(html: str) -> dict[str, list[str]]:
    """The cells of report.html's per-task table, by task."""
    table = html.split("<h2>Per task</h2>", 1)[1].split("</table>", 1)[0]
    rows = [[_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)] for row in table.split("<tr>")]
    return {r[0]: r[1:] for r in rows if r}


def _terminal_task_rows(stdout: str) -> dict[str, list[str]]:
    """The cells of the terminal's per-task table, by task."""
    table = stdout.split("per task", 1)[1].split("report:", 1)[0]
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in table.splitlines() if line.startswith("│")]
    return {r[0]: r[1:] for r in rows}


def test_a_run_where_every_case_errored_says_so_and_claims_no_figure(tmp_path: Path) -> None:
    """Every request failed (HTTP 500): nothing was scored, so every report says so at the top and
    prints no interval, no per-task 0.000 and no "every scored case took its expected route"."""
    tasks = ["classify", "customer-qa", "reasoning"]
    results = [result(f"c{i}", tasks[i % 3], None, status="error", error="HTTP 500 from the router",
                      http_status=500, tags=["billing"]) for i in range(6)]
    run_dir = make_run(tmp_path / "run", results)
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0, proc.stderr
    html = (run_dir / "report.html").read_text()
    markdown = (run_dir / "summary.md").read_text()
    text = _text(html)

    warning = text.split("Nothing was scored:", 1)[1].split("Headline", 1)[0]  # before the figures
    assert "all 6 cases ended in an error" in warning and "HTTP 500" in warning
    assert "no routing figure" in warning
    assert "Routing figures are complete" not in text
    assert "every scored case took its expected route" not in text
    assert "0.0% to 0.0%" not in text
    tag_row = text.split("Per tag", 1)[1].split("Cost and latency", 1)[0]
    assert "billing 0 n/a n/a" in tag_row and "0.0%-0.0%" not in tag_row  # n, accuracy, interval

    top = markdown.split("| Metric", 1)[0]
    assert "nothing was scored" in top and "all 6 cases ended in an error" in top
    assert "0.0% to 0.0%" not in markdown and re.search(r"\| Accuracy \| n/a \|", markdown)
    for rows in (_md_task_rows(markdown), _html_task_rows(html)):
        assert set(rows) >= set(tasks)
        for task, cells in rows.items():
            assert cells == ["n/a", "n/a", "n/a", "0"], (task, cells)

    stdout = proc.stdout
    assert "0.0%-0.0%" not in stdout and "None" not in stdout
    assert re.search(r"macro-F1 / kappa\s*│\s*n/a / n/a", stdout), stdout
    assert re.search(r"accuracy\s*│\s*n/a", stdout), stdout
    assert "nothing scored" in stdout and "all 6 cases ended in an error" in stdout
    for task, cells in _terminal_task_rows(stdout).items():
        assert cells == ["n/a", "n/a", "n/a", "0"], (task, cells)


def test_route_only_note_claims_complete_routing_figures_only_when_routing_was_measured(tmp_path: Path) -> None:
    """A route-only run whose answers carried no route header measured no routing: the report's
    route-only note must not call its routing figures complete; one whose answers did, does."""
    tasks = ["classify", "customer-qa", "reasoning"]
    no_header = make_run(tmp_path / "no-header",
                         [result(f"c{i}", tasks[i % 3], None, route_only=True) for i in range(6)])
    routed = make_run(tmp_path / "routed",
                      [result(f"c{i}", tasks[i % 3], tasks[i % 3], route_only=True) for i in range(6)])
    errored = make_run(tmp_path / "errored",
                       [result(f"c{i}", tasks[i % 3], None, status="error", error="timed out") for i in range(6)])
    texts = {}
    for run_dir in (no_header, routed, errored):
        proc = run_cli("report", run_dir)
        assert proc.returncode == 0, proc.stderr
        texts[run_dir.name] = _text((run_dir / "report.html").read_text())
    assert "measured no routing" in texts["no-header"] and "Route-only run" in texts["no-header"]
    assert "Routing figures are complete" not in texts["no-header"]
    assert "Route-only run" in texts["routed"] and "Routing figures are complete" in texts["routed"]
    # every case an error: no answer at all, so nothing to call route-only either
    assert "Route-only run" not in texts["errored"] and "Routing figures are complete" not in texts["errored"]


def test_per_task_figures_with_no_denominator_read_n_a_not_zero(tmp_path: Path) -> None:
    """A task no case expected and none was routed to has no precision, recall or F1; a task cases
    were routed to but none expected has a precision (0) and no recall. summary.json keeps its
    0.0 for them (scikit-learn's convention); the reports print n/a."""
    results = [result("a1", "classify", "classify"), result("a2", "classify", "customer-qa"),
               result("b1", "customer-qa", "customer-qa"), result("b2", "customer-qa", "customer-qa")]
    run_dir = make_run(tmp_path / "run", results)
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0, proc.stderr
    stored = json.loads((run_dir / "summary.json").read_text())["per_task"]
    assert stored["reasoning"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # classify: 1 of 1 routed there was right, 1 of 2 expected found; customer-qa: 2 of 3, 2 of 2
    want = {"classify": ["1.000", "0.500", "0.667", "2"], "customer-qa": ["0.667", "1.000", "0.800", "2"],
            "reasoning": ["n/a", "n/a", "n/a", "0"], "fallback": ["n/a", "n/a", "n/a", "0"]}
    assert _md_task_rows((run_dir / "summary.md").read_text()) == want
    assert _html_task_rows((run_dir / "report.html").read_text()) == want
    assert _terminal_task_rows(proc.stdout) == want

    # routed to a task no case expected: precision is measured (0 of 1 right), recall is not
    results = [result("a1", "classify", "reasoning"), result("a2", "classify", "classify")]
    run_dir = make_run(tmp_path / "other", results)
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0, proc.stderr
    rows = _md_task_rows((run_dir / "summary.md").read_text())
    assert rows["reasoning"] == ["0.000", "n/a", "0.000", "0"]
    assert rows["customer-qa"] == ["n/a", "n/a", "n/a", "0"]
    assert _terminal_task_rows(proc.stdout)["reasoning"] == ["0.000", "n/a", "0.000", "0"]


def test_a_shard_run_says_it_is_a_shard_in_every_report(tmp_path: Path) -> None:
    """`evalkit run --shard 2/4` records the shard in manifest.options and its share of the cases
    in manifest.counts["planned"]; the terminal table, report.html and summary.md name the shard
    and both counts instead of presenting 6 results as a run of the 20-case suite."""
    tasks = ["classify", "customer-qa", "reasoning"]
    results = [result(f"c{i}", tasks[i % 3], tasks[i % 3]) for i in range(6)]
    plain = make_run(tmp_path / "plain", results)
    run_dir = make_run(tmp_path / "shard", results, options={"shard": "2/4"})
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["suite"]["n_cases"] = 20
    manifest["counts"] = {**manifest.get("counts", {}), "planned": 6}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    scope = "shard 2/4 of suite demo (6 of its 20 cases)"

    proc = run_cli("report", run_dir)
    assert proc.returncode == 0, proc.stderr
    assert scope in " ".join(proc.stdout.split())
    html = (run_dir / "report.html").read_text()
    header = _text(html.split("<header>", 1)[1].split("</header>", 1)[0])
    assert scope in header and "(20 cases" not in header
    assert scope in _text(html.split("<main>", 1)[1].split("<h2>Headline", 1)[0])
    markdown = (run_dir / "summary.md").read_text()
    assert markdown.startswith("## evalkit: demo (shard 2/4)\n")
    assert scope in markdown.split("| Metric", 1)[0]

    proc = run_cli("report", plain)  # a whole-suite run says nothing of shards
    assert proc.returncode == 0, proc.stderr
    for where in (proc.stdout, (plain / "report.html").read_text(), (plain / "summary.md").read_text()):
        assert "shard 2/4" not in where and "figures cover this shard" not in where


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


def _finish_command(text: str) -> list[str]:
    """The resume command a report prints after "To complete it, run", as words."""
    import shlex

    text = re.sub(r"</?code>", "`", text)  # report.html marks the command up as code, summary.md in backticks
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", text)).split())
    start = text.index("To complete it, run `") + len("To complete it, run `")
    return shlex.split(text[start:text.index("`", start)])


def test_the_reports_of_a_stopped_run_name_its_directory_in_the_resume_command(tmp_path: Path) -> None:
    """summary.md and report.html of a run stopped early print the command that finishes it with
    the run directory itself (not a RUN_DIR placeholder), as written by `evalkit run` and again by
    `evalkit report`; the command from summary.md, run as printed, finishes the run."""
    from tests.fake_openai import FakeOpenAI, Reply
    from tests.fault_helpers import make_cases, ok_reply, write_case_suite

    cases = make_cases(12)
    suite = write_case_suite(tmp_path / "my suites" / "s", cases)
    broken = {"on": True}

    def decide(body: dict, headers: dict) -> object:
        cid = body["messages"][-1]["content"][1:5]
        return Reply(status=502, error_message="bad gateway") if broken["on"] and cid >= "c003" else ok_reply(cid)

    with FakeOpenAI(decide) as router:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", router.base_url, "--out", tmp_path / "my runs",
                       "--retries", "0", "--max-error-rate", "0.1", "--concurrency", "1", "-q")
        assert proc.returncode == 3, proc.stderr  # the error budget stopped it
        run_dir = next((tmp_path / "my runs").glob("*/*"))
        assert str(run_dir) in " ".join(proc.stderr.split())  # the terminal names it
        for name in ("summary.md", "report.html"):
            command = _finish_command((run_dir / name).read_text())
            assert command[:2] == ["evalkit", "run"] and command[-2:] == ["--resume", str(run_dir)], (name, command)
        written = (run_dir / "summary.md").read_text()
        proc = run_cli("report", run_dir)
        assert proc.returncode == 0, proc.stderr
        assert _finish_command((run_dir / "summary.md").read_text()) == _finish_command(written)
        assert _finish_command((run_dir / "report.html").read_text()) == _finish_command(written)
        stored = {json.loads(line)["id"] for line in (run_dir / "results.jsonl").read_text().splitlines()}
        assert 0 < len(stored) < len(cases)
        broken["on"] = False
        finished = run_cli(*_finish_command(written)[1:])
        assert finished.returncode == 0, finished.stderr
    lines = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(c.id for c in cases)  # each case once: the rest were sent
    assert all(r["status"] == "ok" for r in lines if r["id"] not in stored)


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
