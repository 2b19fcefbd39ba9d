"""The command line's two consoles: ``out`` (results, stdout) and ``err`` (status and errors, stderr).

Every command module prints through these; ``evalkit.cli.main`` rebinds them on each call.
Emoji codes are off: messages carry user and remote text (a route name, a server's error), and
``:warning:`` in it is printed as written, never as an emoji. Markup stays on for evalkit's own
styling, so text from outside goes through ``rich.markup.escape`` (or ``markup=False``, or a
``rich.text.Text``) wherever it is printed with markup.
"""

from __future__ import annotations

from rich.console import Console

out = Console(soft_wrap=True, emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)


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
