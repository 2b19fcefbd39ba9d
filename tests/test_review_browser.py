"""The review page in a real browser: Playwright for Python driving the system Chromium.

Covers: change a label, save, reload, the file has it; keyboard shortcuts; the order puts
disagreements first; an edit made before a crash comes back; a hostile prompt renders inert
(no script runs, no request leaves, the text shows literally), with and without the page's
Content Security Policy, and a positive control proving the check can fail.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from playwright.sync_api import expect

from evalkit.review import ReviewServer, open_review
from tests.conftest import write_suite

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCRIPT_PAYLOAD = "<script>window.__pwned = 'script'</script>"
IMG_PAYLOAD = "<img src=\"/canary-img\" onerror=\"window.__pwned = 'img'\">"
HOSTILE_ID = "h1\"><img src=/canary-id onerror=\"window.__pwned='id'\">"

CASES = [
    {"id": "agree-1", "prompt": "Classify this ticket: the export button does nothing", "expected_route": "classify",
     "label_source": "router", "reviewed": False, "router_route": "classify", "labeler_route": "classify"},
    {"id": "agree-2", "prompt": "Prove that the sum of two odd numbers is even, step by step",
     "expected_route": "reasoning", "label_source": "router", "reviewed": False, "router_route": "reasoning",
     "labeler_route": "reasoning"},
    {"id": "dis-1", "prompt": "Can I pause my subscription for two months?", "expected_route": "classify",
     "label_source": "router", "reviewed": False, "router_route": "classify", "labeler_route": "customer-qa",
     "tags": ["labeler-disagrees"]},
    {"id": "agree-3", "prompt": "How do I add a teammate to my workspace?", "expected_route": "customer-qa",
     "label_source": "router", "reviewed": False, "router_route": "customer-qa", "labeler_route": "customer-qa"},
    {"id": "dis-2", "prompt": "Write a haiku about the sea", "expected_route": "customer-qa",
     "label_source": "router", "reviewed": False, "router_route": "customer-qa", "labeler_route": "fallback",
     "tags": ["labeler-disagrees"]},
    {"id": HOSTILE_ID, "prompt": f"{SCRIPT_PAYLOAD} and {IMG_PAYLOAD}", "expected_route": "classify",
     "label_source": "router", "reviewed": False, "router_route": "classify", "labeler_route": "classify"},
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (see README: tests)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def suite(tmp_path) -> Path:
    return write_suite(tmp_path / "suite", CASES)


@pytest.fixture
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    pg.requests_seen = []  # type: ignore[attr-defined]
    pg.on("request", lambda r: pg.requests_seen.append(r.url))  # type: ignore[attr-defined]
    yield pg
    context.close()


def rows(folder: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (folder / "cases.jsonl").read_text().splitlines())}


def css_string(value: str) -> str:
    """A value quoted for a CSS attribute selector."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def select_for(page, cid: str):
    return page.locator(f'select[name="expected_route"][data-case-id={css_string(cid)}]')


def test_change_a_label_save_reload_and_the_file_has_it(suite, page):
    with ReviewServer(open_review(suite)) as server:
        page.goto(server.url)
        assert page.locator("#progress").inner_text() == "0 of 6 reviewed"
        select_for(page, "agree-3").select_option("reasoning")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#progress")).to_have_text("1 of 6 reviewed")
        saved = rows(suite)
        assert saved["agree-3"]["expected_route"] == "reasoning"
        assert saved["agree-3"]["reviewed"] is True and saved["agree-3"]["label_source"] == "human"
        assert all(r["reviewed"] is False for cid, r in saved.items() if cid != "agree-3")
        page.reload()
        assert select_for(page, "agree-3").input_value() == "reasoning"
        assert page.locator("#progress").inner_text() == "1 of 6 reviewed"


def test_keyboard_shortcuts_choose_confirm_and_save(suite, page):
    with ReviewServer(open_review(suite)) as server:
        page.goto(server.url)
        first = page.locator("li.case").first.get_attribute("data-case-id")
        page.keyboard.press("0")          # fallback for the first case
        page.keyboard.press("j")          # next case
        second = page.locator("li.case").nth(1).get_attribute("data-case-id")
        page.keyboard.press("Enter")      # confirm it as it is
        page.keyboard.press("s")
        expect(page.locator("#progress")).to_have_text("2 of 6 reviewed")
    saved = rows(suite)
    assert saved[first]["expected_route"] == "fallback" and saved[first]["label_source"] == "human"
    assert saved[second]["expected_route"] == CASES[[c["id"] for c in CASES].index(second)]["expected_route"]
    assert saved[second]["reviewed"] is True


def test_disagreements_come_first(suite, page):
    with ReviewServer(open_review(suite)) as server:
        page.goto(server.url)
        order = page.locator('select[name="expected_route"]').evaluate_all("els => els.map(e => e.dataset.caseId)")
    assert sorted(order[:2]) == ["dis-1", "dis-2"]
    assert sorted(order) == sorted(c["id"] for c in CASES)


def test_an_unsaved_edit_survives_a_crash(suite, page):
    with ReviewServer(open_review(suite)) as server:
        page.goto(server.url)
        select_for(page, "agree-1").select_option("reasoning")
        expect(page.locator("#pending")).to_have_text("1 unsaved")
    page.close()  # the browser tab and the server are gone; nothing was saved
    assert rows(suite)["agree-1"]["expected_route"] == "classify"
    fresh = page.context.new_page()
    with ReviewServer(open_review(suite)) as server:
        fresh.goto(server.url)
        assert select_for(fresh, "agree-1").input_value() == "reasoning"
        assert fresh.locator("#pending").inner_text() == "1 unsaved"
        fresh.get_by_role("button", name="Save").click()
        expect(fresh.locator("#progress")).to_have_text("1 of 6 reviewed")
    assert rows(suite)["agree-1"]["expected_route"] == "reasoning"


@pytest.mark.parametrize("csp", [True, False], ids=["with-csp", "escaping-alone"])
def test_hostile_prompt_renders_inert(suite, page, csp):
    with ReviewServer(open_review(suite), csp=csp) as server:
        page.goto(server.url)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__pwned") is None
        assert page.evaluate("document.querySelectorAll('li.case img, li.case script').length") == 0
        li = page.locator("li.case").filter(has=select_for(page, HOSTILE_ID))
        text = li.locator(".conversation .text").inner_text()
        assert text == f"{SCRIPT_PAYLOAD} and {IMG_PAYLOAD}"
        assert page.get_by_text(SCRIPT_PAYLOAD, exact=False).first.is_visible()
        assert li.locator("code.cid").inner_text() == HOSTILE_ID
        # the hostile id still works as an id: change its label and save
        select_for(page, HOSTILE_ID).select_option("reasoning")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#progress")).to_have_text("1 of 6 reviewed")
        assert page.evaluate("window.__pwned") is None
    assert not [u for u in page.requests_seen if "canary" in u]  # type: ignore[attr-defined]
    assert rows(suite)[HOSTILE_ID]["expected_route"] == "reasoning"


def test_positive_control_the_payload_runs_when_injected_unescaped(page):
    """Proves the inertness checks above can fail: the same payload, put in a page as HTML, runs."""
    page.set_content(f"<div>{SCRIPT_PAYLOAD}</div>")
    assert page.evaluate("window.__pwned") == "script"
