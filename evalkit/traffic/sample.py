"""Sampling a request log into a suite: deduplicate, stratify by route, pick diverse cases (pure).

1. Exact duplicates go first: two conversations whose user turns are the same text once case,
   punctuation, spacing and politeness words are ignored are one (kept: the first, labelled with the route most of
   its copies got).
2. The sample size is shared out among the observed routes (``allocate``): every route gets a
   floor of ``floor`` cases (all of its cases when it has fewer), the rest in proportion to each
   route's traffic. The floor shrinks to ``n // routes`` when it cannot be met for every route.
3. Near-duplicates (cosine similarity of the prompt embeddings at or above ``near_duplicate``)
   are dropped among the candidates, rarest route first, so a rare route keeps its cases.
4. Within a route, k-means over the embeddings groups similar prompts; the prompt nearest each
   centre is taken first, the biggest groups first (``diverse_order``). Medoids rather than
   farthest points: the sample should look like the traffic, not like its oddest outliers.

Large logs: each route's candidates are a seeded random subset of at most
``max(POOL_MIN, POOL_FACTOR * quota)`` conversations, so embedding time follows the sample
size, not the log size. Everything is seeded by ``seed``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from evalkit.traffic.logs import Conversation

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

DEFAULT_SAMPLE = 300
DEFAULT_FLOOR = 10
DEFAULT_NEAR_DUPLICATE = 0.95
POOL_FACTOR = 6
POOL_MIN = 60
EMBED_CHARS = 2000  # the encoder reads a few hundred tokens at most

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# Words that make no difference to what was asked (kept out of the duplicate key only).
FILLERS = frozenset({"please", "pls", "plz", "hey", "hi", "hello", "thanks", "thank", "thx"})


def normalise(text: str) -> str:
    """The text two exact duplicates share: case, punctuation, spacing and politeness words
    ("please", "hey", "thanks", ...) ignored."""
    words = _NON_WORD.sub(" ", text.casefold()).split()
    kept = [w for w in words if w not in FILLERS]
    return " ".join(kept or words)


def unit_key(conversation: Conversation) -> str:
    return hashlib.sha256(normalise(conversation.text()).encode("utf-8")).hexdigest()


@dataclass
class Unit:
    """A deduplicated conversation, with the stratum (route) it is sampled in."""

    conversation: Conversation
    key: str
    stratum: str
    copies: int = 1
    order: int = 0

    @property
    def size(self) -> int:
        return self.conversation.size


@dataclass
class SampleStats:
    """What sampling did, for the README and ``--json``."""

    n_conversations: int = 0
    n_exact_duplicates: int = 0         # conversations dropped as exact duplicates
    n_near_duplicates: int = 0          # candidates dropped as near-duplicates
    n_candidates: int = 0               # conversations embedded
    floor: int = 0                      # the floor in force (after shrinking)
    floor_asked: int = 0
    quotas: dict[str, int] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)
    selected: dict[str, int] = field(default_factory=dict)


def exact_dedup(conversations: Sequence[Conversation], route_counts: Counter[str]) -> tuple[list[Unit], int]:
    """One unit per distinct text; a single request takes the route most of its copies got."""
    by_key: dict[str, Unit] = {}
    votes: dict[str, Counter[str]] = {}
    dropped = 0
    for i, conv in enumerate(conversations):
        key = unit_key(conv)
        unit = by_key.get(key)
        if unit is not None:
            unit.copies += 1
            dropped += 1
            if conv.size == 1 and unit.size == 1:
                votes[key][conv.requests[0].route] += 1
            continue
        by_key[key] = Unit(conv, key, stratum="", order=i)
        votes[key] = Counter([conv.requests[0].route]) if conv.size == 1 else Counter()
    units = list(by_key.values())
    for unit in units:
        tally = votes[unit.key]
        if unit.size == 1 and len(tally) > 1:
            first = unit.conversation.requests[0].route
            best = max(tally.values())
            if tally[first] < best:  # ties keep the first copy's route
                winner = next(r for r, n in tally.most_common() if n == best)
                unit.conversation.requests[0].route = winner
        # a conversation is sampled with its rarest route, so routes seen only in later turns are kept
        unit.stratum = min(unit.conversation.routes, key=lambda r: (route_counts.get(r, 0), r))
    return units, dropped


def allocate(available: dict[str, int], n: int, floor: int) -> tuple[dict[str, int], int]:
    """Cases per route: a floor for each route, the rest in proportion to traffic (largest remainder).

    Returns the quotas and the floor in force. ``available`` counts cases per route.
    """
    routes = [r for r in sorted(available) if available[r] > 0]
    if not routes or n <= 0:
        return {r: 0 for r in available}, 0
    effective = max(0, min(floor, n // len(routes)))
    if sum(available[r] for r in routes) <= n:
        return {r: available.get(r, 0) for r in available}, effective
    quotas = {r: min(available[r], effective) for r in routes}
    remaining = n - sum(quotas.values())
    while remaining > 0:
        room = {r: available[r] - quotas[r] for r in routes if available[r] > quotas[r]}
        if not room:
            break
        total_room = sum(room.values())
        shares = {r: remaining * room[r] / total_room for r in room}
        grant = {r: min(room[r], math.floor(shares[r])) for r in room}
        left = remaining - sum(grant.values())
        for r in sorted(room, key=lambda r: (-(shares[r] - math.floor(shares[r])), r)):
            if left <= 0:
                break
            if grant[r] < room[r]:
                grant[r] += 1
                left -= 1
        if not any(grant.values()):
            break
        for r, g in grant.items():
            quotas[r] += g
        remaining = n - sum(quotas.values())
    return {r: quotas.get(r, 0) for r in available}, effective


def near_duplicates(vectors: "np.ndarray", threshold: float, *, block: int = 512) -> list[bool]:
    """Greedy in row order: a row is dropped when an earlier kept row is at least ``threshold`` similar."""
    import numpy as np

    n = len(vectors)
    keep = np.ones(n, dtype=bool)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = vectors[start:stop] @ vectors[:stop].T
        for i in range(start, stop):
            row = sims[i - start, :i]
            close = np.nonzero(row >= threshold)[0]
            if close.size and keep[close].any():
                keep[i] = False
    return [not k for k in keep]


def diverse_order(vectors: "np.ndarray", k: int, *, seed: int) -> list[int]:
    """Rows in the order to take them: the medoid of each k-means cluster (biggest first), then
    the second nearest of each, and so on."""
    import numpy as np

    n = len(vectors)
    if n == 0:
        return []
    k = max(1, min(k, n))
    if k == n:
        return list(range(n))
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=1, random_state=seed, max_iter=100)
    labels = model.fit_predict(vectors)
    dists = np.linalg.norm(vectors - model.cluster_centers_[labels], axis=1)
    clusters: dict[int, list[int]] = {}
    for i in np.argsort(dists, kind="stable"):
        clusters.setdefault(int(labels[i]), []).append(int(i))
    ordered = sorted(clusters.values(), key=lambda members: (-len(members), members[0]))
    out: list[int] = []
    depth = 0
    while len(out) < n:
        for members in ordered:
            if depth < len(members):
                out.append(members[depth])
        depth += 1
    return out


def sample_units(units: list[Unit], *, n: int, floor: int, near_duplicate: float, seed: int,
                 encode: Callable[[list[str]], "np.ndarray"]) -> tuple[list[Unit], SampleStats]:
    """Pick about ``n`` cases (exactly ``n`` unless conversations do not fit) from deduplicated units."""
    import numpy as np

    stats = SampleStats(floor_asked=floor)
    strata: dict[str, list[Unit]] = {}
    for unit in units:
        strata.setdefault(unit.stratum, []).append(unit)
    cases = {r: sum(u.size for u in us) for r, us in strata.items()}
    quotas, _ = allocate(cases, n, floor)
    rng = np.random.default_rng(seed)
    rarity = sorted(strata, key=lambda r: (cases[r], r))
    pool: list[Unit] = []
    for route in rarity:
        members = strata[route]
        cap = max(POOL_MIN, POOL_FACTOR * quotas.get(route, 0))
        if len(members) > cap:
            picked = sorted(rng.choice(len(members), size=cap, replace=False).tolist())
            members = [members[i] for i in picked]
        pool.extend(members)
    stats.n_candidates = len(pool)
    vectors = encode([u.conversation.text()[:EMBED_CHARS] for u in pool]) if pool else np.zeros((0, 1))
    dropped = near_duplicates(vectors, near_duplicate) if pool else []
    stats.n_near_duplicates = sum(dropped)
    kept: dict[str, list[int]] = {}
    for i, unit in enumerate(pool):
        if not dropped[i]:
            kept.setdefault(unit.stratum, []).append(i)
    available = {r: sum(pool[i].size for i in idx) for r, idx in kept.items()}
    quotas, stats.floor = allocate(available, n, floor)
    stats.quotas, stats.available = dict(quotas), dict(available)
    ranked: dict[str, list[int]] = {}
    for route, idx in kept.items():
        order = diverse_order(vectors[idx], max(1, quotas.get(route, 0)), seed=seed)
        ranked[route] = [idx[j] for j in order]
    chosen: list[int] = []
    taken: set[int] = set()
    counts: Counter[str] = Counter()
    for route in rarity:
        for i in ranked.get(route, []):
            if counts[route] + pool[i].size <= quotas.get(route, 0):
                chosen.append(i)
                taken.add(i)
                counts[route] += pool[i].size
    # Conversations that did not fit their route's quota leave room: fill it, rarest route first.
    room = n - sum(counts.values())
    for route in rarity:
        for i in ranked.get(route, []):
            if room <= 0:
                break
            if i not in taken and pool[i].size <= room:
                chosen.append(i)
                taken.add(i)
                counts[route] += pool[i].size
                room -= pool[i].size
    stats.selected = dict(counts)
    return [pool[i] for i in chosen], stats
