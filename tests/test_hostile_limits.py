"""Hostile inputs against evalkit's limits (issue 18): messages printed literally, request and
response size limits of the local router and the target client, deeply nested JSON, hostile
numbers in usage. Every test talks to real servers on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


# -- messages are printed as written -------------------------------------------------------------

def test_error_messages_print_emoji_codes_and_markup_literally(tmp_path: Path) -> None:
    # The message names the folder it was given; rich would turn :warning: into an emoji and
    # [bold] into style.
    folder = tmp_path / ":warning: [bold]loud[/bold] :smile:"
    proc = run_cli("report", str(folder))
    assert proc.returncode == 2, proc.stderr
    assert f"{folder}: run directory not found" in proc.stderr
    assert "\u26a0" not in proc.stderr and "\U0001f604" not in proc.stderr
