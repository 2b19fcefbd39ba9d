"""Suites from traffic, piece by piece: reading logs (fields, formats, conversations), deduplication,
allocation by route, diverse picks, the labeler (against a local OpenAI-compatible server) and the
command's bad-input messages."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evalkit.errors import SuiteError, UsageError
from evalkit.scrub import Scrubber
from evalkit.suites import load_suite
from evalkit.traffic import LabelerSettings, LogFields, TrafficOptions, build_suite
from evalkit.traffic.logs import MISSING, read_log, resolve, split_path
from evalkit.traffic.sample import allocate, diverse_order, exact_dedup, near_duplicates, normalise
from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli
from tests.fake_openai import FakeOpenAI, Reply

LABELS = ["classify", "customer-qa", "reasoning", "fallback"]
HEADER = "x-model-router-selected-route"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def router_file(tmp_path: Path) -> Path:
    path = tmp_path / "router.json"
    path.write_text(json.dumps(TUTORIAL_ROUTER), encoding="utf-8")
    return path


def gateway_row(messages, route, session=None):
    row = {"request": {"messages": messages}, "response": {"headers": {HEADER: route} if route else {}}}
    if session:
        row["meta"] = {"affinity": session}
    return row


GATEWAY = LogFields(route=f"response.headers.{HEADER}", messages="request.messages")


def hash_encoder(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in embedding for unit tests of the sampling plumbing: bag of words
    hashed into 64 dimensions, L2-normalised (similar wording, similar vector)."""
    out = np.zeros((len(texts), 64))
    for i, text in enumerate(texts):
        for word in normalise(text).split():
            out[i, zlib.crc32(word.encode()) % 64] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return out / norms


# -- field paths ------------------------------------------------------------------------------

def test_split_path_handles_escaped_dots():
    assert split_path("a.b\\.c.0") == ["a", "b.c", "0"]


def test_resolve_walks_dicts_lists_and_json_strings():
    row = {"req": {"messages": [{"content": "hi"}]}, "cell": json.dumps({"route": "classify"}),
           "flat.name": "flat wins", "flat": {"name": "nested"}}
    assert resolve(row, "req.messages.0.content") == "hi"
    assert resolve(row, "req.messages.-1.content") == "hi"
    assert resolve(row, "cell.route") == "classify"
    assert resolve(row, "flat.name") == "flat wins"
    assert resolve(row, "req.missing") is MISSING
    assert resolve(row, "req.messages.5") is MISSING


# -- reading logs -------------------------------------------------------------------------------

def test_rows_without_route_or_prompt_are_counted_not_kept(tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [
        gateway_row([{"role": "user", "content": "Why was I charged twice?"}], "customer-qa"),
        gateway_row([{"role": "user", "content": "hello"}], None),
        gateway_row([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "classify"),
        {"request": {"messages": "not a list"}, "response": {"headers": {HEADER: "classify"}}},
    ])
    readout = read_log(log, GATEWAY, labels=LABELS, scrubber=Scrubber())
    assert readout.n_rows == 4
    assert readout.n_requests == 1
    assert dict(readout.skipped) == {"no_route": 1, "not_user_last": 1, "bad_messages": 1}


def test_text_is_scrubbed_as_it_is_read(tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [
        {"prompt": "I am kim@example.com, card 4111 1111 1111 1111", "route": "classify"}])
    readout = read_log(log, LogFields(), labels=LABELS, scrubber=Scrubber())
    assert readout.conversations[0].requests[0].messages == [
        {"role": "user", "content": "I am <EMAIL>, card <CARD>"}]
    assert dict(readout.scrubbed) == {"email": 1, "card": 1}


def test_history_chains_rows_into_one_conversation(tmp_path):
    sys_msg = {"role": "system", "content": "be brief"}
    t1 = [sys_msg, {"role": "user", "content": "I want to move to the Business plan"}]
    t2 = [*t1, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "and if I pay yearly?"}]
    t3 = [*t2, {"role": "assistant", "content": "Then..."}, {"role": "user", "content": "prove the discount is 17%"}]
    other = [{"role": "user", "content": "Classify: the app crashes"}]
    log = write_jsonl(tmp_path / "log.jsonl", [gateway_row(t1, "customer-qa"), gateway_row(other, "classify"),
                                               gateway_row(t2, "customer-qa"), gateway_row(t3, "reasoning")])
    readout = read_log(log, GATEWAY, labels=LABELS, scrubber=Scrubber())
    sizes = sorted(c.size for c in readout.conversations)
    assert sizes == [1, 3]
    conv = next(c for c in readout.conversations if c.size == 3)
    assert conv.routes == ["customer-qa", "customer-qa", "reasoning"]


