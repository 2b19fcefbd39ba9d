"""Hostile text in reports: a suite, a router and router replies full of XSS payloads render in
headless Chromium with no script run and no request made, and the DOM shows them as inert text.

The report's CSP meta tag would block most payloads on its own, so the browser checks run twice:
on the report as written and on a copy with the CSP removed (escaping alone must hold). A positive
control injects one payload unescaped into the same page and must be caught, proving the checks
can fail.
"""

from __future__ import annotations

import json
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli, write_suite
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import ROUTE, case_id_of
from tests.headless_chromium import Chromium

pytestmark = pytest.mark.slow  # end to end: a hostile run and a real browser

CSP_META = "<meta http-equiv=\"Content-Security-Policy\""
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
MARK = "data-pwned"


class Canary:
    """A loopback HTTP server that serves the pages under test and logs every other request."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.hits: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = canary.pages.get(self.path)
                if body is None:
                    canary.hits.append(self.path)
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page_hits(self) -> list[str]:
        # The browser asks for a favicon by itself; that is not the page making a request.
        return [h for h in self.hits if h != "/favicon.ico"]

    def close(self) -> None:
        self.server.shutdown()


def payloads(base: str) -> dict[str, str]:
    """One payload per technique; each would hit ``base`` or set ``data-pwned`` if it ever ran."""
    pwn = f"document.body.setAttribute('{MARK}','1');fetch('{base}/canary/"
    return {
        "script": f"<script>{pwn}script')</script>",
        "img": f"<img src=\"{base}/canary/img\" onerror=\"{pwn}img')\">",
        "jslink": f"<a id=pwnlink href=\"javascript:{pwn}link')\">click me</a>",
        "textarea": f"</textarea></td></tr></table><script>{pwn}textarea')</script>",
        "svg": f"</text></g></svg><svg onload=\"{pwn}svg')\"></svg>",
        "attr": f"\" onmouseover=\"{pwn}attr')\" autofocus onfocus=\"{pwn}focus')\" x=\"",
        "iframe": f"<iframe src=\"{base}/canary/iframe\"></iframe><object data=\"{base}/canary/object\"></object>",
        "style": f"<style>@import url({base}/canary/style);</style><link rel=stylesheet href=\"{base}/canary/link\">",
        "meta": f"<meta http-equiv=\"refresh\" content=\"0;url={base}/canary/meta\">",
        "base": f"<base href=\"{base}/canary/base/\"><form action=\"{base}/canary/form\"><button>go</button></form>",
        "comment": f"<!-- --><script>{pwn}comment')</script>",
        "cdata": f"]]><script>{pwn}cdata')</script>",
        "template": "{{ 7*7 }}{% raw %}${7*7}",
        "markdown": f"![pixel]({base}/canary/md-image) [click](javascript:alert(1))",
        "bidi": "invoice\u202egnp.exe\u2066isolated\u2069\u200f",
    }


def hostile_suite(folder: Path, base: str) -> tuple[Path, dict[str, str]]:
    p = payloads(base)
    router = json.loads(json.dumps(TUTORIAL_ROUTER))
    evil_task = "<img src=x onerror=alert(1)>"
    router["policies"][1]["custom_task"] = {"name": evil_task, "description": p["textarea"] + p["script"]}
    labels = ["classify", evil_task, "reasoning", "fallback"]
    cases = []
    for i, (name, text) in enumerate(p.items()):
        cases.append({"id": f"x{i:02d}{text}" if name not in ("bidi",) else f"x{i:02d}-{text}",
                      "prompt": f"[x{i:02d}] {text}", "expected_route": labels[i % len(labels)],
                      "tags": [text, name], "reference": text})
    cases.append({"id": "x90", "prompt": f"[x90] {p['svg']}", "expected_route": evil_task,
                  "session": p["attr"], "turn": 1})
    cases.append({"id": "x91", "prompt": f"[x91] {p['bidi']}", "expected_route": "classify",
                  "session": p["attr"], "turn": 2})
    return write_suite(folder, cases, router=router), p


def hostile_router(p: dict[str, str]):
    """Replies whose route header, served model, answer and error messages are payloads too."""
    ascii_payloads = [v for k, v in p.items() if k != "bidi"]

    def reply(body, headers):
        n = int(case_id_of(body)[1:])
        text = ascii_payloads[n % len(ascii_payloads)]
        if n % 4 == 3:
            return Reply(status=500, error_message=text)
        route = "classify" if n % 4 == 2 else text  # mostly misroutes, so every case is listed
        return Reply(content=text, headers={ROUTE: route}, model=text)

    return reply


class Dom(HTMLParser):
    """Elements, attributes and text of a page."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "main", "h1", "h2", "h3", "div", "p",
                "span", "code", "strong", "em", "br", "table", "thead", "tbody", "tr", "th", "td", "details",
                "summary", "svg", "g", "rect", "text", "ul", "ol", "li"}
