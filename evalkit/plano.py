"""The Plano configuration of a router config (``evalkit router export --format plano``).

The DigitalOcean Inference Router is reported to be built on Plano (katanemo/plano, formerly
archgw). This module writes the same router as a Plano configuration, so that a user can run
Plano itself locally against the same task descriptions and compare its routes with evalkit's
local router and with DigitalOcean.

The schema is Plano's current one (``version: v0.4.0``; ``config/plano_config_schema.yaml``,
``docs/routing-api.md`` and ``docs/source/guides/llm_router.rst`` of katanemo/plano, release
0.4.36):

- ``model_providers``: every model of the router once, as ``digitalocean/<slug>`` (Plano's
  built-in DigitalOcean provider, base URL ``https://inference.do-ai.run/v1``) with
  ``access_key: $VAR`` (Plano reads the key from that environment variable; the key itself is
  never written). The router's first fallback model is the ``default: true`` provider.
- ``routing_preferences`` (top level since v0.4.0): one entry per task, ``name`` and
  ``description`` from the router config, ``models`` its pool in order, and
  ``selection_policy: {prefer: cheapest | fastest}`` when the policy has one (none means the
  declared order, like DigitalOcean's manual ranking).
- ``model_metrics_sources``: a ``cost`` source from DigitalOcean's catalog when a task prefers
  ``cheapest`` (Plano ranks models without a price last, in their declared order).
- ``listeners``: one ``model`` listener (default port 12000, Plano's own default).
- With a self-hosted routing model (``routing_model`` and its ``routing_model_url``): Plano's
  ``overrides.llm_routing_model: plano/<model>`` and a ``plano/<model>`` provider at that URL,
  as Plano's guide "Self-hosting Plano-Orchestrator" shows for Arch-Router-1.5B under Ollama.
  Without them Plano uses its hosted routing model.

Plano versions before v0.4.0 nested ``routing_preferences`` (name and description only) under
each model provider; Plano's CLI still migrates that form, but it cannot express a pool of
several models per task, so the top-level form is written.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.router_config import RouterConfig

__all__ = ["PLANO_CONFIG_VERSION", "PLANO_ROUTE_FIELD", "plano_config", "plano_model", "plano_notes", "plano_yaml"]

PLANO_CONFIG_VERSION = "v0.4.0"
PLANO_PROVIDER = "digitalocean"
DEFAULT_KEY_ENV = "MODEL_ACCESS_KEY"
DEFAULT_PORT = 12000
# Where Plano reports the selected route: the body of its routing-decision endpoint
# (POST /routing/v1/chat/completions answers {"models": [...], "route": <name or null>, "trace_id"}).
# Its proxy (/v1/chat/completions) adds no route header, so there is no --route-header preset.
PLANO_ROUTE_FIELD = "route"
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


def _comment(text: str) -> str:
    """One YAML comment line: names from the router file cannot break out of it."""
    return "# " + _LINE_BREAKING.sub(" ", text)


def plano_model(slug: str) -> str:
    """A DigitalOcean model slug as a Plano model name (``provider/model``)."""
    return f"{PLANO_PROVIDER}/{slug}"


def _models_in_order(router: "RouterConfig") -> list[str]:
    seen: list[str] = []
    for slug in [*(m for t in router.tasks for m in t.models), *router.fallback_models]:
        if slug not in seen:
            seen.append(slug)
    return seen


def plano_config(router: "RouterConfig", *, access_key_env: str = DEFAULT_KEY_ENV, port: int = DEFAULT_PORT,
                 routing_model: str | None = None, routing_model_url: str | None = None) -> dict[str, Any]:
    """Pure: the Plano configuration document (a dict, in the order Plano's docs write it)."""
    default = router.fallback_models[0] if router.fallback_models else None
    providers: list[dict[str, Any]] = []
    if routing_model and routing_model_url:
        providers.append({"model": f"plano/{routing_model}", "base_url": routing_model_url})
    for slug in _models_in_order(router):
        entry: dict[str, Any] = {"model": plano_model(slug), "access_key": f"${access_key_env}"}
        if slug == default:
            entry["default"] = True
        providers.append(entry)
    preferences: list[dict[str, Any]] = []
    for task in router.tasks:
        pref: dict[str, Any] = {"name": task.name, "description": task.description,
                                "models": [plano_model(m) for m in task.models]}
        if task.prefer:
            pref["selection_policy"] = {"prefer": task.prefer}
        preferences.append(pref)
    config: dict[str, Any] = {
        "version": PLANO_CONFIG_VERSION,
        "listeners": [{"name": "egress_traffic", "type": "model", "address": "0.0.0.0", "port": port,
                       "timeout": "30s"}],
    }
    if routing_model and routing_model_url:
        config["overrides"] = {"llm_routing_model": f"plano/{routing_model}"}
    config.update({
        "model_providers": providers,
        "routing_preferences": preferences,
    })
    if any(t.prefer == "cheapest" for t in router.tasks):
        config["model_metrics_sources"] = [{"type": "cost", "provider": PLANO_PROVIDER}]
    return config


def plano_notes(router: "RouterConfig") -> list[str]:
    """Pure: what the Plano configuration cannot carry over exactly (also printed on stderr)."""
    notes: list[str] = []
    for task in router.tasks:
        if task.preset:
            notes.append(f"task '{task.name}' is a DigitalOcean preset (task_slug): its description here is the "
                         "slug in words, not DigitalOcean's own; write a description before comparing routes")
        if task.prefer == "fastest":
            notes.append(f"task '{task.name}' prefers fastest: Plano needs a latency source (Prometheus) under "
                         "model_metrics_sources for that; without one it keeps the declared order")
    if any(t.prefer == "cheapest" for t in router.tasks):
        notes.append("cheapest: Plano keys DigitalOcean's price catalog as 'creator/model_id'; add "
                     "model_aliases under the cost source ('<creator>/<slug>': digitalocean/<slug>) for models "
                     "it does not match, or they are ranked last in declared order")
    if len(router.fallback_models) > 1:
        rest = ", ".join(router.fallback_models[1:])
        notes.append(f"Plano has one default model for unmatched requests ({router.fallback_models[0]}); the "
                     f"other fallback models ({rest}) are declared but not tried in order")
    return notes


def plano_yaml(router: "RouterConfig", *, access_key_env: str = DEFAULT_KEY_ENV, port: int = DEFAULT_PORT,
               routing_model: str | None = None, routing_model_url: str | None = None,
               evalkit_version: str = "") -> str:
    """Pure: the Plano configuration as YAML, with a header comment on how to use it."""
    from evalkit.errors import UsageError

    if not ENV_RE.match(access_key_env):
        raise UsageError("not an environment variable name", where="--api-key-env", got=access_key_env,
                         fix="e.g. --api-key-env MODEL_ACCESS_KEY")
    if not 0 < port < 65536:
        raise UsageError("the port must be between 1 and 65535", where="--port", got=str(port),
                         fix="e.g. --port 12000")
    if bool(routing_model) != bool(routing_model_url):
        raise UsageError("a self-hosted routing model needs both its name and its URL",
                         where="--routing-model" if routing_model_url else "--routing-model-url",
                         fix="give both, e.g. --routing-model hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M "
                             "--routing-model-url http://host.docker.internal:11434, or neither (Plano's hosted one)")
    if routing_model_url and not re.match(r"^https?://[^\s/]+", routing_model_url):
        raise UsageError("the routing model's URL is not an http(s) URL", where="--routing-model-url",
                         got=routing_model_url, fix="e.g. --routing-model-url http://localhost:11434")
    if routing_model and (not routing_model.strip() or _LINE_BREAKING.search(routing_model)):
        raise UsageError("the routing model's name is empty or holds control characters", where="--routing-model",
                         got=repr(routing_model), fix="e.g. --routing-model hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M")
    config = plano_config(router, access_key_env=access_key_env, port=port, routing_model=routing_model,
                          routing_model_url=routing_model_url)
    default = router.fallback_models[0] if router.fallback_models else None
    header = [
        f"Plano configuration of router '{router.name}', written by evalkit {evalkit_version}".rstrip(),
        f"(config schema {PLANO_CONFIG_VERSION}: top-level routing_preferences; see docs/digitalocean.md).",
        f"Models are served by DigitalOcean serverless inference; Plano reads the key from ${access_key_env}.",
    ]
    if default:
        header.append(f"A request that matches no route is served by its own model, or by the default model "
                      f"({plano_model(default)}, the router's first fallback model) when it names none.")
    if routing_model:
        header.append(f"Routing model: plano/{routing_model} at {routing_model_url} (overrides.llm_routing_model); "
                      "Plano 0.4.19 and later prompt it in Plano-Orchestrator's format.")
    else:
        header.append("Routing model: Plano's hosted one (add --routing-model and --routing-model-url to self-host).")
    header.append("Plano reports the chosen route in the body of POST /routing/v1/chat/completions "
                  f"(field \"{PLANO_ROUTE_FIELD}\", null when none matched), not in a response header.")
    header += [f"note: {note}" for note in plano_notes(router)]
    body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=4096, default_flow_style=False)
    return "\n".join(_comment(line) for line in header) + "\n" + body
