"""The state behind the review page: a suite's cases, what the local classifier thinks of each,
the order to review them in, and saving edits without ever losing one.

Edits travel in two steps. Each change or confirmation on the page is appended at once to a
journal beside the cases (``.review-journal.jsonl``, one JSON line per edit, flushed and
fsynced): a crash of the browser or the server loses nothing, and the next ``evalkit suite
review`` shows the journal's edits as unsaved. Saving appends the edits to the journal first,
then rewrites ``cases.jsonl`` atomically (a temporary file in the same folder, fsynced, then
``os.replace``), then empties the journal. A crash at any point leaves either the old or the
new file, never a torn one, and the journal holds whatever the file does not.

Saving re-reads ``cases.jsonl`` and changes only the edited cases (``expected_route``,
``reviewed: true``, ``label_source: human``); every other line and field stays as it is.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from evalkit.errors import SuiteError, UsageError
from evalkit.records import Case
from evalkit.suites import Suite, load_suite

JOURNAL = ".review-journal.jsonl"
MAX_EDITS = 100_000


@dataclass(frozen=True)
class ClassifierView:
    """The local classifier's opinion of one case: its decision and its two best tasks."""

    route: str
    top: tuple[tuple[str, float], ...]

    @property
    def margin(self) -> float:
        """Similarity of the best task minus the second's: small means the prompt sits between two."""
        if len(self.top) < 2:
            return 1.0
        return self.top[0][1] - self.top[1][1]


def classifier_views(cases: Sequence[Case], suite: Suite, *, threshold: float | None = None,
                     encode: Callable[[list[str]], Any] | None = None) -> dict[str, ClassifierView]:
    """The embedding classifier of the local router over every case's last user message."""
    from evalkit.emulator.classifier import DEFAULT_THRESHOLD, EmbeddingClassifier, decide
    from evalkit.emulator.classifier import encode as default_encode

    encode = encode or default_encode
    classifier = EmbeddingClassifier(DEFAULT_THRESHOLD if threshold is None else threshold, encoder=encode)
    if not cases:
        return {}
    vectors = encode([c.user_text for c in cases])
    views = {}
    for case, scores in zip(cases, classifier.scores_for(vectors, suite.router)):
        decision = decide(scores, classifier.threshold)
        top = tuple(sorted(scores.items(), key=lambda kv: -kv[1])[:2])
        views[case.id] = ClassifierView(route=decision.route, top=top)
    return views


def review_order(cases: Sequence[Case], views: dict[str, ClassifierView]) -> list[str]:
    """Case ids, the most informative review first (pure).

    Unreviewed before reviewed; among them, cases where the labeler disagrees with the label,
    then cases where the local classifier does, then the smallest classifier margin first; ties
    keep file order.
    """
    def key(item: tuple[int, Case]) -> tuple[Any, ...]:
        i, case = item
        view = views.get(case.id)
        labeler = case.labeler_route is not None and case.labeler_route != case.expected_route
        classifier = view is not None and view.route != case.expected_route
        return (case.reviewed is not False, not labeler, not classifier, view.margin if view else 1.0, i)
    return [c.id for _, c in sorted(enumerate(cases), key=key)]


@dataclass
class Edit:
    """One reviewer decision: this case's expected route (a change or a confirmation), or an undo."""

    id: str
    expected_route: str | None
    undo: bool = False


class Journal:
    """Unsaved edits, appended and fsynced one line at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, edits: Sequence[Edit]) -> None:
        if not edits:
            return
        data = "".join(json.dumps({"id": e.id, "expected_route": e.expected_route, "undo": e.undo},
                                  ensure_ascii=False) + "\n" for e in edits).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> dict[str, str]:
        """The journal's edits by case id (the last one wins; an undo removes it). A torn last
        line (a crash in mid-write) is ignored."""
        out: dict[str, str] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return out
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            if item.get("undo"):
                out.pop(item["id"], None)
            elif isinstance(item.get("expected_route"), str):
                out[item["id"]] = item["expected_route"]
        return out

    def clear(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        _fsync_dir(self.path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_lines(path: Path, lines: Sequence[str]) -> None:
    """Write ``lines`` to ``path`` in one step: temporary file, fsync, ``os.replace``, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for line in lines:
                fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


