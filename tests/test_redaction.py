"""Redaction of every key evalkit holds (the judge's, the upstreams', the control plane's token,
credentials in URLs) and of terminal escapes in remote text: hostile servers on 127.0.0.1 echo
what they were sent, and no file, report, cache entry or line of output may hold it afterwards,
neither whole nor in an obvious transform (a long piece, base64, URL-encoding)."""

from __future__ import annotations

import base64
import json
import secrets as _secrets
from pathlib import Path
from urllib.parse import quote

import pytest

from evalkit.redact import REDACTED, Redactor, safe_url, terminal_safe
from tests.conftest import cli_env, run_cli
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import ROUTE, Recorder, make_cases, route_for, write_case_suite


def new_key(prefix: str) -> str:
    return prefix + "SENTINEL" + _secrets.token_hex(16)


def transforms(key: str) -> dict[str, str]:
    """The forms an echo of ``key`` may take: whole, a 14-character piece, base64, URL-encoded."""
    b64 = base64.b64encode(key.encode()).decode()
    return {"whole": key, "prefix": key[:14], "middle": key[9:25], "base64": b64,
            "base64-unpadded": b64.rstrip("="), "base64-urlsafe": base64.urlsafe_b64encode(key.encode()).decode(),
            "basic-auth": base64.b64encode(f"user:{key}".encode()).decode()[8:], "urlencoded": quote(key + "/", safe="")}


def leaks(key: str, folder: Path, *texts: str) -> list[str]:
    """Every (place, form) where a form of ``key`` appears: files under ``folder`` and ``texts``."""
    forms = transforms(key)
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes().decode("utf-8", "replace")
            found += [f"{path.relative_to(folder)}: {name}" for name, form in forms.items() if form in data]
    for i, text in enumerate(texts):
        found += [f"output {i}: {name}" for name, form in forms.items() if form in text]
    return found


def echo_of(key: str) -> str:
    """What a hostile server sends back: the key in every form ``transforms`` names."""
    return " | ".join(f"{name}={form}" for name, form in transforms(key).items())


# -- the Redactor ------------------------------------------------------------------------------

def test_redactor_catches_the_key_and_its_transforms_and_leaves_text_alone():
    key = new_key("sk-do-")
    redactor = Redactor([key], include_registered=False)
    for name, form in transforms(key).items():
        cleaned = redactor.text(f"before {form} after")
        assert form not in cleaned and REDACTED in cleaned, name
        assert cleaned.startswith("before ") and cleaned.endswith(" after"), name
    assert redactor.text(f"only {key[:11]} shown") == f"only {key[:11]} shown"  # 11 characters: too short to tell
    assert redactor.text("Pause the subscription from Billing.") == "Pause the subscription from Billing."
    assert redactor.value({"error": {"message": f"bad key {key}", "n": 1}, key: [key]}) == \
        {"error": {"message": f"bad key {REDACTED}", "n": 1}, REDACTED: [REDACTED]}


