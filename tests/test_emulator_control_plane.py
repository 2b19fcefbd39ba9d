"""The local router's control plane: DigitalOcean's /v2/gen-ai/models/routers endpoints and bodies."""

from __future__ import annotations

import json
from typing import Any, Iterator

import httpx
import pytest

from evalkit.emulator import LocalRouter, TfidfClassifier, create_app
from evalkit.emulator.state import RouterStore
from evalkit.errors import ConfigError
from tests.conftest import TUTORIAL_ROUTER

ROUTERS = "/v2/gen-ai/models/routers"
DUPLICATE = {"id": "invalid_argument",
             "message": "rpc error: code = InvalidArgument desc = model router name already exists"}


def body(name: str = "cost-governance-demo") -> dict[str, Any]:
    data = json.loads(json.dumps(TUTORIAL_ROUTER))
    data["name"] = name
    return data


@pytest.fixture
def server(tmp_path) -> Iterator[LocalRouter]:
    app = create_app([], classifier=TfidfClassifier(), state_dir=tmp_path / "state")
    with LocalRouter(app) as lr:
        yield lr


@pytest.fixture
def http(server: LocalRouter) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.root_url, timeout=30) as client:
        yield client


def test_create_returns_the_router_wrapped_in_model_router(http: httpx.Client) -> None:
    resp = http.post(ROUTERS, json=body())
    assert resp.status_code == 200
    router = resp.json()["model_router"]
    assert set(router) == {"uuid", "name", "description", "regions", "config", "created_at", "updated_at"}
    assert router["name"] == "cost-governance-demo"
    assert router["description"] == TUTORIAL_ROUTER["description"]
    assert router["config"]["policies"] == TUTORIAL_ROUTER["policies"]
    assert router["config"]["fallback_models"] == ["llama3.3-70b-instruct"]
    assert router["regions"] == ["all"]
    assert len(router["uuid"]) == 36 and router["uuid"].count("-") == 4
    assert router["created_at"].endswith("Z") and router["created_at"] == router["updated_at"]


def test_duplicate_name_is_400_with_the_digitalocean_body(http: httpx.Client) -> None:
    assert http.post(ROUTERS, json=body()).status_code == 200
    resp = http.post(ROUTERS, json=body())
    assert resp.status_code == 400
    assert resp.json() == DUPLICATE
    assert len(http.get(ROUTERS).json()["model_routers"]) == 1


def test_get_unknown_uuid_is_404(http: httpx.Client) -> None:
    resp = http.get(f"{ROUTERS}/00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 404
    assert resp.json()["id"] == "not_found"
    assert http.put(f"{ROUTERS}/nope", json={"description": "x"}).status_code == 404
    assert http.delete(f"{ROUTERS}/nope").status_code == 404


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b["policies"][0].__setitem__("models", ["a", "b", "c", "d"]), "policies[0].models"),
    (lambda b: b.__setitem__("name", "Bad Name"), "name"),
    (lambda b: b.pop("fallback_models"), "fallback_models"),
    (lambda b: b["policies"][1]["custom_task"].__setitem__("description", ""), "policies[1].custom_task.description"),
    (lambda b: b["policies"][2].__setitem__("selection_policy", {"prefer": "smartest"}), "policies[2].selection_policy.prefer"),
    (lambda b: b.__setitem__("colour", "blue"), "colour"),
    (lambda b: b["policies"][1]["custom_task"].__setitem__("name", "客户问答"), "policies[1].custom_task.name"),
    (lambda b: b["policies"][2].__setitem__("models", ["modèle"]), "policies[2].models[0]"),
])
def test_invalid_body_is_400_naming_the_field(http: httpx.Client, mutate: Any, field: str) -> None:
    data = body()
    mutate(data)
    resp = http.post(ROUTERS, json=data)
    assert resp.status_code == 400
    err = resp.json()
    assert err["id"] == "invalid_argument"
    assert f"at {field}:" in err["message"]


def test_task_names_a_header_cannot_carry_are_400_on_create_and_update(http: httpx.Client) -> None:
    data = body()
    data["policies"][0]["custom_task"]["name"] = "客户问答"
    resp = http.post(ROUTERS, json=data)
    assert resp.status_code == 400
    err = resp.json()
    assert set(err) == {"id", "message"} and err["id"] == "invalid_argument"
    assert "policies[0].custom_task.name: task name has characters outside printable ASCII" in err["message"]
    assert "客户问答" in err["message"] and "rename it with ASCII letters" in err["message"]
    assert http.get(ROUTERS).json()["model_routers"] == []
    made = http.post(ROUTERS, json=body()).json()["model_router"]
    policies = json.loads(json.dumps(made["config"]["policies"]))
    policies[1]["custom_task"]["name"] = "pregunta-del-niño"
    resp = http.put(f"{ROUTERS}/{made['uuid']}", json={"policies": policies})
    assert resp.status_code == 400 and "policies[1].custom_task.name" in resp.json()["message"]
    assert http.get(f"{ROUTERS}/{made['uuid']}").json()["model_router"]["config"] == made["config"]