def test_session_field_groups_rows_that_carry_only_the_new_message(tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [
        gateway_row([{"role": "user", "content": "first question"}], "customer-qa", session="s1"),
        gateway_row([{"role": "user", "content": "unrelated"}], "classify", session="s2"),
        gateway_row([{"role": "user", "content": "follow-up"}], "reasoning", session="s1"),
    ])
    fields = LogFields(route=GATEWAY.route, messages=GATEWAY.messages, session="meta.affinity")
    readout = read_log(log, fields, labels=LABELS, scrubber=Scrubber())
    assert [c.size for c in readout.conversations] == [2, 1]


def test_csv_and_parquet_logs_are_read_like_jsonl(tmp_path):
    import pandas as pd

    rows = [{"text": "Why is my invoice higher?", "route": "customer-qa"},
            {"text": "Classify: login fails", "route": "classify"}]
    pd.DataFrame(rows).to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "log.parquet")
    for name in ("log.csv", "log.parquet"):
        readout = read_log(tmp_path / name, LogFields(prompt="text"), labels=LABELS, scrubber=Scrubber())
        assert [c.requests[0].user_text for c in readout.conversations] == [r["text"] for r in rows]
        assert readout.routes == Counter({"customer-qa": 1, "classify": 1})


def test_unknown_route_is_an_error_naming_the_route_and_the_fix(tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [{"prompt": "hi", "route": "billing"}, {"prompt": "yo", "route": "classify"}])
    with pytest.raises(SuiteError, match=r"1 requests have a route that is not a task") as info:
        read_log(log, LogFields(), labels=LABELS, scrubber=Scrubber())
    assert "'billing' (1)" in info.value.message and "--skip-unknown-routes" in info.value.message
    readout = read_log(log, LogFields(), labels=LABELS, scrubber=Scrubber(), skip_unknown_routes=True)
    assert readout.n_requests == 1 and readout.skipped["unknown_route"] == 1


def test_wrong_route_field_names_the_field_and_shows_the_keys(tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [{"prompt": "hi", "selected": "classify"}])
    with pytest.raises(SuiteError, match="no row has a route at 'route'") as info:
        read_log(log, LogFields(), labels=LABELS, scrubber=Scrubber())
    assert "prompt, selected" in info.value.message and "--route-field" in info.value.message


def test_empty_field_path_is_a_usage_error(tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [{"prompt": "hi", "route": "classify"}])
    with pytest.raises(UsageError, match="dotted path"):
        read_log(log, LogFields(route="a..b"), labels=LABELS, scrubber=Scrubber())


# -- deduplication, allocation, diversity ---------------------------------------------------------

def test_normalise_ignores_case_punctuation_spacing_and_politeness():
    assert normalise("Hey, what  gas does this car use?!") == normalise("what gas does this car use please")
    assert normalise("what gas does this car use") != normalise("what gas does this truck use")


def test_exact_duplicates_keep_the_majority_route(tmp_path):
    rows = [{"prompt": "Reset my password", "route": "classify"},
            {"prompt": "reset my password!", "route": "customer-qa"},
            {"prompt": "Reset my password.", "route": "customer-qa"},
            {"prompt": "Something else", "route": "classify"}]
    readout = read_log(write_jsonl(tmp_path / "log.jsonl", rows), LogFields(), labels=LABELS, scrubber=Scrubber())
    units, dropped = exact_dedup(readout.conversations, readout.routes)
    assert dropped == 2
    assert [(u.conversation.requests[0].user_text, u.conversation.requests[0].route, u.copies) for u in units] == [
        ("Reset my password", "customer-qa", 3), ("Something else", "classify", 1)]