URL_ATTRS = {"href", "src", "srcset", "srcdoc", "action", "formaction", "xlink:href", "data", "background",
             "poster", "ping", "autofocus"}


def assert_inert(html: str) -> Dom:
    dom = Dom(html)
    for tag, attrs in dom.tags:
        assert tag in ALLOWED_TAGS, f"unexpected element <{tag} {attrs}>"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"event handler on <{tag}>: {name}={value}"
            assert name not in URL_ATTRS, f"<{tag}> has {name}={value}"
            assert name != MARK
        if tag == "meta":
            assert set(attrs) <= {"charset", "http-equiv", "content", "name"}
            assert attrs.get("http-equiv") in (None, "Content-Security-Policy")
    return dom


@pytest.fixture(scope="module")
def chromium(tmp_path_factory) -> Iterator[Chromium]:
    """One headless Chromium for every page of this module (the only one that opens a browser)."""
    with Chromium(tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


def chromium_dom(chromium: Chromium, url: str) -> str:
    """What ``chromium --dump-dom --virtual-time-budget=3000 URL`` prints, from the shared browser."""
    dom = chromium.dump_dom(url, virtual_time_budget_ms=3000)
    assert "<body" in dom, dom[-2000:]
    return dom


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    canary = Canary()
    suite, p = hostile_suite(tmp / "hostile-suite", canary.base)
    # The judge is hostile too: its rationales carry payloads, and a score of 1 puts them in the report.
    judge_reply = Reply(content=f"{p['img']} {p['script']} {p['textarea']} judged-hostile\nVERDICT: 1")
    env = cli_env(JUDGE_KEY="judge-key-0000", EVALKIT_CACHE_DIR=str(tmp / "cache"))
    with FakeOpenAI(hostile_router(p)) as fake, FakeOpenAI(judge_reply) as judge:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp / "runs",
                       "--retries", "0", "-q", "--judge", "evil-judge", "--judge-base-url", judge.base_url,
                       "--judge-api-key-env", "JUDGE_KEY", env=env)
    assert proc.returncode == 0, proc.stderr
    run_dir = next((tmp / "runs").glob("*/*"))
    yield run_dir, canary, p, tmp
    canary.close()


def test_report_html_escapes_every_payload(hostile_run):
    run_dir, _, p, _ = hostile_run
    html = (run_dir / "report.html").read_text()
    dom = assert_inert(html)
    assert sum(1 for tag, _ in dom.tags if tag == "style") == 1  # the report's own stylesheet only
    text = "".join(dom.text)
    for name, payload in p.items():
        if name != "bidi":
            assert payload in text, f"payload {name} is not shown as text"
    assert not any(ch in html for ch in BIDI)
    assert "invoice[U+202E]gnp.exe[U+2066]isolated[U+2069][U+200F]" in text
    assert "Judge's rationale" in text and f"{p['img']} {p['script']}" in text and "judged-hostile" in text


MD_TAGS = {"h2", "h3", "h4", "p", "table", "thead", "tbody", "tr", "th", "td", "code", "strong", "em", "blockquote"}


