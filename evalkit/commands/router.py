"""`evalkit router create|get|list|update|delete|diff|export`: the DigitalOcean control plane from the terminal.

``diff`` and ``export`` read files only (``export --format plano`` writes the router as a Plano
configuration, ``evalkit.plano``). Every other command talks to the control plane with the token in ``DIGITALOCEAN_TOKEN``
(never a model access key) at ``--api-url`` / ``EVALKIT_DO_API_URL`` /
``https://api.digitalocean.com``. A router is named by its uuid or its name. Output is
readable by default; ``--json`` prints the API's own document. An error answer shows
DigitalOcean's message and exits 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from evalkit.commands.console import err, out
from evalkit.commands.options import ranged
from evalkit.redact import terminal_safe as _t

router_app = typer.Typer(
    name="router",
    help="Manage DigitalOcean model routers (token in DIGITALOCEAN_TOKEN) and diff router configs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

API_URL_HELP = "Control-plane root URL (default $EVALKIT_DO_API_URL or https://api.digitalocean.com)."
ROUTER_HELP = "The router's uuid or name."


# -- rendering (pure) --------------------------------------------------------------------------

def _pool(models: list[str]) -> str:
    return "[" + ", ".join(_t(str(m)) for m in models) + "]"


def format_router(router: Any) -> str:
    """A ``ModelRouter`` as readable text: header, tasks with pools and policies, fallbacks.

    Every field comes from the control plane: control sequences are stripped (``terminal_safe``).
    """
    lines = [f"router {_t(router.name)}  (uuid {_t(router.uuid)})"]
    if router.temporary:
        lines.append("  (a temporary router of `evalkit run --candidate`)")
    if router.description:
        lines.append(f"description: {_t(router.description)}")
    if router.regions:
        lines.append(f"regions: {_t(', '.join(map(str, router.regions)))}")
    stamps = [f"created {_t(router.created_at)}" if router.created_at else "",
              f"updated {_t(router.updated_at)}" if router.updated_at else ""]
    if any(stamps):
        lines.append(" · ".join(s for s in stamps if s))
    lines.append("tasks:")
    for policy in router.create_body()["policies"]:
        task = policy.get("custom_task") or {}
        name = _t(str(task.get("name") or f"{policy.get('task_slug')} (preset)"))
        prefer = (policy.get("selection_policy") or {}).get("prefer")
        lines.append(f"  {name}  {_pool(policy.get('models', []))}  "
                     + (f"prefer {prefer}" if prefer else "manual ranking"))
        if task.get("description"):
            lines.append(f"    {_t(str(task['description']))}")
    lines.append(f"fallback models: {_pool(router.config.fallback_models)}")
    return "\n".join(lines)


def format_word_diff(segments: list[dict[str, str]]) -> str:
    """Word-diff segments as text, deletions as ``[-...-]`` and insertions as ``{+...+}`` (git's style)."""
    parts = []
    for seg in segments:
        if seg["op"] == "delete":
            parts.append(f"[-{seg['text']}-]")
        elif seg["op"] == "insert":
            parts.append(f"{{+{seg['text']}+}}")
        else:
            parts.append(seg["text"])
    return " ".join(p for p in parts if p)


def _pool_line(change: dict[str, Any]) -> str:
    text = f"{_pool(change['a'])} -> {_pool(change['b'])}"
    extra = []
    if change["added"]:
        extra.append("added " + ", ".join(change["added"]))
    if change["removed"]:
        extra.append("removed " + ", ".join(change["removed"]))
    if change["reordered"]:
        extra.append("reordered")
    return text + (f"  ({'; '.join(extra)})" if extra else "")


def format_config_diff(diff: dict[str, Any], *, a_label: str = "A", b_label: str = "B") -> str:
    """The result of ``diff_configs`` as readable text, one change per line."""
    if not diff["changed"]:
        if diff["a_hash"] == diff["b_hash"]:
            return f"no changes ({a_label} and {b_label} are the same router config, {diff['a_hash']})"
        ignored = ", ".join(diff.get("ignored_server_defaults") or []) or "server defaults"
        return (f"no changes ({a_label} ({diff['a_hash']}) and {b_label} ({diff['b_hash']}) are the same router "
                f"config: the hashes differ only by {ignored}, which one file leaves to the server)")
    lines = [f"router config {a_label} ({diff['a_hash']}) -> {b_label} ({diff['b_hash']})"]
    if diff["name"]:
        lines.append(f"name: {diff['name']['a']} -> {diff['name']['b']}")
    if diff["description"]:
        lines.append(f"router description: {diff['description']['a']!r} -> {diff['description']['b']!r}")
    for t in diff["tasks"]:
        lines.append(f"task {t['task']}:")
        if t["description"]:
            lines.append(f"  description changed: {format_word_diff(t['description']['diff'])}")
        if t["models"]:
            lines.append(f"  models: {_pool_line(t['models'])}")
        if t["prefer"]:
            lines.append(f"  selection policy: {t['prefer']['a']} -> {t['prefer']['b']}")
    for t in diff["tasks_added"]:
        lines.append(f"task added: {t['task']}  {_pool(t['models'])}  "
                     + (f"prefer {t['prefer']}" if t["prefer"] else "manual ranking"))
        lines.append(f"  description: {t['description']}")
    for t in diff["tasks_removed"]:
        lines.append(f"task removed: {t['task']}  {_pool(t['models'])}")
    if diff["task_order"]:
        lines.append(f"task order: {', '.join(diff['task_order']['a'])} -> {', '.join(diff['task_order']['b'])}")
    if diff["fallback_models"]:
        lines.append(f"fallback models: {_pool_line(diff['fallback_models'])}")
    if diff.get("regions"):
        lines.append(f"regions: {diff['regions']['a']} -> {diff['regions']['b']}")
    if len(lines) == 1:
        lines.append("(only fields outside the tasks, pools and fallbacks changed)")
    return "\n".join(lines)


def format_router_list(routers: list[Any]) -> str:
    """One line per router: name, uuid, tasks, fallback models, last update; temporary ones marked."""
    rows = [("NAME", "UUID", "TASKS", "FALLBACK", "UPDATED")]
    for r in routers:
        tasks = [str((p.get("custom_task") or {}).get("name") or p.get("task_slug") or "?") for p in r.config.policies]
        rows.append((_t(r.name) + (" (temporary)" if r.temporary else ""), _t(r.uuid), _t(",".join(tasks)),
                     _t(",".join(r.config.fallback_models)), _t(r.updated_at or "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row[:4], widths)), row[4]]) for row in rows)


# -- commands ----------------------------------------------------------------------------------

def _plane(api_url: str | None) -> Any:
    from evalkit.control_plane import ControlPlane

    return ControlPlane.from_env(api_url)


def _print_router(router: Any, as_json: bool, verb: str | None = None) -> None:
    if as_json:
        out.print_json(json.dumps({"model_router": router.model_dump(mode="json")}))
        return
    if verb:
        err.print(f"{verb} router {router.name} ({router.uuid})", markup=False, highlight=False)
    out.print(format_router(router), markup=False, highlight=False)


@router_app.command("create")
def create(
    router_json: Path = typer.Argument(..., help="The router config (DigitalOcean create body, router.json)."),
    name: Optional[str] = typer.Option(None, "--name", help="Create it under this name instead of the file's."),
    api_url: Optional[str] = typer.Option(None, "--api-url", help=API_URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the created router as JSON."),
) -> None:
    """Create a router from a router.json (validated before it is sent)."""
    from evalkit.errors import UsageError
    from evalkit.router_config import NAME_RE, load_router_config

    config = load_router_config(router_json)
    body = config.to_body()
    if name is not None:
        if not NAME_RE.match(name) or len(name) > 255:
            raise UsageError("a router name uses only lowercase a-z, 0-9 and '-', at most 255 characters",
                             where="--name", got=name, fix="e.g. --name cost-governance-demo-v2")
        body["name"] = name
    with _plane(api_url) as plane:
        _print_router(plane.create(body), as_json, "created")


@router_app.command("get")
def get(
    router: str = typer.Argument(..., help=ROUTER_HELP),
    body: bool = typer.Option(False, "--body", help="Print the router as a create body (router.json), e.g. to save the deployed config."),
    api_url: Optional[str] = typer.Option(None, "--api-url", help=API_URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the router as the API returns it."),
) -> None:
    """Show one router: tasks, descriptions, model pools, selection policies, fallback models."""
    with _plane(api_url) as plane:
        found = plane.resolve(router)
    if body:
        out.print_json(json.dumps(found.create_body()))
    else:
        _print_router(found, as_json)


@router_app.command("list")
def list_(
    api_url: Optional[str] = typer.Option(None, "--api-url", help=API_URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print {\"model_routers\": [...]}."),
) -> None:
    """List the account's routers (temporary routers of `evalkit run --candidate` are marked)."""
    with _plane(api_url) as plane:
        routers = plane.list()
    if as_json:
        out.print_json(json.dumps({"model_routers": [r.model_dump(mode="json") for r in routers]}))
    elif not routers:
        out.print("no routers")
    else:
        out.print(format_router_list(routers), markup=False, highlight=False, overflow="ignore", crop=False)


@router_app.command("update")
def update(
    router: str = typer.Argument(..., help=ROUTER_HELP),
    router_json: Path = typer.Argument(..., help="The new router config (validated before it is sent)."),
    api_url: Optional[str] = typer.Option(None, "--api-url", help=API_URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the updated router as JSON."),
) -> None:
    """Replace a router's description, policies and fallback models with those of a router.json.

    Try the change first: `evalkit run SUITE --target do --candidate ROUTER_JSON --against deployed`.
    """
    from evalkit.router_config import load_router_config

    config = load_router_config(router_json)
    with _plane(api_url) as plane:
        current = plane.resolve(router)
        updated = plane.update(current.uuid, config.to_body())
    if updated.name != current.name and not as_json:
        err.print(f"renamed {current.name} -> {updated.name} (the name in {router_json})", markup=False)
    _print_router(updated, as_json, "updated")


@router_app.command("delete")
def delete(
    router: str = typer.Argument(..., help=ROUTER_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking (needed when not at a terminal)."),
    api_url: Optional[str] = typer.Option(None, "--api-url", help=API_URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print {\"deleted\": {uuid, name}}."),
) -> None:
    """Delete a router. Asks first unless --yes."""
    from evalkit.errors import UsageError

    with _plane(api_url) as plane:
        found = plane.resolve(router)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to delete router {found.name} without confirmation", where="router delete",
                                 fix="add --yes to delete without a prompt")
            if not typer.confirm(f"delete router {_t(found.name)} ({_t(found.uuid)})?", default=False):
                raise typer.Exit(1)
        plane.delete(found.uuid)
    if as_json:
        out.print_json(json.dumps({"deleted": {"uuid": found.uuid, "name": found.name}}))
    else:
        out.print(f"deleted router {found.name} ({found.uuid})", markup=False, highlight=False)


@router_app.command("diff")
def diff(
    a: Path = typer.Argument(..., metavar="A_JSON", help="The router config before (e.g. the deployed router.json)."),
    b: Path = typer.Argument(..., metavar="B_JSON", help="The router config after (e.g. router.candidate.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the diff as JSON."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when the configs differ (like git diff --exit-code)."),
) -> None:
    """Which task descriptions, model pools, selection policies and fallback models changed from A to B.

    No network: two files. To diff against the live router, save it first with
    `evalkit router get NAME --body > deployed.json` (the output of `router get NAME --json` works
    too). Fields the control plane fills in are no change when one file omits them: ids, uuids,
    timestamps and created/updated fields are ignored, and regions (the server answers ["all"])
    count only when both files give them.
    """
    from evalkit.router_config import align_server_defaults, diff_configs, load_router_for_diff

    config_a, omits_a = load_router_for_diff(a)
    config_b, omits_b = load_router_for_diff(b)
    # The hashes printed are each file's own, as a run manifest of that file records it; the
    # comparison takes a server default one file omits from the other (it is no change).
    hashes = {"a_hash": config_a.hash, "b_hash": config_b.hash}
    config_a, config_b, ignored = align_server_defaults(config_a, omits_a, config_b, omits_b)
    result = {**diff_configs(config_a, config_b), **hashes, "ignored_server_defaults": ignored}
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(format_config_diff(result, a_label=str(a), b_label=str(b)), markup=False, highlight=False)
        if ignored:
            err.print(f"note: not compared, as one file leaves them to the server: {', '.join(ignored)}",
                      markup=False, highlight=False)
    if exit_code and result["changed"]:
        raise typer.Exit(1)


EXPORT_FORMATS = ("plano",)


@router_app.command("export")
def export(
    router_json: Path = typer.Argument(..., metavar="ROUTER_JSON", help="The router config (DigitalOcean create body, router.json)."),
    format_: str = typer.Option(..., "--format", help="Output format: plano (a Plano configuration YAML, schema v0.4.0)."),
    api_key_env: str = typer.Option("MODEL_ACCESS_KEY", "--api-key-env", help="Environment variable Plano reads the DigitalOcean model access key from (its name is written, never the key)."),
    port: int = typer.Option(12000, "--port", callback=ranged("--port"), help="Port of Plano's model listener."),
    routing_model: Optional[str] = typer.Option(None, "--routing-model", help="Self-hosted routing model for Plano (overrides.llm_routing_model), e.g. hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M; default: Plano's hosted one."),
    routing_model_url: Optional[str] = typer.Option(None, "--routing-model-url", help="Base URL of the self-hosted routing model as Plano reaches it, e.g. http://host.docker.internal:11434."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the YAML to this file (replaced whole, atomically) instead of stdout."),
) -> None:
    """Write the router as a Plano configuration: every task's name, description and model pool.

    Run Plano itself locally against the same task descriptions (`planoai up plano_config.yaml`)
    and compare its routes with evalkit's local router. No network: one file in, YAML out.
    """
    from evalkit import __version__
    from evalkit.errors import UsageError
    from evalkit.plano import plano_notes, plano_yaml
    from evalkit.router_config import load_router_config

    if format_.lower() not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format '{format_}'", where="--format", got=format_,
                         fix=f"use one of: {', '.join(EXPORT_FORMATS)}")
    config = load_router_config(router_json)
    text = plano_yaml(config, access_key_env=api_key_env, port=port, routing_model=routing_model,
                      routing_model_url=routing_model_url, evalkit_version=__version__)
    for note in plano_notes(config):
        err.print(f"note: {note}", markup=False, highlight=False)
    if out_file is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from evalkit.errors import RunError
    from evalkit.store import write_text

    try:
        write_text(out_file, text)
    except RunError as exc:  # the file could not be written (the temporary file is removed)
        raise UsageError(f"cannot write the Plano configuration: {exc.what}", where=str(out_file),
                         fix="give --out a writable file path") from None
    err.print(f"wrote {out_file} (Plano configuration of router {config.name}, {len(config.tasks)} tasks)",
              markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(router_app, name="router")
