"""`evalkit run --target do --candidate` and `evalkit router` end to end, with `evalkit serve`
standing in for both DigitalOcean endpoints.

Two recording proxies sit between evalkit and the server, one per plane, so the tests see every
request: which key went where, when the temporary router was created and deleted, and which
router each inference call addressed. The inference proxy can also start failing half-way.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import ROOT, cli_env, run_cli
from evalkit.emulator.server import LocalRouter

pytestmark = pytest.mark.slow  # end to end: a DigitalOcean stand-in, real processes for the signal tests

ACCESS_KEY = "sk-do-test-access-key"
TOKEN = "dop_v1_test-token"
ROUTERS = "/v2/gen-ai/models/routers"
DEPLOYED = "cost-governance-demo"
TEMP_RE = re.compile(rf"^{DEPLOYED}-evalkit-[0-9a-f]{{6}}$")
PER_ROUTE = 6  # cases of each route taken from the bundled suite
# The proxies and the polling helpers share one TLS context: httpx would load the CA bundle for each
# request otherwise (seconds over the module), though every server here is plain HTTP on loopback.
TLS = ssl.create_default_context()


# -- the stand-in DigitalOcean ---------------------------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    model: str | None
    at: float


@dataclass
class Proxy:
    """Forwards every request to ``upstream``; records it; can fail chat calls after the first N."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)
    fail_chat_after: int | None = None
    fail_create_after_forwarding: bool = False
    fail_delete: bool = False
    create_delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        model = None
        if request.url.path.endswith("/chat/completions"):
            try:
                model = json.loads(body).get("model")
            except ValueError:
                pass
        with self.lock:
            self.seen.append(Seen(request.method, request.url.path, request.headers.get("authorization"),
                                  model, time.monotonic()))
            n_chat = sum(1 for s in self.seen if s.path.endswith("/chat/completions"))
        if self.fail_delete and request.method == "DELETE":
            return JSONResponse({"id": "server_error", "message": "scripted delete outage"}, status_code=503)
        if model is not None and self.fail_chat_after is not None and n_chat > self.fail_chat_after:
            return JSONResponse({"error": {"message": "scripted outage", "type": "server_error"}}, status_code=500)
        if self.create_delay_s and request.method == "POST" and request.url.path == ROUTERS:
            await asyncio.sleep(self.create_delay_s)  # a slow API: the router appears only after this
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with httpx.AsyncClient(base_url=self.upstream, timeout=60, verify=TLS) as client:
            upstream = await client.request(request.method, request.url.path, params=request.query_params,
                                            content=body, headers=headers)
        if self.fail_create_after_forwarding and request.method == "POST" and request.url.path == ROUTERS:
            return JSONResponse({"id": "bad_gateway", "message": "upstream connection reset"}, status_code=502)
        drop = ("content-length", "transfer-encoding", "content-encoding", "connection")
        return Response(upstream.content, status_code=upstream.status_code,
                        headers={k: v for k, v in upstream.headers.items() if k.lower() not in drop})

    def chats(self) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith("/chat/completions")]


class Plane:
    """A loopback server for one plane; its requests go to the current test's ``Proxy``."""

    def __init__(self) -> None:
        self.proxy: Proxy | None = None

        async def dispatch(request: Request) -> Response:
            proxy = self.proxy
            if proxy is None:
                return JSONResponse({"id": "unavailable", "message": "no test is using this plane"}, status_code=503)
            return await proxy.forward(request)

        self.server = LocalRouter(Starlette(routes=[Route("/{path:path}", dispatch,
                                                          methods=["GET", "POST", "PUT", "DELETE"])]))


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator[str]:
    """The local router as `evalkit serve --state-dir DIR --latency-ms 40` builds it (no routers,
    40 ms of latency per chat call), on a loopback port of this process so that it shares the
    session's embedding model; `evalkit serve` as a process is tested in test_emulator_serve.py."""
    from evalkit.emulator import create_app

    state = tmp_path_factory.mktemp("serve-state")
    with LocalRouter(create_app([], state_dir=state, latency_ms=40)) as server:
        root = server.root_url
        created = httpx.post(root + ROUTERS, json=json.loads((ROOT / "suites/saas-support/router.json").read_text()))
        assert created.status_code == 200, created.text
        yield root


@pytest.fixture(scope="module")
def plane_servers() -> Iterator[tuple[Plane, Plane]]:
    """The two planes' loopback servers, started once for the module (the proxies behind them are not)."""
    inference, control = Plane(), Plane()
    with inference.server, control.server:
        yield inference, control