def render_gfm(markdown: str) -> Dom:
    """Markdown as a renderer that lets raw HTML through would show it (GitHub passes some)."""
    from markdown_it import MarkdownIt

    return Dom(MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown))


def assert_inert_markdown(markdown: str) -> Dom:
    dom = render_gfm(markdown)
    for tag, attrs in dom.tags:
        assert tag in MD_TAGS, f"markdown produced <{tag} {attrs}>"
        assert set(attrs) <= {"style"} and attrs.get("style") in (None, "text-align:right"), (tag, attrs)
    return dom


def test_summary_md_neutralises_every_payload(hostile_run, tmp_path: Path):
    run_dir, _, p, _ = hostile_run
    md = (run_dir / "summary.md").read_text()
    assert "](" not in md  # no live markdown link or image
    assert "&lt;" not in md and "&gt;" not in md  # markdown, not HTML entities
    assert not any(ch in md for ch in BIDI)
    assert "[U+202E]" in md
    assert "### Answer quality per path" in md  # the judged paths (hostile route names) are listed
    text = "".join(assert_inert_markdown(md).text)
    assert "<img src=x onerror=alert(1)>" in text  # the hostile task name, shown as text
    assert "<script>document.body" in text
    # The positive control: one payload let through raw must be caught.
    with pytest.raises(AssertionError):
        assert_inert_markdown(md + "\n" + p["img"] + "\n")

    # With a baseline in which every case routed right, every hostile misroute is a regressed row.
    from evalkit.comparison import RunSide, compare_runs
    from evalkit.report import write_reports
    from evalkit.store import load_run

    run = load_run(run_dir)
    good = [r.model_copy(update={"route": r.expected_route, "status": "ok"}) for r in run.results if r.scored]
    labels = [*run.manifest.router.tasks, "fallback"]
    diff = compare_runs(RunSide(run_id="base" + p["img"], results=good, labels=labels),
                        RunSide(run_id=run.manifest.run_id, results=run.results, labels=labels))
    assert diff["regressed"]
    copy = tmp_path / "copy"
    copy.mkdir()
    write_reports(copy, run.summary, run.results, run.manifest, diff=diff, only=("markdown",))
    md = (copy / "summary.md").read_text()
    assert "#### Regressed" in md and "](" not in md and "&lt;" not in md
    assert_inert_markdown(md)


@pytest.mark.parametrize("variant", ["as-written", "without-csp"])
def test_no_script_runs_and_no_request_is_made_in_chromium(hostile_run, chromium, variant):
    run_dir, canary, _, tmp = hostile_run
    html = (run_dir / "report.html").read_text()
    if variant == "without-csp":
        start = html.index(CSP_META)
        html = html[:start] + html[html.index(">", start) + 1:]
        assert "Content-Security-Policy" not in html
    path = f"/report-{variant}.html"
    canary.pages[path] = html.encode()
    canary.hits.clear()
    dom_text = chromium_dom(chromium, canary.base + path)
    assert canary.page_hits() == []
    dom = assert_inert(dom_text)
    assert "report" in "".join(dom.text).lower() and "Misrouted cases" in "".join(dom.text)


def test_the_browser_check_catches_an_unescaped_payload(hostile_run, chromium):
    """Positive control: the same checks flag a page that lets one payload through."""
    run_dir, canary, p, tmp = hostile_run
    html = (run_dir / "report.html").read_text()
    start = html.index(CSP_META)
    html = html[:start] + html[html.index(">", start) + 1:]
    broken = html.replace("<main>", "<main>" + p["script"] + p["img"], 1)
    canary.pages["/broken.html"] = broken.encode()
    canary.hits.clear()
    dom_text = chromium_dom(chromium, canary.base + "/broken.html")
    assert "/canary/script" in canary.page_hits() or "/canary/img" in canary.page_hits()
    with pytest.raises(AssertionError):
        assert_inert(dom_text)
    assert MARK in dom_text