def test_body_that_is_not_an_object_is_400(http: httpx.Client) -> None:
    for content in (b"[1, 2]", b"{not json", b""):
        resp = http.post(ROUTERS, content=content, headers={"content-type": "application/json"})
        assert resp.status_code == 400
        assert resp.json()["id"] == "invalid_argument"


def test_get_list_update_delete(http: httpx.Client) -> None:
    a = http.post(ROUTERS, json=body("router-a")).json()["model_router"]
    b = http.post(ROUTERS, json=body("router-b")).json()["model_router"]
    assert http.get(f"{ROUTERS}/{a['uuid']}").json() == {"model_router": a}

    listing = http.get(ROUTERS).json()
    assert [r["name"] for r in listing["model_routers"]] == ["router-a", "router-b"]
    assert listing["meta"] == {"total": 2, "page": 1, "pages": 1}
    assert listing["links"] == {"pages": {}}

    resp = http.put(f"{ROUTERS}/{a['uuid']}", json={"uuid": a["uuid"], "description": "changed"})
    assert resp.status_code == 200
    updated = resp.json()["model_router"]
    assert updated["description"] == "changed"
    assert updated["uuid"] == a["uuid"] and updated["created_at"] == a["created_at"]
    assert updated["config"] == a["config"]  # fields not given keep their value
    assert http.get(f"{ROUTERS}/{a['uuid']}").json()["model_router"]["description"] == "changed"

    renamed = http.put(f"{ROUTERS}/{a['uuid']}", json={"name": "router-b"})
    assert renamed.status_code == 400 and renamed.json() == DUPLICATE
    mismatch = http.put(f"{ROUTERS}/{a['uuid']}", json={"uuid": b["uuid"], "description": "x"})
    assert mismatch.status_code == 400 and "uuid" in mismatch.json()["message"]
    bad = http.put(f"{ROUTERS}/{a['uuid']}", json={"fallback_models": []})
    assert bad.status_code == 400 and "fallback_models" in bad.json()["message"]

    deleted = http.delete(f"{ROUTERS}/{a['uuid']}")
    assert deleted.status_code == 200 and deleted.json() == {"uuid": a["uuid"]}
    assert http.get(f"{ROUTERS}/{a['uuid']}").status_code == 404
    assert [r["name"] for r in http.get(ROUTERS).json()["model_routers"]] == ["router-b"]


def test_list_pages(http: httpx.Client) -> None:
    for i in range(5):
        http.post(ROUTERS, json=body(f"r{i}"))
    page2 = http.get(ROUTERS, params={"page": 2, "per_page": 2}).json()
    assert [r["name"] for r in page2["model_routers"]] == ["r2", "r3"]
    assert page2["meta"] == {"total": 5, "page": 2, "pages": 3}
    assert page2["links"]["pages"]["next"].endswith("page=3&per_page=2")
    assert page2["links"]["pages"]["prev"].endswith("page=1&per_page=2")
    assert http.get(ROUTERS, params={"page": 0}).status_code == 400


def test_router_is_invocable_right_after_create_and_gone_after_delete(http: httpx.Client) -> None:
    chat = {"model": "router:fresh-router", "messages": [{"role": "user", "content": "hello"}]}
    missing = http.post("/v1/chat/completions", json=chat)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    created = http.post(ROUTERS, json=body("fresh-router")).json()["model_router"]
    ok = http.post("/v1/chat/completions", json=chat)
    assert ok.status_code == 200 and ok.headers["x-model-router-selected-route"]
    assert "router:fresh-router" in [m["id"] for m in http.get("/v1/models").json()["data"]]
    http.delete(f"{ROUTERS}/{created['uuid']}")
    assert http.post("/v1/chat/completions", json=chat).status_code == 404


def test_routers_persist_in_the_state_folder(tmp_path) -> None:
    store = RouterStore(tmp_path / "s")
    made = store.create(body("kept"))
    store.update(made.uuid, {"description": "second version"})
    again = RouterStore(tmp_path / "s")
    [only] = again.list()
    assert (only.uuid, only.config.name, only.config.description) == (made.uuid, "kept", "second version")
    assert only.config.task_names == ["classify", "customer-qa", "reasoning"]


def test_a_corrupt_state_file_is_a_config_error(tmp_path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "routers.json").write_text("{half")
    with pytest.raises(ConfigError, match="routers.json: the router state file is not valid JSON"):
        RouterStore(folder)


def test_api_key_guards_both_planes(tmp_path) -> None:
    app = create_app([], classifier=TfidfClassifier(), api_key="s3cret")
    with LocalRouter(app) as lr, httpx.Client(base_url=lr.root_url) as http:
        no_key = http.get(ROUTERS)
        assert no_key.status_code == 401 and no_key.json()["id"] == "unauthorized"
        wrong = http.post("/v1/chat/completions", json={}, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        assert http.get("/v1/models").status_code == 401
        good = {"authorization": "Bearer s3cret"}
        assert http.post(ROUTERS, json=body(), headers=good).status_code == 200
        assert http.get("/v1/models", headers=good).status_code == 200
