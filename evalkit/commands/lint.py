"""`evalkit lint` (registered on evalkit.cli.app)."""

from __future__ import annotations

from evalkit.cli import app, err, out  # noqa: F401