@pytest.fixture
def planes(serve: str, plane_servers: tuple[Plane, Plane]) -> Iterator[tuple[Proxy, Proxy, str, str]]:
    """(inference proxy, control proxy, inference URL, control-plane URL), fresh for each test."""
    inference, control = Proxy(serve), Proxy(serve)
    inf_plane, cp_plane = plane_servers
    inf_plane.proxy, cp_plane.proxy = inference, control
    try:
        yield inference, control, inf_plane.server.base_url, cp_plane.server.root_url
    finally:
        inf_plane.proxy = cp_plane.proxy = None
    leftovers = [r["name"] for r in routers(serve) if r["name"] != DEPLOYED]
    for r in routers(serve):  # keep the next test's world clean even when this one failed
        if r["name"] != DEPLOYED:
            httpx.delete(f"{serve}{ROUTERS}/{r['uuid']}", verify=TLS)
    assert not leftovers, f"routers left behind: {leftovers}"


def routers(root: str) -> list[dict[str, Any]]:
    """The routers on the server, read directly (not through evalkit's client)."""
    response = httpx.get(root + ROUTERS, params={"per_page": 200}, timeout=10, verify=TLS)
    response.raise_for_status()
    return response.json()["model_routers"]


def temporary(root: str) -> list[str]:
    return [r["name"] for r in routers(root) if TEMP_RE.match(r["name"])]


def do_env(inference_url: str, api_url: str, **extra: str) -> dict[str, str]:
    values = {"MODEL_ACCESS_KEY": ACCESS_KEY, "DIGITALOCEAN_TOKEN": TOKEN, "EVALKIT_DO_INFERENCE_URL": inference_url,
              "EVALKIT_DO_API_URL": api_url}
    return cli_env(**{**values, **extra})


# -- the suite and the candidate ---------------------------------------------------------------

def make_suite(folder: Path, per_route: int) -> Path:
    """A suite named mini: the first cases of each route of the bundled suite, with its router.json."""
    folder.mkdir()
    taken: dict[str, int] = {}
    lines = []
    for line in (ROOT / "suites/saas-support/cases.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case.get("session") or taken.get(case["expected_route"], 0) >= per_route:
            continue
        taken[case["expected_route"]] = taken.get(case["expected_route"], 0) + 1
        lines.append(json.dumps(case))
    (folder / "cases.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "router.json").write_text((ROOT / "suites/saas-support/router.json").read_text())
    (folder / "suite.yaml").write_text("name: mini\nrouter: router.json\ncases: cases.jsonl\n")
    return folder


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    return make_suite(tmp_path_factory.mktemp("suite") / "mini", PER_ROUTE)


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory) -> Path:
    """Two cases of each route: few enough that failing calls retried with backoff stay quick."""
    return make_suite(tmp_path_factory.mktemp("tiny") / "mini", 2)


REASONING_AS_TRANSLATION = "Translate a short passage between English and French, keeping names and numbers unchanged."


@pytest.fixture(scope="module")
def candidate(tmp_path_factory) -> Path:
    """The deployed config with the reasoning task described as something else entirely."""
    data = json.loads((ROOT / "suites/saas-support/router.json").read_text())
    for policy in data["policies"]:
        if policy["custom_task"]["name"] == "reasoning":
            policy["custom_task"]["description"] = REASONING_AS_TRANSLATION
    path = tmp_path_factory.mktemp("candidate") / "router.candidate.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def n_cases(suite: Path) -> int:
    return len((suite / "cases.jsonl").read_text().splitlines())


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "mini").iterdir() if p.is_dir()) if (out / "mini").is_dir() else []


def results(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def start_run(suite: Path, candidate: Path, out: Path, env: dict[str, str], *extra: str,
              ignore_sigint: bool = False) -> subprocess.Popen[str]:
    """`evalkit run --target do --candidate` as a real process: the tests that use it signal it
    (SIGINT, SIGTERM, a background job that ignores SIGINT) or watch the server while it runs."""
    def background() -> None:  # what a shell does to a job started with `&`
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "evalkit", "run", str(suite), "--target", "do", "--candidate",
                             str(candidate), "--out", str(out), "-c", "1", *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=background if ignore_sigint else None)