def test_allocate_gives_every_route_its_floor_then_shares_by_traffic():
    quotas, floor = allocate({"a": 900, "b": 90, "c": 3, "d": 7}, 100, 10)
    # floors: a 10, b 10, c 3 (all it has), d 7 -> 30; the other 70 by remaining traffic 890:80
    # a: 70*890/970 = 64.23 -> 64, b: 70*80/970 = 5.77 -> 6 (largest remainder)
    assert floor == 10
    assert quotas == {"a": 74, "b": 16, "c": 3, "d": 7}


def test_allocate_shrinks_the_floor_when_routes_outnumber_the_sample():
    quotas, floor = allocate({"a": 50, "b": 50, "c": 50, "d": 50}, 8, 10)
    assert floor == 2
    assert quotas == {"a": 2, "b": 2, "c": 2, "d": 2}


def test_allocate_takes_everything_when_the_log_is_small():
    assert allocate({"a": 3, "b": 4}, 100, 10) == ({"a": 3, "b": 4}, 10)


def test_near_duplicates_drop_the_later_of_a_close_pair():
    v = np.array([[1.0, 0.0], [0.999, 0.0447], [0.0, 1.0], [0.96, 0.28]])
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    # row 1 is 0.999 similar to row 0; row 3 is 0.96 similar to row 0 (under 0.98)
    assert near_duplicates(v, 0.98) == [False, True, False, False]
    assert near_duplicates(v, 0.95) == [False, True, False, True]


def test_diverse_order_takes_one_from_each_cluster_first():
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0, 0], 0.1, size=(6, 3))
    b = rng.normal([0, 5, 0], 0.1, size=(3, 3))
    v = np.vstack([a, b])
    order = diverse_order(v, 2, seed=0)
    assert sorted(order) == list(range(9))
    first_two = {int(i >= 6) for i in order[:2]}
    assert first_two == {0, 1}


# -- the whole build, with the labeler on a local server ---------------------------------------

def small_log(tmp_path: Path) -> Path:
    rows = []
    for i in range(12):
        rows.append({"prompt": f"Classify this ticket number {i}: the export button does nothing for {i} users",
                     "route": "classify"})
    for i in range(8):
        rows.append({"prompt": f"Question {i}: can I change my plan in month {i} and keep my data?", "route": "customer-qa"})
    rows.append({"prompt": "Prove that the sum of two odd numbers is even, step by step. Mail kim@example.com",
                 "route": "reasoning"})
    rows.append({"prompt": "Classify this ticket number 3: the export button does nothing for 3 users",
                 "route": "classify"})  # an exact duplicate
    return write_jsonl(tmp_path / "log.jsonl", rows)


def test_build_writes_a_suite_that_loads_with_prelabels(tmp_path):
    report = build_suite(small_log(tmp_path), router_file(tmp_path), tmp_path / "suite",
                         TrafficOptions(sample=10, floor=2, seed=3), encode=hash_encoder)
    suite = load_suite(tmp_path / "suite")
    assert len(suite.cases) == 10 == report.n_cases
    assert {c.expected_route for c in suite.cases} == {"classify", "customer-qa", "reasoning"}
    assert all(c.label_source == "router" and c.reviewed is False and c.router_route == c.expected_route
               for c in suite.cases)
    assert report.sample.n_exact_duplicates == 1
    assert report.scrubbed_log == {"email": 1}
    readme = (tmp_path / "suite" / "README.md").read_text()
    assert "kim@example.com" not in (tmp_path / "suite" / "cases.jsonl").read_text()
    assert "| email | `<EMAIL>` | 1 | 1 |" in readme
    assert "at least 2 cases" in readme


def test_same_seed_same_suite(tmp_path):
    log, router = small_log(tmp_path), router_file(tmp_path)
    build_suite(log, router, tmp_path / "a", TrafficOptions(sample=8, floor=1, seed=5), encode=hash_encoder)
    build_suite(log, router, tmp_path / "b", TrafficOptions(sample=8, floor=1, seed=5), encode=hash_encoder)
    assert (tmp_path / "a" / "cases.jsonl").read_text() == (tmp_path / "b" / "cases.jsonl").read_text()


