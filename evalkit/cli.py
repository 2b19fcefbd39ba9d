"""The ``evalkit`` command line: the typer app, its commands (one module each in ``evalkit.commands``),
and ``main``, which turns expected failures into a message and an exit code.

Exit codes: 0 success; 1 a gate failed; 2 bad usage or bad input; 3 the run could not complete;
130 interrupted by Ctrl-C; 143 stopped by SIGTERM.

This module is a leaf of the package: it imports the commands, and nothing imports it (the
commands print through ``evalkit.commands.console`` and register on the app they are given).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from evalkit import __version__
from evalkit.commands.console import bind_consoles, err, out
from evalkit.commands.help_text import humanise
from evalkit.errors import EvalkitError, Terminated

app = typer.Typer(
    name="evalkit",
    help="Measure the routing quality of semantic LLM routers: confusion matrix, overlapping task "
         "descriptions, judge scores, cost and latency per path.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_registered = False


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        out.print(f"evalkit {__version__}")
        raise typer.Exit(0)


def _register_commands() -> None:
    """Register every command on ``app``, once, in the order ``evalkit --help`` lists them."""
    global _registered
    if _registered:
        return
    from evalkit.commands import (compare, cost, gate, judge, lint, merge, overlap, report, router, run, serve,
                                  suite)

    for module in (run, report, serve, compare, cost, gate, judge, lint, merge, overlap, router, suite):
        module.register(app)
    _registered = True


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Click's usage errors and aborts: click's own (typer before 0.2x runs on click) and, through
    typer's public ``TyperException`` and ``Abort``, those of the click copy newer typer versions ship."""
    import click
    from typer import exceptions as typer_exceptions

    errors: list[type[BaseException]] = [click.exceptions.ClickException]
    aborts: list[type[BaseException]] = [click.exceptions.Abort, typer.Abort]
    typer_errors = getattr(typer_exceptions, "TyperException", None)  # the base of the vendored click's errors
    if typer_errors is not None:
        errors.append(typer_errors)
    return tuple(errors), tuple(aborts)


STDOUT_CLOSED_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a tool that died writing to a closed pipe


class StdoutClosed(Exception):
    """Whoever read stdout went away (``evalkit compare A B | head``). Not an OSError, so that click
    does not turn it into exit 1, the code of a failed gate."""


def _stdout_closed_apart(invoke: Any) -> Any:
    def wrapped(ctx: Any) -> Any:
        try:
            return invoke(ctx)
        except BrokenPipeError:
            raise StdoutClosed() from None

    return wrapped


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises no second broken pipe."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # captured in-process (tests): nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: list[str] | None = None, *, prog_name: str | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return its exit code.

    Expected failures print their message (no traceback) and give their exit code. The console
    script and ``python -m evalkit`` exit with the returned code; tests call ``main`` in-process.
    """
    try:  # importing the commands takes a moment: a Ctrl-C then is an interruption, not a traceback
        _register_commands()
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    bind_consoles()
    click_errors, aborts = _click_exceptions()
    stops: tuple[type[BaseException], ...] = (*aborts, KeyboardInterrupt)
    command = humanise(typer.main.get_command(app))
    command.invoke = _stdout_closed_apart(command.invoke)
    try:
        rc = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except StdoutClosed:
        _silence_stdout()
        return STDOUT_CLOSED_EXIT
    except EvalkitError as exc:
        from rich.markup import escape

        err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", markup=True, highlight=False)
        return exc.exit_code
    except click_errors as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:  # a bare TyperException
            err.print(f"error: {exc}", markup=False, highlight=False)
        code = getattr(exc, "exit_code", 2)
        return 2 if code not in (0, 1) else code or 2
    except stops as exc:
        err.print("interrupted")
        return 143 if isinstance(exc, Terminated) else 130
    return rc if isinstance(rc, int) else 0