@pytest.mark.parametrize("url, shown", [
    ("http://user:pass@example.com/v1", "http://example.com/v1"),
    ("https://bob:s3cret@example.com:8443/v1?api_key=abc&key=def", "https://example.com:8443/v1?api_key=[redacted]&key=[redacted]"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("https://h.example/v1?token=t#frag", "https://h.example/v1?token=[redacted]#[redacted]"),
])
def test_safe_url_strips_user_info_and_masks_query_values(url, shown):
    assert safe_url(url) == shown


def test_terminal_safe_strips_escapes_and_controls_but_keeps_text():
    hostile = ("classify\x1b]0;owned\x07\x1b[2J\x1b[1;1H\x9b31mall checks passed\x1bc\r\x08\x00"
               "\u202eevil\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\tend\nnext")
    cleaned = terminal_safe(hostile)
    assert cleaned == "classifyall checks passedevillink\tend\nnext"
    assert terminal_safe("plain text: [bold]x[/bold]") == "plain text: [bold]x[/bold]"


# -- 1. the judge's key ------------------------------------------------------------------------

def judge_answer(cid: str) -> str:
    return {"c000": "answer [j401]", "c001": "answer [j500]", "c002": "answer [jecho]"}.get(cid, "answer [ok]")


def hostile_judge(body: dict, headers: dict) -> Reply:
    """A judge that echoes the request headers in its errors and the key in its answers."""
    text = body["messages"][-1]["content"]
    key = headers.get("authorization", "").removeprefix("Bearer ")
    if "[j401]" in text:
        return Reply(status=401, error_message=f"invalid key; you sent {json.dumps(dict(headers))}")
    if "[j500]" in text:
        return Reply(status=500, error_message=f"upstream failed; headers {json.dumps(dict(headers))} {echo_of(key)}")
    if "[jecho]" in text:
        return Reply(content=f"Your key is {echo_of(key)}.\nVERDICT: 4")
    return Reply(content="Checked against the rubric.\nVERDICT: 5")


def test_the_judge_key_reaches_no_file_report_cache_or_output(tmp_path):
    key = new_key("sk-do-")
    suite = write_case_suite(tmp_path / "s", make_cases(4))
    router = Recorder(lambda cid, attempt, body: Reply(content=judge_answer(cid), headers={ROUTE: route_for(cid)}))
    env = cli_env(JUDGE_KEY=key, EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    with FakeOpenAI(router) as fake_router, FakeOpenAI(hostile_judge) as judge:
        run = run_cli("run", suite, "--target", "openai", "--base-url", fake_router.base_url, "--out", tmp_path / "runs",
                      "--judge", "judge-x", "--judge-base-url", judge.base_url, "--judge-api-key-env", "JUDGE_KEY",
                      env=env)
        run_dir = next((tmp_path / "runs").glob("*/*"))
        again = run_cli("judge", run_dir, "--judge-base-url", judge.base_url, "--judge-api-key-env", "JUDGE_KEY",
                        "--json", env=env)
        report = run_cli("report", run_dir, env=env)
        sent = {h.get("authorization") for h in judge.request_headers}
    assert run.returncode == 0, run.stderr
    assert sent == {f"Bearer {key}"}  # the sentinel really was the live key
    rows = [json.loads(line) for line in (run_dir / "judge.jsonl").read_text().splitlines()]
    assert {r["status"] for r in rows} >= {"error", "scored"}  # the echoes were there ...
    assert REDACTED in (run_dir / "judge.jsonl").read_text()  # ... and were scrubbed
    assert list((tmp_path / "cache" / "judge").rglob("*.json"))  # the verdict cache was written, and is searched
    for name in ("judge.jsonl", "summary.json", "report.html", "manifest.json"):
        assert (run_dir / name).is_file(), name
    assert leaks(key, tmp_path, run.stdout, run.stderr, again.stdout, again.stderr, report.stdout, report.stderr) == []


# -- 2. upstream keys of the local router ------------------------------------------------------

def hostile_upstream(cid: str, attempt: int, body: dict) -> Reply:
    """An upstream that echoes the key it was sent: in a 401, in a plain-text 400, in its answer."""
    echo = echo_of(body["_key"])
    if cid == "c000":
        return Reply(status=401, error_message=f"Incorrect API key provided: {echo}")
    if cid == "c001":
        return Reply(status=400, raw_body=f"<html>bad request from {echo}</html>", headers={"content-type": "text/html"})
    if cid == "c002":
        return Reply(content=f"your key is {echo}")
    return Reply(content=f"answer to {cid}")


class KeyToBody(Recorder):
    """Passes the bearer key the upstream received to the reply script."""

    def __call__(self, body, headers):
        key = headers.get("authorization", "").removeprefix("Bearer ")
        self.keys = getattr(self, "keys", set()) | {key}
        return super().__call__({**body, "_key": key}, headers)


def test_an_upstream_key_never_reaches_results_reports_or_serve_clients(tmp_path):
    import httpx

    from evalkit.emulator import LocalRouter, TfidfClassifier, create_app
    from evalkit.router_config import parse_router_config
    from tests.conftest import TUTORIAL_ROUTER

    key = new_key("sk-up-")
    suite = write_case_suite(tmp_path / "s", make_cases(4))
    upstream = KeyToBody(hostile_upstream)
    env = cli_env(UP_KEY=key, EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    with FakeOpenAI(upstream) as fake:
        outputs = []
        for extra in ([], ["--stream"]):
            proc = run_cli("run", suite, "--target", "local", "--classifier", "tfidf", "--upstream",
                           f"*={fake.base_url}@UP_KEY", "--out", tmp_path / "runs", "--retries", "0", "--cache",
                           *extra, env=env)
            assert proc.returncode == 0, proc.stderr
            outputs += [proc.stdout, proc.stderr]
        for run_dir in (tmp_path / "runs").glob("*/*"):
            report = run_cli("report", run_dir, env=env)
            outputs += [report.stdout, report.stderr]
            results = (run_dir / "results.jsonl").read_text()
            assert REDACTED in results  # the echoes came back through the local router, scrubbed

        # a client of `evalkit serve` (the same app) sees no key either, streamed or not
        served = []
        app = create_app([parse_router_config(TUTORIAL_ROUTER)], classifier=TfidfClassifier(),
                         upstreams={"*": f"{fake.base_url}@UP_KEY"})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("UP_KEY", key)
            lr = LocalRouter(app).start()
            try:
                for cid in ("c000", "c001", "c002"):
                    for stream in (False, True):
                        body = {"model": "router:cost-governance-demo", "stream": stream,
                                "messages": [{"role": "user", "content": f"[{cid}] question"}]}
                        resp = httpx.post(f"{lr.base_url}/chat/completions", json=body, timeout=30)
                        served.append(f"{resp.status_code} {dict(resp.headers)} {resp.text}")
            finally:
                lr.stop()
    assert upstream.keys == {key}  # the sentinel really was the live key
    assert any(REDACTED in text for text in served)
    assert leaks(key, tmp_path, *outputs, *served) == []


# -- 3. the control plane's token --------------------------------------------------------------

class FakeControlPlane:
    """A control plane on 127.0.0.1 whose answer to ``GET /v2/gen-ai/models/routers`` is scripted."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        from evalkit.emulator.server import LocalRouter

        self.answer = lambda request: None
        self.seen: list[str] = []

        async def routers(request):
            self.seen.append(request.headers.get("authorization", ""))
            return self.answer(request)

        app = Starlette(routes=[Route("/v2/gen-ai/models/routers", routers, methods=["GET"]),
                                Route("/v2/gen-ai/models/routers/{uuid}", routers, methods=["GET"])])
        self.server = LocalRouter(app).start()
        self.url = self.server.root_url

    def __enter__(self) -> "FakeControlPlane":
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def echoing_401(request):
    from starlette.responses import JSONResponse

    auth = request.headers.get("authorization", "")
    return JSONResponse({"id": "unauthorized", "message": f"Unable to authenticate you with {auth}; "
                                                          f"{echo_of(auth.removeprefix('Bearer '))}"},
                        status_code=401)


def echoing_proxy_page(request):
    from starlette.responses import HTMLResponse

    headers = "".join(f"<li>{k}: {v}</li>" for k, v in request.headers.items())
    return HTMLResponse(f"<html><body><h1>403 Forbidden</h1><ul>{headers}</ul>"
                        f"{echo_of(request.headers.get('authorization', '').removeprefix('Bearer '))}</body></html>",
                        status_code=403)


@pytest.mark.parametrize("answer", [echoing_401, echoing_proxy_page])
def test_router_list_never_prints_the_token_a_control_plane_echoes(tmp_path, answer):
    token = "dop_v1_" + _secrets.token_hex(32)
    with FakeControlPlane() as plane:
        plane.answer = answer
        env = cli_env(DIGITALOCEAN_TOKEN=token, EVALKIT_DO_API_URL=plane.url)
        proc = run_cli("router", "list", env=env)
        as_json = run_cli("router", "list", "--json", env=env)
    assert plane.seen and set(plane.seen) == {f"Bearer {token}"}  # the sentinel really was the live token
    assert proc.returncode == 2 and "DigitalOcean API error" in proc.stderr
    assert REDACTED in proc.stderr  # the echo was there, and was scrubbed
    assert leaks(token, tmp_path, proc.stdout, proc.stderr, as_json.stdout, as_json.stderr) == []


# -- 4. credentials inside URLs ----------------------------------------------------------------

def with_credentials(base_url: str, user: str, password: str, query_key: str) -> str:
    scheme, rest = base_url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}?api_key={query_key}&key={query_key}"


def test_credentials_in_base_urls_are_used_but_never_recorded_or_printed(tmp_path):
    secrets = {"user": "alice" + _secrets.token_hex(6), "password": "pw" + _secrets.token_hex(12),
               "query": "qk" + _secrets.token_hex(12), "judge": "jq" + _secrets.token_hex(12)}
    suite = write_case_suite(tmp_path / "s", make_cases(4))
    # a hostile router echoes the credentials of its URL in an answer
    echo = f"you called with api_key={secrets['query']} and password {secrets['password']}"
    router = Recorder(lambda cid, attempt, body: Reply(content=echo if cid == "c001" else f"answer to {cid}",
                                                       headers={ROUTE: route_for(cid)}))
    env = cli_env(JUDGE_KEY=new_key("sk-do-"), EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    with FakeOpenAI(router) as fake, FakeOpenAI(lambda b, h: Reply(content="Fine.\nVERDICT: 4")) as judge:
        base_url = with_credentials(fake.base_url, secrets["user"], secrets["password"], secrets["query"])
        judge_url = f"{judge.base_url}?key={secrets['judge']}"
        outputs = []
        for extra in ([], ["--stream", "--json"]):
            proc = run_cli("run", suite, "--target", "openai", "--base-url", base_url, "--out", tmp_path / "runs",
                           "--judge", "judge-x", "--judge-base-url", judge_url, "--judge-api-key-env", "JUDGE_KEY",
                           *extra, env={**env, "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md")})
            assert proc.returncode == 0, proc.stderr
            outputs += [proc.stdout, proc.stderr]
        run_dir = sorted((tmp_path / "runs").glob("*/*"))[0]
        report = run_cli("report", run_dir, env=env)
        outputs += [report.stdout, report.stderr]
    # the requests used the real URL: the query parameters arrived, plain and streamed, router and judge
    assert fake.request_queries == [f"api_key={secrets['query']}&key={secrets['query']}"] * 8
    assert set(judge.request_queries) == {f"key={secrets['judge']}"}
    assert json.loads((run_dir / "summary.json").read_text())["n_scored"] == 4
    assert "api_key=[redacted] and password [redacted]" in (run_dir / "results.jsonl").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["target"]["base_url"] == safe_url(base_url) and "api_key=[redacted]" in manifest["target"]["base_url"]
    assert manifest["judge"]["base_url"] == f"{judge.base_url}?key=[redacted]"
    for name in ("summary.json", "summary.md", "report.html"):
        assert (run_dir / name).is_file()
    found = [f"{path.relative_to(tmp_path)}: {what}" for path in tmp_path.rglob("*") if path.is_file()
             for what, value in secrets.items() if value in path.read_text(errors="replace")]
    found += [f"output {i}: {what}" for i, text in enumerate(outputs) for what, value in secrets.items() if value in text]
    assert found == []


# -- 5. transforms of the router's key in results and the response cache ----------------------

def transform_echo(cid: str, attempt: int, body: dict) -> Reply:
    """A router that echoes pieces and encodings of its key (never the whole key) in every field."""
    key = body["_key"]
    forms = {k: v for k, v in transforms(key).items() if k != "whole"}
    echo = " ".join(forms.values())
    n = int(cid[1:])
    if n % 3 == 0:
        return Reply(status=401, error_message=f"Incorrect API key provided: {echo}")
    if n % 3 == 1:
        return Reply(content=f"your key: {echo}", headers={ROUTE: route_for(cid)}, model=f"m-{forms['prefix']}")
    return Reply(content="fine", headers={ROUTE: f"{route_for(cid)}"}, model="m")


def test_pieces_and_encodings_of_the_router_key_reach_neither_results_nor_the_cache(tmp_path):
    key = new_key("rk-")
    suite = write_case_suite(tmp_path / "s", make_cases(6))
    router = KeyToBody(transform_echo)
    env = cli_env(ROUTER_KEY=key, EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    with FakeOpenAI(router) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--api-key-env", "ROUTER_KEY",
                       "--out", tmp_path / "runs", "--retries", "0", "--cache", env=env)
    assert proc.returncode == 0, proc.stderr
    assert router.keys == {key}
    run_dir = next((tmp_path / "runs").glob("*/*"))
    assert (run_dir / "results.jsonl").read_text().count(REDACTED) >= 4 * len(transforms(key)) - 4
    cached = [p.read_text() for p in (tmp_path / "cache" / "responses").rglob("*.json")]
    assert cached and any(REDACTED in text for text in cached)  # the echoing answers were cached, scrubbed
    assert leaks(key, tmp_path, proc.stdout, proc.stderr) == []


# -- 6. terminal escapes in remote text --------------------------------------------------------

HOSTILE = ("\x1b]0;owned\x07\x1b[2J\x1b[H\x9b2J\u202e" "all checks passed [bold red]PASS[/bold red]\x1b[8m")
CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e", "\x9d")


def controls_in(*texts: str) -> list[str]:
    return [f"output {i}: {c!r}" for i, text in enumerate(texts) for c in CONTROLS if c in text]


def hostile_routers(request):
    from starlette.responses import JSONResponse

    router = {"uuid": "0b7f3f0e-4a57-4b1e-9a7e-3f0b1c2d3e4f", "name": f"demo{HOSTILE}",
              "description": f"desc {HOSTILE}", "regions": [f"tor1{HOSTILE}"],
              "config": {"policies": [{"custom_task": {"name": f"classify{HOSTILE}", "description": f"d{HOSTILE}"},
                                       "models": [f"m{HOSTILE}"]}],
                         "fallback_models": [f"fb{HOSTILE}"]},
              "updated_at": f"2026{HOSTILE}"}
    if request.path_params.get("uuid"):
        return JSONResponse({"model_router": router})
    return JSONResponse({"model_routers": [router], "links": {}})


def test_router_get_and_list_print_no_control_sequences_and_no_markup(tmp_path):
    with FakeControlPlane() as plane:
        plane.answer = hostile_routers
        env = cli_env(DIGITALOCEAN_TOKEN="dop_v1_" + _secrets.token_hex(32), EVALKIT_DO_API_URL=plane.url)
        listed = run_cli("router", "list", env=env)
        got = run_cli("router", "get", "0b7f3f0e-4a57-4b1e-9a7e-3f0b1c2d3e4f", env=env)
        plane.answer = lambda request: echoing_401(request).__class__(
            {"id": "unauthorized", "message": f"denied {HOSTILE}"}, status_code=401)
        failed = run_cli("router", "list", env=env)
    assert listed.returncode == 0 and got.returncode == 0, listed.stderr + got.stderr
    assert failed.returncode == 2
    assert controls_in(listed.stdout, listed.stderr, got.stdout, got.stderr, failed.stdout, failed.stderr) == []
    # the text itself is kept, and rich markup in it is printed literally
    for text in (got.stdout, failed.stderr):
        assert "all checks passed [bold red]PASS[/bold red]" in text
    assert "demo" in listed.stdout and "classify" in listed.stdout


def test_compare_and_judge_errors_print_no_control_sequences(tmp_path):
    # a route header can carry C1 controls and bidi overrides (bytes >= 0x80 are legal in HTTP headers)
    route = "reasoning\u202e\x9b2J" + "all checks passed"
    wire = route.encode("utf-8").decode("latin-1")
    suite = write_case_suite(tmp_path / "s", make_cases(4))

    def judge(body, headers):
        return Reply(status=401, error_message=f"no {HOSTILE}")

    env = cli_env(JUDGE_KEY=new_key("sk-do-"), EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for hostile in (False, True):
        def reply(cid, a, b, hostile=hostile):
            return Reply(content="x", headers={ROUTE: wire if hostile else route_for(cid)})

        with FakeOpenAI(Recorder(reply)) as fake:
            proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url,
                           "--out", tmp_path / f"runs{int(hostile)}", env=env)
        assert proc.returncode == 0, proc.stderr
        runs.append(next((tmp_path / f"runs{int(hostile)}").glob("*/*")))
    results = (runs[1] / "results.jsonl").read_text()
    assert "\\u202e" in results or "\u202e" in results  # the hostile route really was recorded
    compare = run_cli("compare", runs[0], runs[1], "--out", tmp_path / "cmp", env=env)
    with FakeOpenAI(judge) as fake_judge:
        judged = run_cli("judge", runs[0], "--judge", "judge-x", "--judge-base-url", fake_judge.base_url,
                         "--judge-api-key-env", "JUDGE_KEY", env=env)
    assert "regressed" in compare.stdout and "all checks passed" in compare.stdout
    assert judged.returncode == 3 and "all checks passed [bold red]PASS[/bold red]" in judged.stderr
    assert controls_in(compare.stdout, compare.stderr, judged.stdout, judged.stderr) == []


def test_a_long_error_page_is_redacted_before_it_is_cut_short(tmp_path):
    key = _secrets.token_hex(20)  # all random: any 8 characters of it would say something
    suite = write_case_suite(tmp_path / "s", make_cases(2))
    # the router's 200-character cut of a plain-text body falls 8 characters into the key
    page = Reply(status=403, raw_body="x" * 192 + key + " was refused", headers={"content-type": "text/plain"})
    env = cli_env(ROUTER_KEY=key)
    with FakeOpenAI(page) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--api-key-env", "ROUTER_KEY",
                       "--out", tmp_path / "runs", "--retries", "0", env=env)
    results = next((tmp_path / "runs").glob("*/*/results.jsonl")).read_text()
    assert proc.returncode in (0, 3), proc.stderr  # every case failed: not a crash
    assert "HTTP 403: " + "x" * 192 in results and REDACTED[:8] in results
    assert key[:8] not in results and key[:8] not in proc.stdout + proc.stderr


def _streamed_text(sse: str) -> str:
    """The answer a client of a stream assembles: every ``delta.content`` joined, in order."""
    text = ""
    for line in sse.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", []):
                text += (choice.get("delta") or {}).get("content") or ""
    return text


def test_an_upstream_key_echoed_a_few_characters_per_event_is_redacted_in_the_stream_serve_relays(tmp_path):
    """Each event of the stream held less of the key than can be recognised, so redacting event by
    event relayed all of it: a client joining the deltas had the key whole."""
    import httpx

    from evalkit.emulator import LocalRouter, TfidfClassifier, create_app
    from evalkit.router_config import parse_router_config
    from tests.conftest import TUTORIAL_ROUTER

    key = new_key("sk-up-")
    answers = {"echo": f"your key is {key}, and in base64 {base64.b64encode(key.encode()).decode()}. Bye.",
               "plain": "Pause the subscription from Billing, then confirm by email. " * 3}

    def upstream(body, headers):  # FakeOpenAI streams 8 characters per event
        return Reply(content=answers[body["messages"][-1]["content"]])

    with FakeOpenAI(upstream) as fake, pytest.MonkeyPatch.context() as mp:
        mp.setenv("UP_KEY", key)
        app = create_app([parse_router_config(TUTORIAL_ROUTER)], classifier=TfidfClassifier(),
                         upstreams={"*": f"{fake.base_url}@UP_KEY"})
        lr = LocalRouter(app).start()
        try:
            relayed = {}
            for name in answers:
                body = {"model": "router:cost-governance-demo", "stream": True,
                        "messages": [{"role": "user", "content": name}]}
                resp = httpx.post(f"{lr.base_url}/chat/completions", json=body, timeout=30)
                assert resp.status_code == 200 and resp.text.rstrip().endswith("data: [DONE]")
                relayed[name] = _streamed_text(resp.text)
        finally:
            lr.stop()
    assert relayed["echo"] == f"your key is {REDACTED}, and in base64 {REDACTED}. Bye."
    assert relayed["plain"] == answers["plain"]  # an answer without a key arrives whole, in order
    assert leaks(key, tmp_path, *relayed.values()) == []


@pytest.mark.parametrize("status", [200, 401])
def test_a_control_plane_answering_json_nested_too_deeply_gets_a_message_not_a_traceback(status):
    from starlette.responses import Response

    deep = "[" * 100_000 + "]" * 100_000
    with FakeControlPlane() as plane:
        plane.answer = lambda request: Response(deep, status_code=status, media_type="application/json")
        proc = run_cli("router", "list", env=cli_env(DIGITALOCEAN_TOKEN="dop_v1_" + "0" * 64, EVALKIT_DO_API_URL=plane.url))
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    first = proc.stderr.splitlines()[0]
    assert proc.returncode in (2, 3) and first.startswith("error: GET ") and "/v2/gen-ai/models/routers" in first, first
