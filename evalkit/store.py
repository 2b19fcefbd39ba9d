"""The run directory: ``RunDir`` names and reads and writes every file of a run; ``Run`` is a run
read back, typed (``evalkit.load_run``).

No other module knows a run directory's file names or formats: the runner, the judge, merge,
compare and the reports all go through ``RunDir``.

``results.jsonl`` is appended one whole line at a time: each result is encoded first and handed
to the kernel in a single ``write`` on a file opened with ``O_APPEND``, so once ``write`` returns
the line survives the process being killed (``kill -9``); only a power loss can still lose lines
not yet synced, and the file is synced when the writer closes. A crash can therefore leave at most
a torn last line; readers skip it and ``repair_results`` cuts it off before a resumed run appends
(otherwise the next line would be glued to the fragment). JSON documents (manifest, summary, diff)
and the judge's files are written to a temporary file and renamed into place, so a reader never
sees half a file and an earlier version is never lost to a failed write.

Compatibility: every document carries ``schema_version``; a run directory written by an older
evalkit of the same or a lower version loads (missing sections take their defaults, a summary that
no longer validates is recomputed from the records), one written by a newer version is refused.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from pydantic import BaseModel, ValidationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, run directories are not locked
    fcntl = None  # type: ignore[assignment]

from evalkit import SCHEMA_VERSION
from evalkit.errors import RunDirError, RunError, UsageError
from evalkit.records import CaseResult, Manifest
from evalkit.validation import json_line_problem

if TYPE_CHECKING:
    import pandas

    from evalkit.comparison import Comparison, RunSide
    from evalkit.judge.job import Judgement
    from evalkit.judge.records import JudgeRecord
    from evalkit.router_config import RouterConfig
    from evalkit.summary import Summary

# The files of a run directory.
MANIFEST = "manifest.json"
RESULTS = "results.jsonl"            # one CaseResult per case, appended as each completes
ROUTER = "router.json"               # a copy of the router config body the run measured
SUMMARY = "summary.json"             # summary.Summary
DIFF = "diff.json"                   # comparison.Comparison with the baseline run (`--baseline RUN`)
JUDGE = "judge.jsonl"                # judge.records.JudgeRecord per case and criterion
BASELINE = "baseline.jsonl"          # the baseline model's CaseResult per case (`--baseline-model`)
BASELINE_JUDGE = "baseline_judge.jsonl"  # the baseline's JudgeRecords
PAIRWISE = "pairwise.jsonl"          # judge.records.PairRecord per case (`--judge-pairwise`)
REPORT_HTML = "report.html"
SUMMARY_MD = "summary.md"
JUNIT = "junit.xml"
COMPARE_HTML = "compare.html"
COMPARE_MD = "compare.md"
LOCK = ".evalkit.lock"               # the writer's OS lock (flock), held for the life of a run; holder in it

# Files with one record per case: a merge of shard runs carries each of them.
PER_CASE_FILES = (RESULTS, JUDGE, BASELINE, BASELINE_JUDGE, PAIRWISE)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def finite_json(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def check_out_dir(parent: str | Path, suite_name: str | None = None, *, option: str = "--out") -> None:
    """Fail with a message (exit 2) unless a run directory can be made under ``parent``
    (``<parent>/<suite>/<run-id>/``): checked before any traffic, and without creating anything."""
    parent = Path(parent)
    fix = f"give {option} a folder you can write to (it is created when missing), e.g. {option} reports"
    probe = parent / suite_name if suite_name else parent
    while not probe.exists() and not probe.is_symlink() and probe.parent != probe:
        probe = probe.parent  # the nearest part of the path that exists
    if probe.exists() and not probe.is_dir() or probe.is_symlink() and not probe.exists():
        what = "the output folder is a file" if probe == parent else f"{probe} is a file, not a folder"
        raise UsageError(f"{what}: the run directory cannot be created", where=f"{option} {parent}", fix=fix)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"the run directory cannot be created: {probe} is not writable", where=f"{option} {parent}",
                         fix=fix)


# What a failed write of a run's document or report tells the user to do.
REWRITE_FIX = ("free disk space (or fix the folder's permissions) and run the command again: the results already "
               "stored are intact, and `evalkit report RUN_DIR` writes a run's summary and reports from them")


def _write_file(tmp: Path, chunks: Iterable[str]) -> None:
    """Write ``chunks`` to a new file ``tmp`` and sync it (the low-level part of an atomic write)."""
    with tmp.open("w", encoding="utf-8") as fh:
        for chunk in chunks:
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())


def write_atomic(path: str | Path, chunks: Iterable[str], *, fix: str = REWRITE_FIX) -> None:
    """Replace ``path`` whole: write a temporary file beside it, then rename it into place.

    A failed write (a full disk, a removed folder) removes the temporary file, leaves the earlier
    version of ``path`` as it was and raises ``RunError`` (exit 3) saying so.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        _write_file(tmp, chunks)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise RunError(f"cannot write {path.name}: {exc.strerror or exc}", where=str(path), fix=fix) from None


