"""From a log of 3,000 requests to a suite and a first run, through the real CLI.

The log comes from examples/traffic/make_log.py: CLINC150 prompts with repeats, near-repeats,
personal data and secrets typed in, multi-turn conversations, failed requests and a rare route.
One command must write a suite of the requested size with every observed route represented, no
personal data of the listed kinds and no duplicates; `evalkit run` on it must work and warn that
its labels are the router's own.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import pytest

from evalkit.scrub import Scrubber
from evalkit.suites import load_suite
from evalkit.traffic.sample import normalise
from tests.conftest import ROOT, run_cli

HEADER = "x-model-router-selected-route"
SAMPLE = 300


def load_generator():
    spec = importlib.util.spec_from_file_location("make_log", ROOT / "examples" / "traffic" / "make_log.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_log"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("traffic")
    generator = load_generator()
    rows, injected = generator.make_log(3000, seed=7)
    log = tmp / "traffic.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    proc = run_cli("suite", "from-traffic", log, "--router", ROOT / "suites" / "clinc150-domains" / "router.json",
                   "--out", tmp / "from-traffic", "--messages-field", "request.messages",
                   "--route-field", f"response.headers.{HEADER}", "--sample", str(SAMPLE), "--seed", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    return {"tmp": tmp, "rows": rows, "injected": injected, "report": json.loads(proc.stdout),
            "suite": tmp / "from-traffic"}


def case_text(case) -> str:
    return case.user_text


def test_suite_has_the_requested_size_and_every_observed_route(built):
    suite = load_suite(built["suite"])
    assert len(suite.cases) == SAMPLE == built["report"]["n_cases"]
    observed = built["injected"].routes
    assert len(observed) == 11 and "meta" in observed
    routes = {c.expected_route for c in suite.cases}
    assert routes == observed
    # the rare route (6 requests in 3,000) keeps all of them: under the floor of 10
    assert sum(1 for c in suite.cases if c.expected_route == "meta") == 6
    assert all(c.label_source == "router" and c.reviewed is False for c in suite.cases)
    assert built["report"]["skipped"] == {"no_route": 30}


def test_no_personal_data_is_left(built):
    texts = [p.read_text(encoding="utf-8") for p in built["suite"].iterdir()]
    everything = "\n".join(texts)
    values = [v for vs in built["injected"].values.values() for v in vs]
    assert len(values) > 100
    leaked = [v for v in values if v in everything]
    assert leaked == []
    compact = re.sub(r"[\s\-]", "", everything)
    cards = [re.sub(r"\D", "", v) for v in built["injected"].values["card"]]
    assert [c for c in cards if c in compact] == []
    scrubber = Scrubber()
    for case in load_suite(built["suite"]).cases:
        for message in case.own_messages():
            result = scrubber.scrub(message["content"])
            assert sum(result.counts.values()) == 0, (case.id, dict(result.counts))
    report = built["report"]
    assert set(report["scrubbed_log"]) == {"email", "phone", "card", "iban", "ip", "api_key"}
    readme = (built["suite"] / "README.md").read_text()
    assert "| email | `<EMAIL>` |" in readme


def test_no_duplicates(built):
    from evalkit.emulator.classifier import encode

    suite = load_suite(built["suite"])
    singles = [c for c in suite.cases if c.session is None]
    keys = [normalise(case_text(c)) for c in singles]
    assert len(keys) == len(set(keys))
    vectors = encode([case_text(c) for c in singles])
    sims = vectors @ vectors.T
    for i in range(len(singles)):
        sims[i, i] = 0.0
    assert float(sims.max()) < 0.95
    # The generator's near-repeats that differ even after normalising and are as similar as the
    # threshold says duplicates are: never both in the suite.
    pairs = [p for p in built["injected"].near_pairs if normalise(p[0]) != normalise(p[1])]
    left, right = encode([p[0] for p in pairs]), encode([p[1] for p in pairs])
    near = [p for p, s in zip(pairs, (left * right).sum(axis=1)) if s >= 0.95]
    assert len(near) > 20
    present = {normalise(case_text(c)) for c in singles}
    assert not [p for p in near if normalise(p[0]) in present and normalise(p[1]) in present]
    assert built["report"]["sample"]["n_exact_duplicates"] >= 300


def test_conversations_stay_whole(built):
    suite = load_suite(built["suite"])
    sessions: dict[str, list[int]] = {}
    for case in suite.cases:
        if case.session:
            sessions.setdefault(case.session, []).append(case.turn)
    for turns in sessions.values():
        assert turns == list(range(1, len(turns) + 1)) and len(turns) >= 2


def test_run_on_the_new_suite_works_and_warns_that_labels_are_unreviewed(built):
    runs = built["tmp"] / "runs"
    proc = run_cli("run", built["suite"], "--out", runs, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "300 of 300 cases have unreviewed pre-labels" in proc.stderr
    assert "circular" in proc.stderr and "evalkit suite review" in proc.stderr
    run_dir = next((runs / "from-traffic").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["review"]["n_unreviewed"] == 300 and summary["review"]["circular"] is True
    assert summary["review"]["accuracy_reviewed"] is None
    html = (run_dir / "report.html").read_text()
    assert 'id="unreviewed-labels"' in html and "circular" in html
    assert "Warning: unreviewed labels" in (run_dir / "summary.md").read_text()