def test_multi_turn_conversation_is_written_as_a_session(tmp_path):
    t1 = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "I want to move to Business"}]
    t2 = [*t1, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "and if I pay yearly?"}]
    log = write_jsonl(tmp_path / "log.jsonl", [gateway_row(t1, "customer-qa"), gateway_row(t2, "reasoning"),
                                               gateway_row([{"role": "user", "content": "Classify: crash"}], "classify")])
    build_suite(log, router_file(tmp_path), tmp_path / "suite", TrafficOptions(fields=GATEWAY, sample=3, floor=1),
                encode=hash_encoder)
    cases = [json.loads(line) for line in (tmp_path / "suite" / "cases.jsonl").read_text().splitlines()]
    session = [c for c in cases if c.get("session")]
    assert [c["turn"] for c in session] == [1, 2]
    assert session[0]["messages"] == t1
    assert session[1]["prompt"] == "and if I pay yearly?"
    assert [c["expected_route"] for c in session] == ["customer-qa", "reasoning"]
    load_suite(tmp_path / "suite")


def labeler_reply(body, headers):
    """Proposes reasoning for anything that mentions 'Prove', customer-qa for 'plan', else classify."""
    prompt = body["messages"][0]["content"]
    message = prompt.split("<message>")[1]
    if "Prove" in message:
        return Reply(content='{"route": "reasoning"}')
    if "plan" in message:
        return Reply(content='{"route": "reasoning"}' if "month 1 " in message else '{"route": "customer-qa"}')
    if "number 0" in message:
        return Reply(content="I cannot decide")
    return Reply(content='{"route": "classify"}')


def test_labeler_proposals_and_disagreements(tmp_path):
    with FakeOpenAI(labeler_reply) as fake:
        settings = LabelerSettings(model="labeler-model", base_url=fake.base_url, api_key_env="LABELER_KEY")
        report = build_suite(small_log(tmp_path), router_file(tmp_path), tmp_path / "suite",
                             TrafficOptions(sample=22, floor=1, labeler=settings), encode=hash_encoder,
                             labeler_key="secret-labeler-key")
        sent = [m["content"] for body in fake.requests for m in body["messages"]]
        auth = {h.get("authorization") for h in fake.request_headers}
    assert auth == {"Bearer secret-labeler-key"}
    assert not any("kim@example.com" in s for s in sent) and any("<EMAIL>" in s for s in sent)
    cases = {c.id: c for c in load_suite(tmp_path / "suite").cases}
    by_prompt = {c.prompt: c for c in cases.values()}
    month1 = by_prompt["Question 1: can I change my plan in month 1 and keep my data?"]
    assert month1.labeler_route == "reasoning" and month1.expected_route == "customer-qa"
    assert month1.tags == ["labeler-disagrees"]
    undecided = by_prompt["Classify this ticket number 0: the export button does nothing for 0 users"]
    assert undecided.labeler_route is None and undecided.tags == []
    agreeing = [c for c in cases.values() if c.labeler_route == c.expected_route]
    assert agreeing and all(c.tags == [] for c in agreeing)
    assert report.labeler["n_disagreements"] == 1
    assert report.labeler["n_unparseable"] == 1
    assert "secret-labeler-key" not in "".join(p.read_text() for p in (tmp_path / "suite").iterdir())


def test_labeler_that_cannot_be_reached_writes_nothing(tmp_path):
    with FakeOpenAI(Reply(status=401, error_message="bad key")) as fake:
        settings = LabelerSettings(model="m", base_url=fake.base_url)
        with pytest.raises(Exception, match="every call failed"):
            build_suite(small_log(tmp_path), router_file(tmp_path), tmp_path / "suite",
                        TrafficOptions(sample=5, floor=1, labeler=settings), encode=hash_encoder, labeler_key="k")
    assert not (tmp_path / "suite").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".suite")] == []


# -- the command's bad input ------------------------------------------------------------------------

def test_cli_refuses_an_existing_suite_folder(tmp_path):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "cases.jsonl").write_text("keep me\n")
    proc = run_cli("suite", "from-traffic", small_log(tmp_path), "--router", router_file(tmp_path),
                   "--out", tmp_path / "suite")
    assert proc.returncode == 2, proc.stderr
    assert "already exists and is not empty" in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "suite" / "cases.jsonl").read_text() == "keep me\n"
    (tmp_path / "afile").write_text("keep me too\n")
    proc = run_cli("suite", "from-traffic", small_log(tmp_path), "--router", router_file(tmp_path),
                   "--out", tmp_path / "afile")
    assert proc.returncode == 2 and "the output folder is a file" in proc.stderr, proc.stderr
    assert (tmp_path / "afile").read_text() == "keep me too\n"