def write_json(path: str | Path, data: Any, *, fix: str = REWRITE_FIX) -> None:
    """Write a JSON document atomically (temporary file, then rename); a non-finite number is
    written as null, never as the NaN / Infinity that strict JSON readers refuse."""
    write_atomic(path, [json.dumps(finite_json(data), indent=2, ensure_ascii=False, default=str, allow_nan=False), "\n"],
                 fix=fix)


def write_text(path: str | Path, text: str, *, fix: str = REWRITE_FIX) -> None:
    write_atomic(path, [text], fix=fix)


def write_jsonl(path: str | Path, records: Iterable[BaseModel], *, fix: str = REWRITE_FIX) -> None:
    """Write records as JSON Lines atomically (temporary file, then rename)."""
    write_atomic(path, (r.model_dump_json() + "\n" for r in records), fix=fix)


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


def iter_results(path: str | Path) -> Iterator[CaseResult]:
    """Results of a ``results.jsonl``, streamed; a torn (unterminated, unparsable) last line is skipped."""
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                if not raw.endswith(b"\n"):
                    return  # torn last line from an interrupted run
                what = (f"not valid JSON: {json_line_problem(exc, lineno)}" if isinstance(exc, json.JSONDecodeError)
                        else f"line {lineno} is not valid JSON")
                raise RunDirError(what, where=f"{path}:{lineno}",
                                  fix=f"{path.name} is written by evalkit; restore it or re-run the suite") from None
            try:
                yield CaseResult.model_validate(data)
            except ValidationError as exc:
                raise RunDirError(f"line {lineno} is not a case result: {_first_problem(exc)}",
                                  where=f"{path}:{lineno}",
                                  fix=f"{path.name} is written by evalkit; restore it or re-run the suite") from None


def _read_jsonl(path: Path, model: type[BaseModel]) -> list[Any]:
    """Records of a JSON Lines file written whole by evalkit (a torn last line is skipped)."""
    if not path.is_file():
        return []
    out = []
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                out.append(model.model_validate(json.loads(line)))
            except (ValueError, RecursionError) as exc:  # bad JSON or a ValidationError
                if not line.endswith("\n"):
                    break  # torn last line of an interrupted write
                what = (f"not valid JSON: {json_line_problem(exc, lineno)}" if isinstance(exc, json.JSONDecodeError)
                        else f"line {lineno} is not a valid record ({exc.__class__.__name__})")
                raise RunDirError(what, where=f"{path}:{lineno}",
                                  fix=f"delete {path.name} and judge the run again (cached verdicts cost nothing)") from None
    return out


def _first_problem(exc: ValidationError) -> str:
    """The first field problem of a pydantic ValidationError, in words."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "(record)"
    return f"field '{loc}': {first.get('msg', 'invalid')}"


def _read_json(path: Path) -> Any:
    """A JSON document, or None when it is absent or cannot be read (a report, re-made on demand)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, OSError):
        return None


