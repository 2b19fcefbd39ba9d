"""The review page: a Starlette app on 127.0.0.1 that lists a suite's cases and saves the labels.

``GET /`` renders every case server-side with autoescaping (prompts are text, never HTML);
``/static/review.js`` and ``/static/review.css`` are the only other resources (the Content
Security Policy allows nothing else: no inline script, no external host). ``POST /api/draft``
journals edits as they are made, ``POST /api/save`` writes them into ``cases.jsonl``.

Only the page itself can post: every POST must carry the page's random token in
``X-Review-Token`` (a custom header, so another site in the same browser cannot send it without a
CORS preflight this app never answers), and the ``Host`` header must be the loopback address the
server listens on (no DNS rebinding).
"""

from __future__ import annotations

import json
import secrets
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from evalkit.errors import EvalkitError
from evalkit.records import FALLBACK, Case
from evalkit.report.render import visible_controls
from evalkit.review.session import Edit, ReviewSession, review_order

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'none'; "
       "font-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
MAX_BODY = 4 * 1024 * 1024
STATIC = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, finalize=visible_controls)


def case_rows(session: ReviewSession, pending: dict[str, str]) -> list[dict[str, Any]]:
    """Plain dicts for the template, in review order (pure given the session)."""
    cases = {c.id: c for c in session.suite.cases}
    history: dict[str, list[dict[str, str]]] = {}
    context: dict[str, list[dict[str, str]]] = {}
    for case in session.suite.cases:  # earlier turns of a session, shown above a later turn
        if case.session:
            context[case.id] = list(history.get(case.session, []))
            history.setdefault(case.session, []).extend(_messages(case))
    rows = []
    for position, cid in enumerate(review_order(session.suite.cases, session.views), start=1):
        case = cases[cid]
        view = session.views.get(cid)
        labeler_disagrees = case.labeler_route is not None and case.labeler_route != case.expected_route
        classifier_disagrees = view is not None and view.route != case.expected_route
        rows.append({
            "id": cid, "position": position, "messages": _messages(case), "context": context.get(cid, []),
            "session": case.session, "turn": case.turn,
            "expected_route": case.expected_route, "router_route": case.router_route,
            "labeler_route": case.labeler_route, "label_source": case.label_source or "",
            "reviewed": case.reviewed is not False, "pending": pending.get(cid),
            "labeler_disagrees": labeler_disagrees, "classifier_disagrees": classifier_disagrees,
            "classifier_route": view.route if view else None,
            "top": [{"task": t, "score": f"{s:.3f}"} for t, s in view.top] if view else [],
            "margin": f"{view.margin:.3f}" if view else None,
        })
    return rows


def _messages(case: Case) -> list[dict[str, str]]:
    from evalkit.records import message_text

    return [{"role": str(m.get("role", "")), "text": message_text(m)} for m in case.own_messages()]


def option_rows(labels: list[str]) -> list[dict[str, str]]:
    """The choices of each case's select, with their keyboard shortcut (1-9 for tasks, 0 for fallback)."""
    rows = []
    for i, label in enumerate(labels, start=1):
        key = "0" if label == FALLBACK else (str(i) if i <= 9 else "")
        rows.append({"value": label, "text": f"{key} · {label}" if key else label})
    return rows


def render_page(session: ReviewSession, token: str) -> str:
    pending = session.journal.pending()
    progress = session.progress()
    return _environment().get_template("review.html.jinja2").render(
        suite=session.suite_name, options=option_rows(session.labels), cases=case_rows(session, pending), token=token,
        reviewed=progress["reviewed"], total=progress["total"], n_pending=len(pending),
        cases_path=str(session.cases_path))


def create_review_app(session: ReviewSession, *, token: str | None = None, csp: bool = True) -> Starlette:
    """The ASGI app. ``csp=False`` is for the test that proves escaping holds without the policy."""
    token = token or secrets.token_urlsafe(24)
    allowed_hosts: set[str] = set()

    def headers(extra: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(SECURITY_HEADERS)
        if not csp:
            out.pop("Content-Security-Policy")
        out.update(extra or {})
        return out

    def host_ok(request: Request) -> bool:
        host = request.headers.get("host", "")
        if not allowed_hosts:
            return host.split(":")[0] in ("127.0.0.1", "localhost")
        return host in allowed_hosts

    def refuse(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers())

    async def page(request: Request) -> Response:
        if not host_ok(request):
            return refuse(421, "wrong host")
        return HTMLResponse(render_page(session, token), headers=headers())

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return refuse(404, "not found")
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name], headers=headers())

    async def state(request: Request) -> Response:
        if not host_ok(request):
            return refuse(421, "wrong host")
        return JSONResponse({**session.progress(), "pending": session.journal.pending()}, headers=headers())

    async def edits_of(request: Request) -> list[Edit] | JSONResponse:
        if not host_ok(request):
            return refuse(421, "wrong host")
        if not secrets.compare_digest(request.headers.get("x-review-token", ""), token):
            return refuse(403, "missing or wrong X-Review-Token (reload the page)")
        body = await request.body()
        if len(body) > MAX_BODY:
            return refuse(413, "request too large")
        try:
            data = json.loads(body)
            items = data["edits"]
            if not isinstance(items, list):
                raise TypeError
            edits = [Edit(id=str(e["id"]), expected_route=e.get("expected_route"), undo=bool(e.get("undo", False)))
                     for e in items]
        except (ValueError, KeyError, TypeError, AttributeError):
            return refuse(400, "the body must be {\"edits\": [{\"id\": ..., \"expected_route\": ...}]}")
        return edits

    async def draft(request: Request) -> Response:
        edits = await edits_of(request)
        if isinstance(edits, JSONResponse):
            return edits
        try:
            session.record(edits)
        except EvalkitError as exc:
            return refuse(400, exc.message)
        return JSONResponse({"journaled": len(edits), "pending": len(session.journal.pending())}, headers=headers())

    async def save(request: Request) -> Response:
        edits = await edits_of(request)
        if isinstance(edits, JSONResponse):
            return edits
        import asyncio

        try:
            result = await asyncio.get_running_loop().run_in_executor(None, session.save, edits)
        except EvalkitError as exc:
            return refuse(400 if exc.exit_code == 2 else 500, exc.message)
        return JSONResponse(result, headers=headers())

    app = Starlette(routes=[
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/draft", draft, methods=["POST"]),
        Route("/api/save", save, methods=["POST"]),
    ])
    app.state.allowed_hosts = allowed_hosts
    app.state.token = token
    return app


class ReviewServer:
    """Serves the review app on 127.0.0.1 (never another interface) in a background thread."""

    HOST = "127.0.0.1"

    def __init__(self, session: ReviewSession, *, port: int | None = None, csp: bool = True) -> None:
        from evalkit.emulator.server import LocalRouter

        self.app = create_review_app(session, csp=csp)
        self._server = LocalRouter(self.app, host=self.HOST, port=port)
        self.app.state.allowed_hosts.update({f"{self.HOST}:{self._server.port}", f"localhost:{self._server.port}"})

    @property
    def url(self) -> str:
        return self._server.root_url + "/"

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> "ReviewServer":
        self._server.start()
        return self

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._server.thread.is_alive():
            time.sleep(0.5)

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "ReviewServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