def wait_for(predicate: Any, *, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- the temporary router's life ---------------------------------------------------------------

def test_candidate_run_goes_through_a_temporary_router_that_is_deleted_after(planes, suite, candidate, tmp_path, serve):
    inference, control, inf_url, api_url = planes
    proc = start_run(suite, candidate, tmp_path / "out", do_env(inf_url, api_url))
    during = wait_for(lambda: temporary(serve), what="the temporary router to appear")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert len(during) == 1
    name = during[0]
    assert temporary(serve) == []                       # gone after success
    assert DEPLOYED in [r["name"] for r in routers(serve)]  # the deployed router is untouched

    [run_dir] = run_dirs(tmp_path / "out")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["target"]["model"] == f"router:{name}" and manifest["target"]["kind"] == "do"
    assert len(results(run_dir)) == n_cases(suite)

    # every inference call addressed the temporary router, between its create and its delete
    chats = inference.chats()
    assert len(chats) == n_cases(suite) + 1              # the cases plus one readiness probe
    assert {c.model for c in chats} == {f"router:{name}"}
    create = [s for s in control.seen if s.method == "POST" and s.path == ROUTERS]
    delete = [s for s in control.seen if s.method == "DELETE"]
    assert len(create) == 1 and len(delete) == 1
    assert create[0].at < min(c.at for c in chats) and delete[0].at > max(c.at for c in chats)


def test_the_two_credentials_never_cross(planes, suite, candidate, tmp_path):
    inference, control, inf_url, api_url = planes
    proc = run_cli("run", suite, "--target", "do", "--candidate", candidate, "--out", tmp_path / "out", "-q",
                   env=do_env(inf_url, api_url))
    assert proc.returncode == 0, proc.stderr
    assert inference.seen and control.seen
    assert {s.authorization for s in inference.seen} == {f"Bearer {ACCESS_KEY}"}
    assert {s.authorization for s in control.seen} == {f"Bearer {TOKEN}"}
    for text in (proc.stdout, proc.stderr, *(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())):
        assert ACCESS_KEY not in text and TOKEN not in text


@pytest.mark.parametrize("var, value, message", [
    ("MODEL_ACCESS_KEY", "dop_v1_crossed", "personal access token"),
    ("DIGITALOCEAN_TOKEN", "sk-do-crossed", "model access key"),
])
def test_a_crossed_credential_is_refused_before_anything_is_created(planes, suite, candidate, tmp_path, var, value, message):
    inference, control, inf_url, api_url = planes
    proc = run_cli("run", suite, "--target", "do", "--candidate", candidate, "--out", tmp_path / "out", "-q",
                   env=do_env(inf_url, api_url, **{var: value}))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert inference.seen == [] and control.seen == []


def test_inference_failing_half_way_still_deletes_the_router(planes, tiny_suite, candidate, tmp_path, serve):
    inference, control, inf_url, api_url = planes
    inference.fail_chat_after = 5  # the probe and 4 of the 8 cases get through, then every call fails
    proc = run_cli("run", tiny_suite, "--target", "do", "--candidate", candidate, "--out", tmp_path / "out", "-q",
                   "-c", "1", "--timeout", "10", "--backoff", "0.05",  # retried, without waiting seconds for it
                   env=do_env(inf_url, api_url))
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 3), proc.stderr  # errors recorded (0) or the run stopped (3): either way...
    assert temporary(serve) == []                  # ...the temporary router is gone
    assert [s.method for s in control.seen if s.path.startswith(ROUTERS + "/")] == ["DELETE"]
    [run_dir] = run_dirs(tmp_path / "out")
    rows = results(run_dir)
    assert len(rows) == 8 and sum(r["status"] != "error" for r in rows) == 4
    assert all(r["status"] == "error" for r in rows[4:])


def test_an_exception_in_the_run_still_deletes_the_router(planes, suite, candidate, tmp_path, serve, monkeypatch):
    from evalkit.cost import load_prices
    from evalkit.run import TargetSpec, run_suite
    from evalkit.suites import load_suite

    inference, control, inf_url, api_url = planes
    for k, v in {"MODEL_ACCESS_KEY": ACCESS_KEY, "DIGITALOCEAN_TOKEN": TOKEN, "EVALKIT_DO_INFERENCE_URL": inf_url,
                 "EVALKIT_DO_API_URL": api_url}.items():
        monkeypatch.setenv(k, v)
    loaded = load_suite(suite, router_path=candidate)
    seen_temp: list[list[str]] = []

    def on_result(result: Any) -> None:
        seen_temp.append(temporary(serve))
        if len(seen_temp) == 3:
            raise RuntimeError("the run broke half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        run_suite(loaded, TargetSpec(kind="do", candidate=loaded.router), out=tmp_path / "out",
                  prices=load_prices(None), concurrency=1, on_result=on_result)
    assert all(len(names) == 1 for names in seen_temp)  # it existed while the run ran
    assert temporary(serve) == []