class RunDir:
    """One run directory: the name and format of each of its files, read and written here only.

    ``create`` makes a new one; ``RunDir(path)`` opens an existing one (``check`` says whether it
    is a run directory at all). Results are appended through ``result_writer``; JSON documents
    and the judge's files are replaced whole.

    Concurrency: one writer at a time. ``create`` and ``lock_for_run`` (a resumed run, a re-render)
    take an OS file lock (``flock`` on ``LOCK`` inside the folder) held until ``unlock`` (or the
    end of a ``with`` block, or the process); a second writer is refused with the holder's pid and
    command, which the lock file holds while it is held. Readers do not lock.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, parent: str | Path, suite_name: str, run_id: str | None = None, *,
               purpose: str = "evalkit run") -> "RunDir":
        """``<parent>/<suite>/<run-id>/``, created fresh and locked for this process (``unlock`` when done)."""
        run_dir = cls(Path(parent) / suite_name / (run_id or new_run_id()))
        try:
            run_dir.path.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise UsageError(f"cannot create the run directory: {exc.strerror or exc}", where=str(run_dir.path),
                             fix="give an --out folder that is a writable directory (it is created when missing)") from None
        return run_dir._take_lock(purpose)

    def lock_for_run(self, purpose: str = "evalkit run --resume") -> "RunDir":
        """Take the writer lock of this (existing) run directory, held until ``unlock``; refuse with
        the holder's pid and command when another process holds it.

        ``purpose`` (the command, without its arguments: they may hold credentials) is written into
        the lock file with the pid, so that a refused writer can name the holder.
        """
        self.check()
        return self._take_lock(purpose)

    def _take_lock(self, purpose: str) -> "RunDir":
        if self._lock_fd is not None or fcntl is None:  # already ours; no flock on this platform
            return self
        path = self.file(LOCK)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot open the run directory's lock file: {exc.strerror or exc}", where=str(path),
                              fix="run evalkit as a user who may write the run directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise RunDirError(f"the run directory is being written by another process ({holder})", where=str(self.path),
                              fix="wait until that process has finished (or stop it), then run the command again; "
                                  "a run directory takes one writer at a time") from None
        record = json.dumps({"pid": os.getpid(), "command": purpose, "host": socket.gethostname(),
                             "since": utc_now()}) + "\n"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode("utf-8"), 0)
        except OSError:  # a full disk: the lock holds all the same, a refused writer just cannot name us
            pass
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        """Release the writer lock (the lock file stays, emptied: removing it could let two writers in)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    @property
    def locked(self) -> bool:
        """Whether this object holds the directory's writer lock."""
        return self._lock_fd is not None

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def file(self, name: str) -> Path:
        """The path of one of the run's files (one of this module's file-name constants)."""
        return self.path / name

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def check(self) -> None:
        """Fail with a clear message unless this is a folder written by ``evalkit run``."""
        if not self.path.is_dir():
            raise RunDirError("run directory not found", where=str(self.path),
                              fix="give a folder written by `evalkit run`, e.g. reports/saas-support/<run-id>")
        if not self.has(MANIFEST):
            raise RunDirError(f"no {MANIFEST} here: not a run directory", where=str(self.path),
                              fix="give a folder written by `evalkit run` (it holds manifest.json and results.jsonl)")

    # -- manifest.json ---------------------------------------------------------------------------

    def read_manifest(self) -> Manifest:
        self.check()
        mpath = self.file(MANIFEST)
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
        except ValidationError as exc:
            raise RunDirError(f"manifest is incomplete: {_first_problem(exc)}", where=str(mpath),
                              fix="manifest.json is written by evalkit; restore it or re-run the suite") from None

    def write_manifest(self, manifest: Manifest) -> None:
        write_json(self.file(MANIFEST), manifest.model_dump(mode="json"))

    # -- results and the other per-case files ---------------------------------------------------

    def iter_results(self, name: str = RESULTS) -> Iterator[CaseResult]:
        return iter_results(self.file(name))

    def read_results(self, name: str = RESULTS) -> list[CaseResult]:
        """Every stored result (``RESULTS``, or the baseline model's ``BASELINE``); none when the file is absent."""
        return list(self.iter_results(name)) if self.has(name) else []

    def result_writer(self, name: str = RESULTS) -> ResultWriter:
        return ResultWriter(self.path, name)

    def repair_results(self, name: str = RESULTS) -> str | None:
        return repair_results(self.file(name))

    def read_records(self, name: str) -> list[Any]:
        """The typed records of one per-case file (``PER_CASE_FILES``); none when it is absent."""
        if name in (RESULTS, BASELINE):
            return self.read_results(name)
        return _read_jsonl(self.file(name), _record_model(name))

    def write_records(self, name: str, records: Sequence[BaseModel]) -> None:
        """Replace one per-case file whole (atomically)."""
        write_jsonl(self.file(name), records)

    # -- router.json ----------------------------------------------------------------------------

    def write_router(self, config: RouterConfig) -> None:
        write_json(self.file(ROUTER), config.to_body())

    def read_router(self) -> RouterConfig | None:
        """The router config the run measured, or None when the copy is absent or unreadable."""
        from evalkit.errors import ConfigError
        from evalkit.router_config import parse_router_config

        if not self.has(ROUTER):
            return None
        path = self.file(ROUTER)
        try:
            return parse_router_config(path.read_text(encoding="utf-8"), source=str(path))
        except (ConfigError, UnicodeDecodeError, OSError):
            return None

    # -- the judge's files -----------------------------------------------------------------------

    def read_judgement(self) -> Judgement:
        from evalkit.judge.job import Judgement

        return Judgement(records=self.read_records(JUDGE), baseline_results=self.read_results(BASELINE),
                         baseline_records=self.read_records(BASELINE_JUDGE), pairs=self.read_records(PAIRWISE))

    def write_judgement(self, judgement: Judgement) -> None:
        """``judge.jsonl``, and the baseline's grades and the pairwise verdicts when there are any
        (an earlier pairwise file is replaced, so a judge run without pairwise leaves none stale)."""
        self.write_records(JUDGE, judgement.records)
        if judgement.baseline_results:
            self.write_records(BASELINE_JUDGE, judgement.baseline_records)
        if judgement.pairs or self.has(PAIRWISE):
            self.write_records(PAIRWISE, judgement.pairs)

    # -- summary.json, diff.json and the reports -------------------------------------------------

    def read_summary(self) -> Summary | None:
        """The stored summary, or None when it is absent or no longer reads as one (it is derived
        data: ``Run.summary`` recomputes it from the records)."""
        from evalkit.summary import Summary

        data = _read_json(self.file(SUMMARY))
        if not isinstance(data, dict) or not isinstance(data.get("schema_version", 1), int):
            return None
        if data.get("schema_version", 1) > SCHEMA_VERSION:
            raise RunDirError(f"summary.json has schema version {data['schema_version']}, newer than this "
                              f"evalkit understands ({SCHEMA_VERSION})", where=str(self.file(SUMMARY)),
                              fix="upgrade evalkit to read it")
        try:
            return Summary.model_validate(data)
        except ValidationError:
            return None

    def write_summary(self, summary: Summary) -> None:
        write_json(self.file(SUMMARY), summary.to_json())

    def read_diff(self) -> Comparison | None:
        """The stored comparison with the baseline run, or None when there is none (or it cannot be
        read: it is a report, made again by running the comparison again)."""
        return read_comparison(self.path)

    def write_text(self, name: str, text: str) -> Path:
        """A report file (``REPORT_HTML``, ``SUMMARY_MD``, ``JUNIT``...), replaced whole."""
        write_text(self.file(name), text)
        return self.file(name)


