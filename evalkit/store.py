"""The run directory: create it, write results as they complete, read a run back, resume it.

``results.jsonl`` is appended one whole line at a time: each result is encoded first and handed
to the kernel in a single ``write`` on a file opened with ``O_APPEND``, so once ``write`` returns
the line survives the process being killed (``kill -9``); only a power loss can still lose lines
not yet synced, and the file is synced when the writer closes. A crash can therefore leave at most
a torn last line; readers skip it and ``repair_results`` cuts it off before a resumed run appends
(otherwise the next line would be glued to the fragment). JSON documents
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
DIFF = "diff.json"      # the comparison with the baseline run (`evalkit run --baseline RUN`)


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
    """Appends ``CaseResult`` lines to ``results.jsonl``, one whole line per ``write`` call."""

    def __init__(self, run_dir: str | Path, name: str = RESULTS) -> None:
        self.path = Path(run_dir) / name
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, result: CaseResult) -> None:
        data = memoryview((result.model_dump_json() + "\n").encode("utf-8"))
        assert self._fd is not None, "ResultWriter is closed"
        while data:  # one call for a regular file; the loop only guards a short write
            written = os.write(self._fd, data)
            data = data[written:]

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_results(path: str | Path) -> str | None:
    """Make ``results.jsonl`` end on a whole line before more lines are appended.

    A last line without its newline is either complete (the newline is added) or torn by a
    crash (it is cut off: that case has no result and will be sent again). Returns what was
    done, or None when the file was already whole.
    """
    path = Path(path)
    if not path.is_file():
        return None
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return None
        end = size
        block = 65536
        while end > 0:  # find the last newline, reading backwards
            start = max(0, end - block)
            fh.seek(start)
            chunk = fh.read(end - start)
            if chunk.endswith(b"\n") and end == size:
                return None
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                cut = start + idx + 1
                break
            end = start
        else:
            cut = 0
        fh.seek(cut)
        tail = fh.read()
        try:
            CaseResult.model_validate(json.loads(tail.decode("utf-8")))
        except (ValueError, UnicodeDecodeError, RecursionError):
            fh.truncate(cut)
            return f"dropped a torn last line ({len(tail)} bytes)"
        fh.seek(0, os.SEEK_END)
        fh.write(b"\n")
        return "completed the last line"


@dataclass
class Run:
    """A stored run read back from its directory."""

    path: Path
    manifest: Manifest
    results: list[CaseResult]
    summary: dict[str, Any] | None = None


def iter_results(path: str | Path) -> Iterator[CaseResult]:
    """Results of a ``results.jsonl``, streamed; a torn (unterminated, unparsable) last line is skipped."""
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                if not raw.endswith(b"\n"):
                    return  # torn last line from an interrupted run
                raise RunDirError(f"line {lineno} is not valid JSON", where=f"{path}:{lineno}",
                                  fix="results.jsonl is written by evalkit; restore it or re-run the suite") from None
            try:
                yield CaseResult.model_validate(data)
            except Exception as exc:
                raise RunDirError(f"line {lineno} is not a case result: {_first_problem(exc)}",
                                  where=f"{path}:{lineno}",
                                  fix="results.jsonl is written by evalkit; restore it or re-run the suite") from None


def _first_problem(exc: Exception) -> str:
    """The first field problem of a pydantic ValidationError, in words."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ())) or "(record)"
            return f"field '{loc}': {first.get('msg', 'invalid')}"
        except Exception:  # pragma: no cover - defensive
            pass
    return exc.__class__.__name__


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
        data = json.loads(mpath.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RunDirError(f"manifest is not valid JSON ({exc})", where=str(mpath),
                          fix="the run directory is damaged; re-run the suite") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise RunDirError("manifest has no schema_version", where=str(mpath), fix="re-run the suite")
    if version > SCHEMA_VERSION:
        raise RunDirError(f"run directory has schema version {version}, newer than this evalkit "
                          f"understands ({SCHEMA_VERSION})", where=str(mpath),
                          fix="upgrade evalkit (from its Git repository, not the package index's unrelated "
                              "'evalkit') to read it")
    try:
        return Manifest.model_validate(data)
    except Exception as exc:
        raise RunDirError(f"manifest is incomplete: {_first_problem(exc)}", where=str(mpath),
                          fix="manifest.json is written by evalkit; restore it or re-run the suite") from None


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
            summary = json.loads(spath.read_bytes().decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            summary = None
    return Run(path=run_dir, manifest=manifest, results=results, summary=summary)


def load_diff(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's stored comparison with its baseline run (``diff.json``), or None when it has none
    (or it cannot be read: it is a report, re-made by running the comparison again)."""
    path = Path(run_dir) / DIFF
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, OSError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("a"), dict) else None
