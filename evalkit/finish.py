"""How to complete an incomplete run, as every report of it says: the ``evalkit run ... --resume``
command (rebuilt from its manifest), and for a merged run that lacks cases the other way too,
finishing the shards and merging again."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # the command line imports this module; records (pydantic) loads when a run does
    from evalkit.records import Manifest


MASKED_NOTE = "  # put back the URL's credentials and query values, masked here"


def command_line(args: Sequence[str]) -> str:
    """``args`` as one shell-quoted command to print, the value of every ``--*-url`` option shown
    without user info and query values (``redact.safe_url``), and a note after it when any was."""
    from evalkit.redact import safe_url

    shown, masked = list(args), False
    for i in range(1, len(shown)):
        if shown[i - 1].startswith("--") and shown[i - 1].endswith("-url"):
            safe = safe_url(shown[i]) or shown[i]
            masked = masked or safe != shown[i]
            shown[i] = safe
    return shlex.join(shown) + (MASKED_NOTE if masked else "")


def finish_command(manifest: Manifest, run_path: Path | str) -> str:
    """The ``evalkit run ... --resume RUN`` that finishes a stored run, from what its manifest
    recorded: the suite, the router config given with --router, the target with its base URL,
    model and route header, the shard and the baseline model (the options resume checks); shell-quoted."""
    from evalkit.targets import DEFAULT_ROUTE_HEADER

    target, options = manifest.target, manifest.options
    args = ["evalkit", "run", manifest.suite.path]
    if options.get("router"):
        args += ["--router", str(options["router"])]
    if target.kind != "local":
        args += ["--target", target.kind]
        if target.kind == "openai" and target.base_url:
            args += ["--base-url", target.base_url]
        if target.model and target.model != f"router:{target.router_name or manifest.router.name}":
            args += ["--model", target.model]
    if target.route_header and target.route_header != DEFAULT_ROUTE_HEADER:
        args += ["--route-header", target.route_header]
    if options.get("shard"):
        args += ["--shard", str(options["shard"])]
    if options.get("baseline_model"):
        args += ["--baseline-model", str(options["baseline_model"])]
    return command_line([*args, "--resume", str(run_path)])


def finish_hint(manifest: Manifest, run_path: Path | str) -> str:
    """What completes the run, as a phrase after "to complete it, ": the resume command (a merged
    run resumes like any run: the cases no shard gave are sent and appended), and for a merged run
    the other way too, finishing the shards and merging again."""
    command = f"run `{finish_command(manifest, run_path)}`"
    if not manifest.options.get("merged_from"):
        return command
    missing = manifest.options.get("missing_shards") or []
    shards = f"run the missing shard{'s' if len(missing) > 1 else ''} ({', '.join(map(str, missing))})" if missing \
        else "resume the shard runs that stopped early"
    return f"{command}, or {shards} and merge again"
