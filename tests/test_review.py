"""The review session and its HTTP API (no browser): ordering, the journal, atomic saves, and who
may post."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from evalkit.errors import SuiteError, UsageError
from evalkit.records import Case
from evalkit.review import ClassifierView, Edit, Journal, ReviewServer, open_review, review_order
from evalkit.review.session import JOURNAL, atomic_write_lines
from tests.conftest import write_suite

CASES = [
    {"id": "c1", "prompt": "Classify this ticket: the export button does nothing", "expected_route": "classify",
     "label_source": "router", "reviewed": False, "router_route": "classify"},
    {"id": "c2", "prompt": "Can I pause my subscription for two months?", "expected_route": "customer-qa",
     "label_source": "router", "reviewed": False, "router_route": "customer-qa", "labeler_route": "reasoning",
     "tags": ["labeler-disagrees"]},
    {"id": "c3", "prompt": "Prove that the sum of two odd numbers is even", "expected_route": "reasoning",
     "label_source": "router", "reviewed": False, "router_route": "reasoning"},
    {"id": "c4", "prompt": "Write a haiku about the sea", "expected_route": "fallback", "label_source": "human",
     "reviewed": True, "router_route": "classify"},
]


def case(cid, expected, *, reviewed=False, labeler=None):
    return Case(id=cid, prompt="p", expected_route=expected, reviewed=reviewed, labeler_route=labeler)


def view(route, a, b):
    return ClassifierView(route=route, top=(("x", a), ("y", b)))


def test_review_order_puts_labeler_then_classifier_disagreements_then_small_margins_first():
    cases = [case("agree-wide", "classify"), case("reviewed", "classify", reviewed=True, labeler="reasoning"),
             case("agree-narrow", "classify"), case("classifier-disagrees", "classify"),
             case("labeler-disagrees", "classify", labeler="reasoning")]
    views = {"agree-wide": view("classify", 0.6, 0.2), "reviewed": view("reasoning", 0.5, 0.49),
             "agree-narrow": view("classify", 0.41, 0.40), "classifier-disagrees": view("reasoning", 0.5, 0.3),
             "labeler-disagrees": view("classify", 0.7, 0.1)}
    assert review_order(cases, views) == ["labeler-disagrees", "classifier-disagrees", "agree-narrow", "agree-wide",
                                          "reviewed"]


def test_journal_last_edit_wins_undo_removes_and_a_torn_line_is_ignored(tmp_path):
    journal = Journal(tmp_path / JOURNAL)
    journal.append([Edit("a", "classify"), Edit("b", "reasoning"), Edit("a", "fallback"), Edit("b", None, undo=True)])
    with open(tmp_path / JOURNAL, "ab") as fh:
        fh.write(b'{"id": "c", "expected_rou')  # a crash in mid-write
    assert journal.pending() == {"a": "fallback"}


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text("old\n")

    class Boom(Exception):
        pass

    def lines():
        yield "new line 1"
        raise Boom  # the process dies halfway through writing

    with pytest.raises(Boom):
        atomic_write_lines(path, lines())  # type: ignore[arg-type]
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cases.jsonl"]


@pytest.fixture
def suite(tmp_path) -> Path:
    return write_suite(tmp_path / "suite", CASES)


def rows(folder: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (folder / "cases.jsonl").read_text().splitlines())}


def test_save_sets_the_label_reviewed_and_human_and_touches_nothing_else(suite):
    before = rows(suite)
    session = open_review(suite)
    result = session.save([Edit("c1", "customer-qa"), Edit("c3", "reasoning")])
    after = rows(suite)
    assert result["saved"] == ["c1", "c3"] and result["reviewed"] == 3 and result["total"] == 4
    assert after["c1"] == {**before["c1"], "expected_route": "customer-qa", "reviewed": True, "label_source": "human"}
    assert after["c3"] == {**before["c3"], "reviewed": True, "label_source": "human"}  # confirmed as it was
    assert after["c2"] == before["c2"] and after["c4"] == before["c4"]
    assert not (suite / JOURNAL).exists()


def test_an_edit_journaled_before_a_crash_comes_back(suite):
    session = open_review(suite)
    session.record([Edit("c2", "reasoning")])
    reopened = open_review(suite)  # a new process after the crash
    assert reopened.journal.pending() == {"c2": "reasoning"}
    assert rows(suite)["c2"]["reviewed"] is False


def test_save_rejects_unknown_tasks_and_cases(suite):
    session = open_review(suite)
    with pytest.raises(UsageError, match="unknown task 'billing'"):
        session.save([Edit("c1", "billing")])
    with pytest.raises(UsageError, match="no case 'zz'"):
        session.save([Edit("zz", "classify")])
    assert rows(suite)["c1"]["reviewed"] is False


def test_review_refuses_a_csv_suite(tmp_path):
    folder = write_suite(tmp_path / "s", "id,prompt,expected_route\nq1,hello there,classify\n", cases_name="cases.csv")
    with pytest.raises(SuiteError, match="JSON Lines case files only"):
        open_review(folder)


def test_api_needs_the_page_token_and_the_loopback_host(suite):
    session = open_review(suite)
    with ReviewServer(session) as server:
        assert server.url.startswith("http://127.0.0.1:")
        token = server.app.state.token
        edits = {"edits": [{"id": "c1", "expected_route": "reasoning"}]}
        page = httpx.get(server.url)
        assert page.status_code == 200 and f'content="{token}"' in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        no_token = httpx.post(server.url + "api/save", json=edits)
        assert no_token.status_code == 403
        rebinding = httpx.post(server.url + "api/save", json=edits,
                               headers={"X-Review-Token": token, "Host": "evil.example:80"})
        assert rebinding.status_code == 421
        bad_task = httpx.post(server.url + "api/save", json={"edits": [{"id": "c1", "expected_route": "nope"}]},
                              headers={"X-Review-Token": token})
        assert bad_task.status_code == 400 and "unknown task" in bad_task.json()["error"]
        assert rows(suite)["c1"]["expected_route"] == "classify"
        ok = httpx.post(server.url + "api/save", json=edits, headers={"X-Review-Token": token})
        assert ok.status_code == 200 and ok.json()["reviewed"] == 2
    assert rows(suite)["c1"]["expected_route"] == "reasoning"


def test_cli_review_serves_on_loopback_and_stops_on_ctrl_c(suite):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT, cli_env

    # A real process: Ctrl-C (SIGINT) stopping the server and the command's exit are the point.
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", "suite", "review", str(suite)], cwd=ROOT, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 300
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            if "reviewing 4 cases of suite: " in line:
                url = line.rsplit(" ", 1)[1].strip()
        assert url is not None and url.startswith("http://127.0.0.1:")
        page = httpx.get(url)
        assert page.status_code == 200 and 'data-case-id="c2"' in page.text
        assert "1 of 4 reviewed" in page.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_review_of_a_missing_suite_exits_2(tmp_path):
    from tests.conftest import run_cli

    proc = run_cli("suite", "review", tmp_path / "nope")
    assert proc.returncode == 2
    assert "suite not found" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_review_on_a_port_in_use_exits_3_with_a_message(suite):
    """The local router's server (here the review page's) cannot listen: exit 3, a message, no traceback."""
    import socket

    from tests.conftest import run_cli

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("suite", "review", suite, "--port", str(port))
    assert proc.returncode == 3, proc.stderr
    assert f"127.0.0.1:{port}: the local router cannot listen on its port" in proc.stderr
    assert "found:" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr


def test_review_of_a_missing_suite_says_so_before_anything_else(tmp_path):
    from tests.conftest import run_cli

    proc = run_cli("suite", "review", tmp_path / "nowhere")
    assert proc.returncode == 2 and "suite not found" in proc.stderr
    assert "embedding" not in proc.stderr and "loading" not in proc.stderr  # no promise of work that never starts