@pytest.mark.parametrize("sig, ignore_sigint", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
                         ids=["SIGINT", "SIGTERM", "SIGTERM-background-job"])
def test_interrupting_the_run_deletes_the_router(planes, suite, candidate, tmp_path, serve, sig, ignore_sigint):
    inference, control, inf_url, api_url = planes
    out = tmp_path / "out"
    proc = start_run(suite, candidate, out, do_env(inf_url, api_url), ignore_sigint=ignore_sigint)
    wait_for(lambda: run_dirs(out) and (run_dirs(out)[0] / "results.jsonl").is_file()
             and len(results(run_dirs(out)[0])) >= 3, what="three results")
    assert len(temporary(serve)) == 1
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "deleted the temporary router" in stderr and "Traceback" not in stderr
    assert temporary(serve) == []
    assert len(results(run_dirs(out)[0])) < n_cases(suite)  # it really was stopped mid-run


def test_an_interrupt_while_the_router_is_being_created_still_deletes_it(planes, suite, candidate, tmp_path, serve):
    inference, control, inf_url, api_url = planes
    control.create_delay_s = 1.5
    proc = start_run(suite, candidate, tmp_path / "out", do_env(inf_url, api_url))
    wait_for(lambda: any(s.method == "POST" for s in control.seen), what="the create request")
    proc.send_signal(signal.SIGINT)  # the create is in flight; the router only exists 1.5 s later
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert temporary(serve) == []
    assert [s.method for s in control.seen if s.method != "GET"] == ["POST", "DELETE"]
    assert inference.seen == []


def test_a_create_answered_with_a_5xx_is_looked_up_and_removed(planes, suite, candidate, tmp_path, serve):
    inference, control, inf_url, api_url = planes
    control.fail_create_after_forwarding = True  # the router gets created, the answer is lost
    proc = run_cli("run", suite, "--target", "do", "--candidate", candidate, "--out", tmp_path / "out", "-q",
                   env=do_env(inf_url, api_url))
    assert proc.returncode == 2
    assert "upstream connection reset" in proc.stderr
    assert temporary(serve) == []
    assert [s.method for s in control.seen if s.method != "GET"] == ["POST", "DELETE"]
    assert inference.seen == []


def test_a_router_that_cannot_be_deleted_is_named_and_the_run_is_kept(planes, suite, candidate, tmp_path, serve):
    inference, control, inf_url, api_url = planes
    control.fail_delete = True
    proc = run_cli("run", suite, "--target", "do", "--candidate", candidate, "--out", tmp_path / "out", "-q",
                   env=do_env(inf_url, api_url))
    [left] = [r for r in routers(serve) if TEMP_RE.match(r["name"])]
    httpx.delete(f"{serve}{ROUTERS}/{left['uuid']}")  # clean up behind the scripted outage
    assert proc.returncode == 3
    assert left["uuid"] in proc.stderr and f"evalkit router delete {left['uuid']} --yes" in proc.stderr
    assert "scripted delete outage" in proc.stderr and "Traceback" not in proc.stderr
    [run_dir] = run_dirs(tmp_path / "out")
    assert (run_dir / "summary.json").is_file() and len(results(run_dir)) == n_cases(suite)
    assert [s.method for s in control.seen if s.method == "DELETE"] == ["DELETE"] * 3  # tried, then retried twice


# -- evalkit router against the stand-in control plane ----------------------------------------