@pytest.mark.parametrize("args,expect", [
    (["--sample", "0"], "--sample"),
    (["--near-duplicate", "0.2"], "--near-duplicate"),
    (["--phone-region", "XX"], "--phone-region"),
    (["--route-field", "nope"], "no row has a route at 'nope'"),
    (["--labeler", "m", "--labeler-api-key-env", "EVALKIT_TEST_UNSET_KEY"], "EVALKIT_TEST_UNSET_KEY"),
])
def test_cli_bad_options_exit_2_with_a_fix(tmp_path, args, expect):
    proc = run_cli("suite", "from-traffic", small_log(tmp_path), "--router", router_file(tmp_path),
                   "--out", tmp_path / "suite", *args, env=cli_env())
    assert proc.returncode == 2, proc.stderr
    assert expect in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "suite").exists()


# -- malformed lines: a rotated or truncated log ----------------------------------------------------

def with_malformed_lines(log: Path) -> Path:
    """The log with a line of text as line 10, a JSON array as line 16 and a cut-off final line."""
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(9, "2026-03-01 12:00:00 gateway restarted\n")
    lines.insert(15, '["not", "an", "object"]\n')
    lines.append('{"prompt": "Classify this ticket: the export butt')
    log.write_text("".join(lines), encoding="utf-8")
    return log


def test_malformed_lines_are_left_out_counted_and_warned_about(tmp_path):
    log = with_malformed_lines(small_log(tmp_path))  # 22 requests, lines 10, 16 and 25 malformed
    proc = run_cli("suite", "from-traffic", log, "--router", router_file(tmp_path), "--out", tmp_path / "suite",
                   "--sample", "10", "--floor", "2", env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert "left out 3 malformed lines (lines 10, 16, 25)" in proc.stderr and "warning:" in proc.stderr
    assert "rows left out: malformed 3 (lines 10, 16, 25)" in proc.stdout
    assert "from 22 requests (25 rows)" in proc.stdout
    assert len(load_suite(tmp_path / "suite").cases) == 10
    readme = (tmp_path / "suite" / "README.md").read_text()
    assert "- 3: a line that is not a JSON object" in readme and "(lines 10, 16, 25)" in readme
    as_json = run_cli("suite", "from-traffic", log, "--router", router_file(tmp_path), "--out", tmp_path / "again",
                      "--sample", "10", "--floor", "2", "--json", env=cli_env())
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["skipped"] == {"malformed": 3} and report["malformed_lines"] == [10, 16, 25]


def test_a_log_of_mostly_malformed_lines_is_an_error_and_writes_nothing(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"prompt": "Why was I charged twice?", "route": "customer-qa"}\n'
                   + "".join(f"12:00:0{i} GET /v1/chat/completions 200\n" for i in range(3)), encoding="utf-8")
    proc = run_cli("suite", "from-traffic", log, "--router", router_file(tmp_path), "--out", tmp_path / "suite",
                   env=cli_env())
    assert proc.returncode == 2, proc.stderr
    assert f"{log}:2: 3 of 4 lines are not a JSON object: this is not a JSON Lines log" in proc.stderr
    assert "invalid JSON" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "suite").exists()


def test_a_line_that_is_not_utf8_is_malformed_too(tmp_path):
    log = write_jsonl(tmp_path / "log.jsonl", [{"prompt": "Why was I charged twice?", "route": "customer-qa"},
                                               {"prompt": "Classify: the export fails", "route": "classify"}])
    with log.open("ab") as fh:
        fh.write(b"\xff\xfe\x00garbage\n")
    readout = read_log(log, LogFields(), labels=LABELS, scrubber=Scrubber())
    assert (readout.n_rows, readout.n_requests, dict(readout.skipped)) == (3, 2, {"malformed": 1})
    assert readout.malformed_lines == [3]