def _lock_holder(fd: int) -> str:
    """Who holds a run directory's lock, from the lock file (written by the holder once it has the lock)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return (f"pid {int(data['pid'])}: {str(data.get('command'))[:80]}"
                f" on {str(data.get('host'))[:80]}, since {str(data.get('since'))[:40]}")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "a process that has not yet recorded its pid"


def read_comparison(folder: str | Path) -> Comparison | None:
    """``diff.json`` in ``folder`` (a run directory, or a folder `evalkit compare` wrote), or None."""
    from evalkit.comparison import Comparison

    data = _read_json(Path(folder) / DIFF)
    if not isinstance(data, dict) or not isinstance(data.get("a"), dict):
        return None
    try:
        return Comparison.model_validate(data)
    except ValidationError:
        return None


def write_comparison(folder: str | Path, comparison: Comparison) -> Path:
    """``diff.json`` into ``folder``, atomically."""
    path = Path(folder) / DIFF
    write_json(path, comparison.to_json())
    return path


def _record_model(name: str) -> type[BaseModel]:
    from evalkit.judge.records import JudgeRecord, PairRecord

    models: dict[str, type[BaseModel]] = {RESULTS: CaseResult, BASELINE: CaseResult, JUDGE: JudgeRecord,
                                          BASELINE_JUDGE: JudgeRecord, PAIRWISE: PairRecord}
    if name not in models:
        raise ValueError(f"{name} is not a per-case file of a run directory")
    return models[name]


class Run:
    """A stored run read back, typed: what ``evalkit.load_run`` and ``evalkit.run_suite`` return.

    ``manifest`` and ``results`` are read when the run is loaded; ``summary`` (``summary.json``,
    recomputed from the records when the file is absent), ``judgement`` / ``grades`` (the judge's
    files), ``comparison`` (``diff.json``) and ``router`` (the router.json copy) on first use.
    """

    def __init__(self, path: str | Path, manifest: Manifest, results: list[CaseResult], *,
                 summary: Summary | None = None) -> None:
        self.dir = RunDir(path)
        self.manifest = manifest
        self.results = results
        if summary is not None:
            self.__dict__["summary"] = summary

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, {len(self.results)} results)"

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def run_dir(self) -> Path:
        """The run directory (the same as ``path``)."""
        return self.dir.path

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @cached_property
    def summary(self) -> Summary:
        """``summary.json``, or the same figures computed from the records when it is absent or
        stale: a summary counting another number of results than ``results.jsonl`` holds (the file
        was cut short, torn or appended to after the summary was written) is not trusted."""
        stored = self.dir.read_summary()
        if stored is not None and stored.n_cases == len(self.results):
            return stored
        from evalkit.summary import build_summary

        return build_summary(self.manifest, self.results, judgement=self.judgement)

    @cached_property
    def judgement(self) -> Judgement:
        """Everything the judge stored: grades, the baseline model's answers and grades, pairwise verdicts."""
        return self.dir.read_judgement()

    @property
    def grades(self) -> list[JudgeRecord]:
        """The judge's grades of the router's answers (``judge.jsonl``), one per case and criterion."""
        return self.judgement.records

    @cached_property
    def comparison(self) -> Comparison | None:
        """The comparison with the baseline run this run was made against (``diff.json``), if any."""
        return self.dir.read_diff()

    @cached_property
    def router(self) -> RouterConfig | None:
        """The router config the run measured (its router.json copy), if kept."""
        return self.dir.read_router()

    def side(self) -> RunSide:
        """This run as one side of a paired comparison (``evalkit.comparison.compare_runs``)."""
        from evalkit.comparison import RunSide

        m = self.manifest
        judge = [g.model_dump(mode="json") for g in self.grades] if self.dir.has(JUDGE) else None
        return RunSide(run_id=m.run_id, results=self.results, labels=[*m.router.tasks, "fallback"], suite=m.suite.name,
                       suite_hash=m.suite.hash, router_hash=m.router.hash, target=m.target.kind, path=str(self.path),
                       summary=self.summary.to_json(), router=self.router, judge=judge)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per case: id, expected_route, route, status, served_model, latency_ms,
        prompt_tokens, completion_tokens, cost_usd, tags, and one ``judge_<criterion>`` column per
        judged criterion (the score; None when a case was not scored)."""
        import pandas as pd

        columns = ["id", "expected_route", "route", "correct", "status", "served_model", "latency_ms", "ttft_ms",
                   "prompt_tokens", "completion_tokens", "cost_usd", "tags", "session", "turn", "error"]
        rows = [{**{c: getattr(r, c) for c in columns if c != "correct"}, "correct": r.correct} for r in self.results]
        frame = pd.DataFrame(rows, columns=columns)
        grades: dict[str, dict[str, float | None]] = {}
        for g in self.grades:
            grades.setdefault(g.criterion, {})[g.id] = g.score if g.status == "scored" else None
        for criterion, scores in grades.items():
            frame[f"judge_{criterion}"] = frame["id"].map(scores).astype("float64")
        return frame


def load_manifest(run_dir: str | Path) -> Manifest:
    return RunDir(run_dir).read_manifest()


def load_run(run_dir: str | Path) -> Run:
    """The run stored in ``run_dir``: manifest and results now, the rest on first use."""
    run = RunDir(run_dir)
    manifest = run.read_manifest()
    if not run.has(RESULTS):
        raise RunDirError(f"no {RESULTS} in the run directory", where=str(run.path), fix="re-run the suite")
    results = run.read_results()
    check_unique_ids(results, run.file(RESULTS))
    check_expected_routes(results, manifest, run.file(RESULTS))
    return Run(run.path, manifest, results)


def check_expected_routes(results: Sequence[CaseResult], manifest: Manifest, path: Path) -> None:
    """Refuse a result whose expected route is not a task of the run's router config (nor fallback):
    the confusion matrix has no row for it, so every figure would be wrong."""
    labels = [*manifest.router.tasks, "fallback"]
    known = set(labels)
    for lineno, r in enumerate(results, start=1):
        if r.expected_route not in known:
            raise RunDirError(
                f"case '{r.id}' expects route '{r.expected_route}', which is not a task of router config "
                f"'{manifest.router.name}' (hash {manifest.router.hash}, copied to {ROUTER}; its routes: "
                f"{', '.join(labels)})", where=f"{path} (result {lineno})",
                fix="the results do not belong to this run's router config: run the suite again, or correct the "
                    "case's expected_route to one of the router's routes")


def check_unique_ids(results: Sequence[CaseResult], path: Path) -> None:
    """Refuse a results file holding a case more than once (two writers appended to it): every
    figure would count that case twice."""
    seen: set[str] = set()
    twice: dict[str, None] = {}
    for r in results:
        if r.id in seen:
            twice[r.id] = None
        seen.add(r.id)
    if twice:
        ids = list(twice)
        shown = ", ".join(f"'{i}'" for i in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        raise RunDirError(f"{len(ids)} case id(s) have more than one result: {shown}", where=str(path),
                          fix="the file was written twice (two runs resumed at once, or edited by hand): keep one "
                              "line per case id, or run the suite again")