def test_router_commands_create_get_list_update_delete(planes, tmp_path, serve):
    inference, control, inf_url, api_url = planes
    env = do_env(inf_url, api_url)
    data = json.loads((ROOT / "suites/saas-support/router.json").read_text())
    data["name"] = "router-cli-test"
    path = tmp_path / "router.json"
    path.write_text(json.dumps(data))

    created = run_cli("router", "create", path, "--json", env=env)
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)["model_router"]
    assert record["name"] == "router-cli-test" and record["uuid"]

    readable = run_cli("router", "get", "router-cli-test", env=env)
    assert readable.returncode == 0, readable.stderr
    assert record["uuid"] in readable.stdout
    assert "reasoning  [openai-gpt-5]  manual ranking" in readable.stdout
    assert "classify  [openai-gpt-oss-20b, llama3.3-70b-instruct]  prefer cheapest" in readable.stdout

    listed = run_cli("router", "list", "--json", env=env)
    assert {"router-cli-test", DEPLOYED} <= {r["name"] for r in json.loads(listed.stdout)["model_routers"]}

    duplicate = run_cli("router", "create", path, env=env)
    assert duplicate.returncode == 2
    assert "rpc error: code = InvalidArgument desc = model router name already exists" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr

    data["policies"][0]["custom_task"]["description"] = "Sort a ticket into billing, bug, how-to or account."
    path.write_text(json.dumps(data))
    updated = run_cli("router", "update", record["uuid"], path, "--json", env=env)
    assert updated.returncode == 0, updated.stderr
    live = httpx.get(f"{serve}{ROUTERS}/{record['uuid']}").json()["model_router"]
    assert live["config"]["policies"][0]["custom_task"]["description"] == "Sort a ticket into billing, bug, how-to or account."

    body = run_cli("router", "get", "router-cli-test", "--body", env=env)
    saved = tmp_path / "saved.json"
    saved.write_text(body.stdout)
    diff = run_cli("router", "diff", path, saved, "--exit-code")
    assert diff.returncode == 0 and "no changes" in diff.stdout, diff.stdout  # the saved body is the same router

    refused = run_cli("router", "delete", "router-cli-test", env=env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    deleted = run_cli("router", "delete", "router-cli-test", "--yes", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert "router-cli-test" not in [r["name"] for r in routers(serve)]

    missing = run_cli("router", "get", record["uuid"], env=env)
    assert missing.returncode == 2
    assert "not_found" in missing.stderr and "Traceback" not in missing.stderr
    assert {s.authorization for s in control.seen} == {f"Bearer {TOKEN}"} and inference.seen == []


def test_against_an_unknown_deployed_router_is_exit_2_before_anything_is_created(planes, suite, candidate, tmp_path, serve):
    inference, control, inf_url, api_url = planes
    proc = run_cli("run", suite, "--target", "do", "--candidate", candidate, "--against", "deployed",
                   "--router-name", "not-deployed", "--out", tmp_path / "out", "-q", env=do_env(inf_url, api_url))
    assert proc.returncode == 2
    assert "not-deployed" in proc.stderr and DEPLOYED in proc.stderr
    assert [s.method for s in control.seen if s.method != "GET"] == [] and inference.seen == []


def test_against_deployed_compares_the_candidate_with_the_live_router(planes, suite, candidate, tmp_path, serve):
    inference, control, inf_url, api_url = planes
    out = tmp_path / "out"
    proc = run_cli("run", suite, "--target", "do", "--candidate", candidate, "--against", "deployed", "--out", out,
                   "-q", "--json", env=do_env(inf_url, api_url))
    assert proc.returncode in (0, 1), proc.stderr
    assert temporary(serve) == []
    doc = json.loads(proc.stdout)
    assert proc.returncode == (1 if doc["comparison"]["verdict"]["failed"] else 0)
    models = {c.model for c in inference.chats()}
    assert f"router:{DEPLOYED}" in models and len(models) == 2  # the live router and one temporary one

    by_run = {json.loads((d / "manifest.json").read_text())["target"]["model"]: d for d in run_dirs(out)}
    deployed_rows = {r["id"]: r for r in results(by_run.pop(f"router:{DEPLOYED}"))}
    [candidate_dir] = by_run.values()
    candidate_rows = {r["id"]: r for r in results(candidate_dir)}
    # flipped cases, computed here from the two results files
    regressed = sorted(i for i, r in deployed_rows.items()
                       if r["route"] == r["expected_route"] and candidate_rows[i]["route"] != r["expected_route"])
    fixed = sorted(i for i, r in deployed_rows.items()
                   if r["route"] != r["expected_route"] and candidate_rows[i]["route"] == r["expected_route"])
    assert regressed, "the candidate's reasoning description should lose some reasoning cases"

    cfg = doc["config_diff"]
    assert [t["task"] for t in cfg["tasks"]] == ["reasoning"]
    assert cfg["tasks"][0]["description"]["b"] == REASONING_AS_TRANSLATION

    folder = Path(doc["compare_dir"])
    diff = json.loads((folder / "diff.json").read_text())
    assert sorted(r["id"] for r in diff["regressed"]) == regressed
    assert sorted(r["id"] for r in diff["fixed"]) == fixed
    md = (folder / "compare.md").read_text()
    html = (folder / "compare.html").read_text()
    for case_id in regressed:
        assert case_id in md and case_id in html
    assert "reasoning" in md and "Translate a short passage" in html
