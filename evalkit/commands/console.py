"""The command line's two consoles: ``out`` (results, stdout) and ``err`` (status and errors, stderr).

Every command module prints through these; ``evalkit.cli.main`` rebinds them on each call.
Emoji codes are off: messages carry user and remote text (a route name, a server's error), and
``:warning:`` in it is printed as written, never as an emoji. Markup stays on for evalkit's own
styling, so text from outside goes through ``rich.markup.escape`` (or ``markup=False``, or a
``rich.text.Text``) wherever it is printed with markup.

Both are ``SafeConsole``s: every string, table cell and ``Text`` they print has terminal control
sequences stripped (``evalkit.redact.terminal_safe``) and every registered key redacted, so remote
text (route headers, router names and descriptions, error bodies) can neither move the cursor,
retitle the window nor clear the screen. Rich markup in remote text is the caller's to escape
(``rich.markup.escape`` or ``markup=False``).
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evalkit.redact import REDACTED, Redactor, terminal_safe

_BARE_MARKER = re.compile(r"(?<!\\)" + re.escape(REDACTED))


def safe_text(value: str) -> str:
    """Remote text fit for a terminal: control sequences stripped, registered keys redacted."""
    return terminal_safe(Redactor().text(value) or "")


def _safe(renderable: Any) -> Any:
    if isinstance(renderable, str):
        return safe_text(renderable)
    if isinstance(renderable, Text):
        cleaned = safe_text(renderable.plain)
        if cleaned == renderable.plain:
            return renderable
        return Text(cleaned, style=renderable.style, justify=renderable.justify, no_wrap=renderable.no_wrap)
    if isinstance(renderable, Table):
        for attr in ("title", "caption"):
            setattr(renderable, attr, _safe(getattr(renderable, attr)))
        for column in renderable.columns:
            column.header = _safe(column.header)
            column._cells[:] = [_safe(cell) for cell in column._cells]
    return renderable


class SafeConsole(Console):
    """A rich ``Console`` that prints remote text without its control sequences or any registered key."""

    def on_broken_pipe(self) -> None:
        """Whoever read the output went away (``| head``): rich would exit 1, the code of a failed
        gate; the command line turns this into its own exit code instead (``evalkit.cli``)."""
        self.quiet = True
        raise BrokenPipeError()

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        markup = kwargs.get("markup")
        markup = self._markup if markup is None else markup
        safe = [_safe(o) for o in objects]
        if markup:  # a key redacted here must show as [redacted], not vanish as a markup tag
            safe = [_BARE_MARKER.sub(lambda m: "\\" + REDACTED, o) if isinstance(o, str) else o for o in safe]
        super().print(*safe, **kwargs)


out = SafeConsole(soft_wrap=True, emoji=False)
err = SafeConsole(stderr=True, soft_wrap=True, emoji=False)


def bind_consoles() -> None:
    """Re-read ``out`` and ``err``'s settings for this invocation of ``main``.

    A rich Console writes to whatever ``sys.stdout`` / ``sys.stderr`` is when it prints, but reads
    NO_COLOR, COLUMNS, TERM and whether its stream is a terminal once, when it is built. The console
    script calls ``main`` once, right after import, where this changes nothing; a program that calls
    ``main`` several times in one process with other streams or environment (the test suite) gets
    consoles that match each call. The objects stay the same: the command modules import them.
    """
    out.__init__(soft_wrap=True, emoji=False)  # type: ignore[misc]
    err.__init__(stderr=True, soft_wrap=True, emoji=False)  # type: ignore[misc]
