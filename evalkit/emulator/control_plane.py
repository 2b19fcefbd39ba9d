"""The control plane of the local router: DigitalOcean's model-router endpoints, same paths and bodies.

- ``POST /v2/gen-ai/models/routers``: create from a DO create body -> ``{"model_router": {...}}``.
- ``GET /v2/gen-ai/models/routers[?page=&per_page=]`` -> ``{"model_routers": [...], "links": {...}, "meta": {...}}``.
- ``GET /v2/gen-ai/models/routers/{uuid}`` -> ``{"model_router": {...}}``.
- ``PUT /v2/gen-ai/models/routers/{uuid}``: the fields given replace the stored ones
  (an optional ``uuid`` in the body must match the path) -> ``{"model_router": {...}}``.
- ``DELETE /v2/gen-ai/models/routers/{uuid}`` -> ``{"uuid": ...}``.

Errors use DigitalOcean's error body ``{"id": ..., "message": ...}``: a duplicate name is 400
with DO's exact message, an invalid body 400 naming the field (``evalkit.router_config``
validation), an unknown uuid 404, a body nested too deeply to parse 400, a body over the server's
size limit 413 (``request_too_large``). A router is invocable as ``router:<name>`` as soon as it is
created, and an update takes effect on the very next routing decision.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from evalkit.errors import ConfigError
from evalkit.emulator.state import DuplicateName

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.emulator.server import RouterState

ROUTERS_PATH = "/v2/gen-ai/models/routers"
DUPLICATE_NAME_MESSAGE = "rpc error: code = InvalidArgument desc = model router name already exists"
NOT_FOUND_MESSAGE = "The resource you were accessing could not be found."
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200
NESTED_MESSAGE = "request body is nested too deeply (JSON arrays and objects inside each other)"


def do_error(status: int, id_: str, message: str) -> JSONResponse:
    """An error body in DigitalOcean's format."""
    return JSONResponse({"id": id_, "message": message}, status_code=status)


def invalid(message: str) -> JSONResponse:
    return do_error(400, "invalid_argument", message)


def not_found() -> JSONResponse:
    return do_error(404, "not_found", NOT_FOUND_MESSAGE)


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    from evalkit.emulator.server import BodyError, parse_json_body, read_body

    try:
        raw = await read_body(request, request.app.state.router_state.max_body_bytes)
        data = parse_json_body(raw) if raw.strip() else None
    except BodyError as exc:
        return do_error(exc.status, "request_too_large" if exc.status == 413 else "invalid_argument", exc.message)
    if not isinstance(data, dict):
        return invalid("request body must be a JSON object with name, description, policies and fallback_models")
    return data


def _positive_int(request: Request, name: str, default: int) -> int | JSONResponse:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        return invalid(f"query parameter '{name}' must be a positive integer, got {value!r}")
    if number < 1:
        return invalid(f"query parameter '{name}' must be a positive integer, got {value!r}")
    return number


def control_plane_routes(state: "RouterState") -> list[Route]:
    """The control-plane routes over ``state.store``."""
    store = state.store

    async def list_routers(request: Request) -> JSONResponse:
        page = _positive_int(request, "page", 1)
        if isinstance(page, JSONResponse):
            return page
        per_page = _positive_int(request, "per_page", DEFAULT_PER_PAGE)
        if isinstance(per_page, JSONResponse):
            return per_page
        per_page = min(per_page, MAX_PER_PAGE)
        routers = store.list()
        total = len(routers)
        pages = max(1, math.ceil(total / per_page))
        chunk = routers[(page - 1) * per_page: page * per_page]
        base = str(request.url.replace(query="")).rstrip("/")

        def link(p: int) -> str:
            return f"{base}?page={p}&per_page={per_page}"

        page_links: dict[str, str] = {}
        if page > 1:
            page_links.update(first=link(1), prev=link(min(page - 1, pages)))
        if page < pages:
            page_links.update(next=link(page + 1), last=link(pages))
        return JSONResponse({"model_routers": [r.to_api() for r in chunk],
                             "links": {"pages": page_links},
                             "meta": {"total": total, "page": page, "pages": pages}})

    async def create_router(request: Request) -> JSONResponse:
        data = await _json_object(request)
        if isinstance(data, JSONResponse):
            return data
        try:
            stored = store.create(data)
        except RecursionError:
            return invalid(NESTED_MESSAGE)
        except ConfigError as exc:
            return invalid(exc.message)
        except DuplicateName:
            return invalid(DUPLICATE_NAME_MESSAGE)
        return JSONResponse({"model_router": stored.to_api()})

    async def get_router(request: Request) -> JSONResponse:
        stored = store.get(request.path_params["uuid"])
        if stored is None:
            return not_found()
        return JSONResponse({"model_router": stored.to_api()})

    async def update_router(request: Request) -> JSONResponse:
        uuid = request.path_params["uuid"]
        if store.get(uuid) is None:
            return not_found()
        data = await _json_object(request)
        if isinstance(data, JSONResponse):
            return data
        body_uuid = data.pop("uuid", None)
        if body_uuid is not None and body_uuid != uuid:
            return invalid(f"request body at uuid: the uuid in the body ({body_uuid!r}) differs from the one in the path")
        try:
            stored = store.update(uuid, data)
        except RecursionError:
            return invalid(NESTED_MESSAGE)
        except ConfigError as exc:
            return invalid(exc.message)
        except DuplicateName:
            return invalid(DUPLICATE_NAME_MESSAGE)
        if stored is None:
            return not_found()
        return JSONResponse({"model_router": stored.to_api()})

    async def delete_router(request: Request) -> JSONResponse:
        uuid = request.path_params["uuid"]
        stored = store.delete(uuid)
        if stored is None:
            return not_found()
        state.affinity.drop_router(stored.config.name)
        return JSONResponse({"uuid": uuid})

    return [
        Route(ROUTERS_PATH, list_routers, methods=["GET"]),
        Route(ROUTERS_PATH, create_router, methods=["POST"]),
        Route(ROUTERS_PATH + "/{uuid}", get_router, methods=["GET"]),
        Route(ROUTERS_PATH + "/{uuid}", update_router, methods=["PUT"]),
        Route(ROUTERS_PATH + "/{uuid}", delete_router, methods=["DELETE"]),
    ]
