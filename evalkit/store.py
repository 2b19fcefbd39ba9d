"""The run directory: create it, write results as they complete, read a run back.

``results.jsonl`` is appended one whole line at a time and flushed, so a crash loses at most
the line being written; a torn last line is dropped when the run is read back. JSON documents
(manifest, summary) are written to a temporary file and renamed into place, so a reader never
sees half a file and an earlier version is never lost to a failed write.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from evalkit import SCHEMA_VERSION
from evalkit.errors import RunDirError
from evalkit.records import CaseResult, Manifest

RESULTS = "results.jsonl"
MANIFEST = "manifest.json"
SUMMARY = "summary.json"
ROUTER = "router.json"  # a copy of the router config body the run measured


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def create_run_dir(parent: str | Path, suite_name: str, run_id: str | None = None) -> Path:
    """``<parent>/<suite>/<run-id>/``, created fresh."""
    run_id = run_id or new_run_id()
    path = Path(parent) / suite_name / run_id
    path.mkdir(parents=True, exist_ok=False)
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Write a JSON document atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class ResultWriter:
    """Appends ``CaseResult`` lines to ``results.jsonl``, one whole line per write, flushed."""

    def __init__(self, run_dir: str | Path, name: str = RESULTS) -> None:
        self.path = Path(run_dir) / name
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, result: CaseResult) -> None:
        line = result.model_dump_json() + "\n"
        self._fh.write(line)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Run:
    """A stored run read back from its directory."""

    path: Path
    manifest: Manifest
    results: list[CaseResult]
    summary: dict[str, Any] | None = None


def iter_results(path: str | Path) -> Iterator[CaseResult]:
    """Results of a ``results.jsonl``; a torn (unterminated, unparsable) last line is skipped."""
    path = Path(path)
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                if not line.endswith("\n"):
                    return  # torn last line from an interrupted run
                raise RunDirError(f"line {lineno} is not valid JSON", where=str(path),
                                  fix="results.jsonl is written by evalkit; restore it or re-run the suite") from None
            try:
                yield CaseResult.model_validate(data)
            except Exception as exc:
                raise RunDirError(f"line {lineno} is not a case result: {exc.__class__.__name__}",
                                  where=str(path), fix="re-run the suite to regenerate results.jsonl") from None


def load_manifest(run_dir: str | Path) -> Manifest:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError("run directory not found", where=str(run_dir),
                          fix="give a folder written by `evalkit run`, e.g. reports/saas-support/<run-id>")
    mpath = run_dir / MANIFEST
    if not mpath.is_file():
        raise RunDirError(f"no {MANIFEST} here: not a run directory", where=str(run_dir),
                          fix="give a folder written by `evalkit run` (it holds manifest.json and results.jsonl)")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"manifest is not valid JSON ({exc})", where=str(mpath),
                          fix="the run directory is damaged; re-run the suite") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int):
        raise RunDirError("manifest has no schema_version", where=str(mpath), fix="re-run the suite")
    if version > SCHEMA_VERSION:
        raise RunDirError(f"run directory has schema version {version}, newer than this evalkit "
                          f"understands ({SCHEMA_VERSION})", where=str(mpath),
                          fix="upgrade evalkit (pip install -U evalkit) to read it")
    try:
        return Manifest.model_validate(data)
    except Exception as exc:
        raise RunDirError(f"manifest is incomplete: {exc.__class__.__name__}", where=str(mpath),
                          fix="re-run the suite") from None


def load_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    rpath = run_dir / RESULTS
    if not rpath.is_file():
        raise RunDirError(f"no {RESULTS} in the run directory", where=str(run_dir), fix="re-run the suite")
    results = list(iter_results(rpath))
    summary = None
    spath = run_dir / SUMMARY
    if spath.is_file():
        try:
            summary = json.loads(spath.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            summary = None
    return Run(path=run_dir, manifest=manifest, results=results, summary=summary)
