"""Scale-out: split a suite into deterministic shards and join shard runs back into one run (pure).

A case belongs to shard ``I`` of ``N`` when the SHA-256 of its key, read as an integer, is
``I - 1`` modulo ``N``. The key is the case's session id for multi-turn cases (a conversation
never splits across shards, its turns need each other's history) and the case id otherwise. The
assignment depends only on the ids, not on the order of the file or the machine, so every CI job
of a matrix picks the same share. Merging checks that the runs belong together (same suite, same
router config, every shard present once, no case twice) and rebuilds the manifest as if the
suite had run whole.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Sequence

from evalkit.errors import RunDirError, UsageError
from evalkit.records import Case, CaseResult, JudgeInfo, Manifest
from evalkit.store import Run

# What must agree between shards' judge blocks for their verdicts to be one judgement.
JUDGE_IDENTITY = ("model", "base_url", "samples", "pairwise", "prompt_version", "status")

SHARD_FORM = "I/N with 1 <= I <= N, e.g. --shard 2/4"
_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    m = _SHARD_RE.match(text or "")
    if not m:
        raise UsageError("malformed shard", where="--shard", got=repr(text), fix=f"write {SHARD_FORM}")
    index, count = int(m[1]), int(m[2])
    if count < 1 or not 1 <= index <= count:
        raise UsageError("shard index out of range", where="--shard", got=repr(text), fix=f"write {SHARD_FORM}")
    return index, count


def shard_of(key: str, count: int) -> int:
    """The 1-based shard a case key belongs to."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % count + 1


def shard_key(case: Case | CaseResult) -> str:
    return f"session:{case.session}" if case.session is not None else f"case:{case.id}"


def shard_cases(cases: Sequence[Case], index: int, count: int) -> list[Case]:
    """The cases of shard ``index`` of ``count``, in suite order."""
    return [c for c in cases if shard_of(shard_key(c), count) == index]


def missing_shards(runs: Sequence[Run]) -> list[str]:
    """The shards (``I/N``) of the matrix that ``runs`` belong to which none of them is; empty for
    runs without ``--shard`` (call after ``shard_order`` has checked that the runs belong together)."""
    parsed = [parse_shard(s) for s in (r.manifest.options.get("shard") for r in runs) if s]
    if not parsed:
        return []
    n = parsed[0][1]
    seen = {i for i, _ in parsed}
    return [f"{i}/{n}" for i in range(1, n + 1) if i not in seen]


def shard_order(runs: Sequence[Run], *, allow_missing: bool = False) -> list[int]:
    """The order to join ``runs`` in (shard 1 first), after checking that they belong together:
    same suite and router config, every shard of the matrix once (or at most once with
    ``allow_missing``: the merged run is then incomplete)."""
    if not runs:
        raise UsageError("no runs to merge", where="evalkit merge", fix="give the shard run directories: evalkit merge RUN... --out DIR")
    first = runs[0].manifest
    for run in runs[1:]:
        m = run.manifest
        if m.suite.hash != first.suite.hash or m.suite.name != first.suite.name:
            raise RunDirError("runs of different suites cannot be merged", where=str(run.path),
                              got=f"suite {m.suite.name} ({m.suite.hash}) vs {first.suite.name} ({first.suite.hash}) in {runs[0].path}",
                              fix="merge shards of one `evalkit run --shard I/N` matrix")
        if m.router.hash != first.router.hash:
            raise RunDirError("runs with different router configs cannot be merged", where=str(run.path),
                              got=f"router config {m.router.hash} vs {first.router.hash} in {runs[0].path}",
                              fix="merge shards that ran the same router.json")
    shards: list[Any] = [r.manifest.options.get("shard") for r in runs]  # None for a run without --shard
    if any(shards):
        if not all(shards):
            missing = next(r.path for r, s in zip(runs, shards) if not s)
            raise RunDirError("a run without --shard cannot be merged with shard runs", where=str(missing),
                              fix="merge only the shard runs of one matrix")
        parsed = [parse_shard(s) for s in shards]
        counts = {n for _, n in parsed}
        if len(counts) > 1:
            raise RunDirError("the runs were split into different numbers of shards", where="evalkit merge",
                              got=", ".join(sorted(set(shards))), fix="merge the shards of one matrix (same N)")
        n = counts.pop()
        seen: dict[int, str] = {}
        for run, (i, _) in zip(runs, parsed):
            if i in seen:
                raise RunDirError(f"shard {i}/{n} is given twice", where=str(run.path), got=f"also {seen[i]}",
                                  fix="give each shard once")
            seen[i] = str(run.path)
        absent = missing_shards(runs)
        if absent and not allow_missing:
            raise RunDirError(f"shard(s) {', '.join(absent)} missing: the merged run would "
                              "not cover the whole suite", where="evalkit merge",
                              fix="give every shard run of the matrix (download all shard artifacts), or add "
                                  "--allow-incomplete to merge what is there and evaluate the gates on it")
        return sorted(range(len(runs)), key=lambda k: parsed[k][0])
    return list(range(len(runs)))