@dataclass
class ReviewSession:
    """A suite opened for review."""

    suite: Suite
    cases_path: Path
    views: dict[str, ClassifierView]
    journal: Journal
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def suite_name(self) -> str:
        return self.suite.name

    @property
    def labels(self) -> list[str]:
        return list(self.suite.router.labels)

    @property
    def n_cases(self) -> int:
        return len(self.suite.cases)

    def reload(self) -> None:
        """Read the suite again (after a save, or when the file changed on disk)."""
        self.suite = load_suite(self.suite.folder)

    def progress(self) -> dict[str, int]:
        done = sum(1 for c in self.suite.cases if c.reviewed is not False)
        return {"reviewed": done, "total": len(self.suite.cases)}

    def record(self, edits: Sequence[Edit]) -> None:
        """Journal edits made on the page (not saved yet)."""
        self._check(edits)
        with self.lock:
            self.journal.append(edits)

    def save(self, edits: Sequence[Edit]) -> dict[str, Any]:
        """Apply edits to ``cases.jsonl`` atomically; returns the new progress and what changed."""
        self._check(edits)
        with self.lock:
            self.journal.append(edits)
            final: dict[str, str] = {}
            for e in edits:
                if e.undo:
                    final.pop(e.id, None)
                elif e.expected_route is not None:
                    final[e.id] = e.expected_route
            lines = self.cases_path.read_text(encoding="utf-8").splitlines()
            out, applied = [], set()
            for lineno, line in enumerate(lines, start=1):
                if not line.strip():
                    out.append(line)
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise SuiteError("the case file changed on disk and this line is not JSON any more",
                                     where=f"{self.cases_path}:{lineno}",
                                     fix="fix that line, then save again (your edits are kept in the journal)") from None
                cid = str(row.get("id")) if isinstance(row, dict) else None
                if cid in final:
                    row["expected_route"] = final[cid]
                    row["reviewed"] = True
                    row["label_source"] = "human"
                    applied.add(cid)
                    line = json.dumps(row, ensure_ascii=False)
                out.append(line)
            atomic_write_lines(self.cases_path, out)
            self.journal.clear()
            self.reload()
            return {"saved": sorted(applied), "missing": sorted(set(final) - applied), **self.progress()}

    def _check(self, edits: Sequence[Edit]) -> None:
        if len(edits) > MAX_EDITS:
            raise UsageError(f"too many edits in one request ({len(edits)})", where="review page",
                             fix=f"save at most {MAX_EDITS:,} edits at a time")
        labels = set(self.labels)
        ids = {c.id for c in self.suite.cases}
        for e in edits:
            if e.id not in ids:
                raise UsageError(f"no case '{e.id}' in this suite", where=str(self.cases_path),
                                 fix="reload the page: the case file changed")
            if not e.undo and e.expected_route not in labels:
                raise UsageError(f"unknown task '{e.expected_route}'", where=f"case {e.id}",
                                 fix=f"choose one of: {', '.join(labels)}")


def open_review(folder: str | Path, *, threshold: float | None = None,
                encode: Callable[[list[str]], Any] | None = None,
                status: Callable[[str], None] | None = None) -> ReviewSession:
    """Load a suite for review: its cases must be a JSON Lines file (the page rewrites it).
    ``status`` hears of the slow part (embedding the prompts) once the suite has loaded."""
    suite = load_suite(folder)
    cases_path = Path(suite.cases_path)
    if suite.spec.cases.startswith("hf://") or cases_path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise SuiteError("the review page edits JSON Lines case files only", where=str(cases_path),
                         fix="convert the cases to cases.jsonl (one JSON object per line) and point suite.yaml at it")
    if suite.spec.columns:
        raise SuiteError("the review page cannot edit a suite with a columns mapping", where=str(suite.folder),
                         fix="write the cases with evalkit's own field names (id, prompt, expected_route, ...)")
    if status is not None:
        status(f"embedding the {len(suite.cases)} prompts of {suite.name}")
    views = classifier_views(suite.cases, suite, threshold=threshold, encode=encode)
    return ReviewSession(suite=suite, cases_path=cases_path, views=views, journal=Journal(suite.folder / JOURNAL))

