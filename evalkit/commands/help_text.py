"""Human help text for every command: metavars such as SUITE, RUN_DIR, URL or N instead of the
``{suite}`` usage placeholders and ``<path>`` / ``<list[str]>`` type labels typer prints.

``humanise(command)`` walks the click command built from the typer app (``evalkit.cli.main``
calls it before running), so a parameter declared without ``metavar=`` still reads well.
An explicit ``metavar=`` always wins.
"""

from __future__ import annotations

from typing import Any

# Argument names whose upper-cased name would not read as what to type.
ARGUMENT_NAMES = {"exprs": "EXPR", "runs": "RUN_DIR", "routers": "ROUTER_JSON", "a": "A_JSON", "b": "B_JSON"}
# Option metavars by long option name (without the dashes).
OPTION_NAMES = {
    "out": "DIR", "router": "ROUTER_JSON", "candidate": "ROUTER_JSON", "prices": "FILE", "traffic": "FILE",
    "resume": "RUN_DIR", "baseline": "RUN_DIR", "run": "RUN_DIR", "suite": "SUITE", "upstream": "SLUG=URL",
    "timeout": "SECONDS", "backoff": "SECONDS", "ready-timeout": "SECONDS", "rpm": "N", "gate": "EXPR",
    "max-drop": "METRIC=DELTA", "shard": "I/N", "tag": "TAG", "fail-on": "LEVEL", "state-dir": "DIR",
    "judge": "MODEL", "labeler": "MODEL", "route-header": "HEADER", "router-name": "NAME",
}


# What an option without a default value falls back to, shown as its "[default: ...]" (an option
# whose help already says "default" keeps its own wording).
SHOWN_DEFAULTS = {
    "threshold": "the classifier's own: 0.10 embedding, 0.05 tfidf",
    "prices": "the packaged catalog, evalkit/data/prices.yaml",
    "route-header": "x-model-router-selected-route",
    "base-url": "do: $EVALKIT_DO_INFERENCE_URL or https://inference.do-ai.run/v1; openai: required",
    "seed": "a new random seed each start",
    "max-error-rate": "no budget: a run stops only when every case fails",
}


def _long_name(param: Any) -> str:
    longs = [o for o in param.opts if o.startswith("--")]
    return (longs[0] if longs else param.opts[0]).lstrip("-")


def option_metavar(param: Any) -> str:
    """A human metavar for an option declared without one."""
    name = _long_name(param)
    if name in OPTION_NAMES:
        return OPTION_NAMES[name]
    if name.endswith("-url"):
        return "URL"
    if name.endswith("-env"):
        return "VAR"
    if name.endswith(("timeout", "-ttl")):
        return "SECONDS"
    if name.endswith("-rate"):
        return "RATE"
    if name.endswith("model"):  # --model, --baseline-model, --classifier-model, --routing-model
        return "MODEL"
    bare = getattr(param, "bare_type", None)  # typer's own parameter types
    type_name = bare() if callable(bare) else getattr(getattr(param, "type", None), "name", "")
    if type_name in ("int", "integer"):
        return "N"
    return name.replace("-", "_").upper()


def _argument_usage(param: Any) -> Any:
    def pieces(ctx: Any) -> list[str]:
        name = param.metavar + ("..." if param.nargs != 1 else "")
        return [name if param.required else f"[{name}]"]
    return pieces


def humanise(command: Any) -> Any:
    """Give every parameter of ``command`` and its subcommands a human metavar (in place)."""
    for param in command.params:
        kind = getattr(param, "param_type_name", "")  # click's or the copy newer typer versions vendor
        if kind == "argument":
            if param.metavar is None:
                param.metavar = ARGUMENT_NAMES.get(param.name, param.name.upper())
            param.display_type_rich = lambda ctx: None  # no "<path>" after the name
            param.get_usage_pieces = _argument_usage(param)
        elif kind == "option" and not param.is_flag and not param.count:
            if param.metavar is None:
                param.metavar = option_metavar(param)
            shown = SHOWN_DEFAULTS.get(_long_name(param))
            if (shown and param.default is None and not isinstance(param.show_default, str)
                    and "default" not in (param.help or "").lower()):
                param.show_default = shown
    for sub in getattr(command, "commands", {}).values():
        humanise(sub)
    return command