def merge_runs(runs: Sequence[Run], *, run_id: str, allow_missing: bool = False) -> tuple[Manifest, list[CaseResult]]:
    """One manifest and one result list from shard runs of the same suite and router config; with
    ``allow_missing`` a shard of the matrix may be absent (named in ``options["missing_shards"]``)."""
    order = shard_order(runs, allow_missing=allow_missing)
    first = runs[0].manifest
    results: list[CaseResult] = []
    origin: dict[str, str] = {}
    for k in order:
        for r in runs[k].results:
            if r.id in origin:
                raise RunDirError(f"case '{r.id}' is in more than one run", where=str(runs[k].path),
                                  got=f"also in {origin[r.id]}", fix="merge runs that cover disjoint cases (shards of one matrix)")
            origin[r.id] = str(runs[k].path)
            results.append(r)
    starts = [r.manifest.started_at for r in runs]
    ends = [r.manifest.finished_at for r in runs if r.manifest.finished_at]
    options: dict[str, Any] = {k: v for k, v in first.options.items() if k not in ("shard",)}
    options["merged_from"] = [runs[k].manifest.run_id for k in order]
    absent = missing_shards(runs)
    if absent:
        options["missing_shards"] = absent
    counts_: dict[str, int] = {"cases": len(results), "ok": 0, "missing_route": 0, "error": 0}
    for r in results:
        counts_[r.status] += 1
    manifest = first.model_copy(deep=True, update={
        "run_id": run_id, "started_at": min(starts),
        "finished_at": max(ends) if len(ends) == len(runs) else None,
        "counts": counts_, "options": options, "judge": merge_judge_blocks([runs[k] for k in order]),
    })
    return manifest, results


def _identity(block: JudgeInfo | None) -> str:
    if block is None:
        return "not judged"
    return ", ".join(f"{k}={getattr(block, k)}" for k in JUDGE_IDENTITY)


def merge_judge_blocks(runs: Sequence[Run]) -> JudgeInfo | None:
    """One manifest judge block for the merged run: the shards' counts, calls, tokens and cost added
    up. Shards judged by different judges (or some judged and some not) cannot be merged: their
    verdicts would not be one judgement."""
    blocks = [r.manifest.judge for r in runs]
    if all(b is None for b in blocks):
        return None
    first = next(b for b in blocks if b is not None)
    for run, block in zip(runs, blocks):
        mine = _identity(block)
        if mine != _identity(first):
            raise RunDirError("the shards were judged with different judges (or some were not judged)",
                              where=str(run.path), got=f"{mine} here, {_identity(first)} in another shard",
                              fix="judge every shard with the same --judge settings (evalkit judge SHARD --judge MODEL) "
                                  "before merging")
    done = [b for b in blocks if b is not None]
    counts: dict[str, int] = {}
    for b in done:
        for status, n in b.counts.items():
            counts[status] = counts.get(status, 0) + n

    def total(field: str) -> Any:
        values = [getattr(b, field) for b in done]
        return None if any(v is None for v in values) else sum(values)

    update: dict[str, Any] = {"counts": counts}
    if first.status == "done":
        judged = [b.judged_at for b in done if b.judged_at]
        update.update(calls=total("calls"), prompt_tokens=total("prompt_tokens"),
                      completion_tokens=total("completion_tokens"), cost_usd=total("cost_usd"),
                      judged_at=max(judged) if judged else None)
    return first.model_copy(update=update)
