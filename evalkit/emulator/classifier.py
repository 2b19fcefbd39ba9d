"""Route classifiers of the local router.

Three backends, one interface (``async classify(text, router) -> Decision`` and ``threshold``):

- ``embedding`` (default): embeds the last user message and every task description with the
  packaged all-MiniLM-L6-v2 model (``evalkit.embedding``: onnxruntime, no torch, no download at
  run time) and picks the task of highest cosine similarity, or ``fallback`` when even that is
  under the threshold. Concurrent requests are micro-batched into one ``encode`` call;
  description embeddings are cached per router version.
- ``tfidf``: the same decision over TF-IDF vectors of character n-grams (scikit-learn only, no
  model), fitted on the task descriptions of each router version.
- ``llm``: zero-shot through any OpenAI-compatible model, with a prompt that lists the task names
  and descriptions and asks for one name or ``other`` (the Arch-Router approach).
- ``arch-router``: katanemo/Arch-Router-1.5B through any OpenAI-compatible server, with the exact
  prompt of its model card and the conversation's prior turns (``evalkit.emulator.arch_router``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from evalkit.errors import TargetError
from evalkit.embedding import encode, load_encoder  # noqa: F401  (re-exported: one encoder for every module)
from evalkit.records import FALLBACK

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from evalkit.router_config import RouterConfig

# Requests waiting together are embedded in one ``encode`` call of at most this many texts
# (``encode`` itself sorts them by length and cuts padded batches of similar length).
MAX_BATCH = 64
# Collecting a micro-batch. Under concurrent load the answers of one batch come back as new
# requests one by one; encoding whatever is waiting at the first arrival splits each round into a
# small and a large batch (measured with 32 clients: alternating 7 and 25, or 15 and 17), and
# every call costs at least one pass of the weights. So while fewer requests wait than recent
# batches held (a decaying high-water mark: a lone client expects 1 and never waits), the worker
# keeps collecting as long as the next request comes within BATCH_GAP_S, for BATCH_WAIT_S at most.
BATCH_GAP_S = 0.003
BATCH_WAIT_S = 0.03
MAX_CACHED_VERSIONS = 256  # router versions whose description vectors are kept
# Chosen by measurement on suites/saas-support and suites/clinc150-domains (README: "Fallback threshold").
DEFAULT_THRESHOLD = 0.10


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

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *,
                 encoder: "Callable[[list[str]], np.ndarray] | None" = None,
                 batch_gap_s: float = BATCH_GAP_S, batch_wait_s: float = BATCH_WAIT_S) -> None:
        self.threshold = threshold
        self._encode = encoder or encode  # injectable: benchmarks and tests count or time the calls
        self.batch_gap_s, self.batch_wait_s = batch_gap_s, batch_wait_s
        self._expected = 1  # how many requests a micro-batch may expect (decaying high-water mark)
        self._desc_cache: dict[str, "np.ndarray"] = {}
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def description_matrix(self, router: "RouterConfig") -> "np.ndarray":
        key = router.hash
        cached = self._desc_cache.get(key)
        if cached is None:
            cached = self._encode([t.description for t in router.tasks])
            if len(self._desc_cache) >= MAX_CACHED_VERSIONS:  # many updates: drop the oldest version
                self._desc_cache.pop(next(iter(self._desc_cache)))
            self._desc_cache[key] = cached
        return cached

    def scores_for(self, vectors: "np.ndarray", router: "RouterConfig") -> list[dict[str, float]]:
        sims = vectors @ self.description_matrix(router).T
        names = router.task_names
        return [{n: float(row[j]) for j, n in enumerate(names)} for row in sims]

    def classify_many(self, texts: list[str], router: "RouterConfig") -> list[Decision]:
        """Synchronous batch classification (benchmarks, overlap analysis)."""
        vectors = self._encode(texts)
        return [decide(s, self.threshold) for s in self.scores_for(vectors, router)]

    async def classify(self, text: str, router: "RouterConfig") -> Decision:
        """Embed ``text`` together with whatever other requests are waiting, then decide."""
        loop = asyncio.get_running_loop()
        if router.hash not in self._desc_cache:  # a new router version: embed off the event loop
            await loop.run_in_executor(None, self.description_matrix, router)
        if self._queue is None or self._worker is None or self._worker.done() or self._loop is not loop:
            # first use, or a new event loop (a server restarted with the same classifier)
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._batch_worker())
        fut: asyncio.Future[Any] = loop.create_future()
        await self._queue.put((text, fut))
        vector = await fut
        return decide(self.scores_for(vector[None, :], router)[0], self.threshold)

    async def _collect(self, first: tuple[str, "asyncio.Future[Any]"]) -> list[tuple[str, "asyncio.Future[Any]"]]:
        """``first`` and the requests waiting with it; see ``BATCH_GAP_S`` for when it waits for more."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        batch = [first]
        target = min(self._expected, MAX_BATCH)
        deadline = loop.time() + self.batch_wait_s
        while len(batch) < MAX_BATCH:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            wait = min(self.batch_gap_s, deadline - loop.time())
            if len(batch) >= target or wait <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), wait))
            except asyncio.TimeoutError:
                break
        self._expected = max(len(batch), self._expected * 7 // 8)
        return batch

    async def _batch_worker(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(await self._queue.get())
            try:
                vectors = await loop.run_in_executor(None, self._encode, [t for t, _ in batch])
            except Exception as exc:  # hand the failure to every waiting request
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), vec in zip(batch, vectors):
                if not fut.done():
                    fut.set_result(vec)


# Similarities of character n-gram TF-IDF vectors run lower than embedding similarities.
TFIDF_DEFAULT_THRESHOLD = 0.05


class TfidfClassifier:
    """Cosine similarity of character n-gram TF-IDF vectors (scikit-learn only, no model)."""

    name = "tfidf"

    def __init__(self, threshold: float = TFIDF_DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def _fitted(self, router: "RouterConfig") -> tuple[Any, Any]:
        with self._lock:
            cached = self._cache.get(router.hash)
            if cached is None:
                from sklearn.feature_extraction.text import TfidfVectorizer

                vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                             lowercase=True)
                matrix = vectorizer.fit_transform([f"{t.name.replace('-', ' ')} {t.description}" for t in router.tasks])
                cached = (vectorizer, matrix)
                if len(self._cache) >= MAX_CACHED_VERSIONS:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[router.hash] = cached
            return cached

    def scores(self, texts: list[str], router: "RouterConfig") -> list[dict[str, float]]:
        vectorizer, matrix = self._fitted(router)
        sims = (vectorizer.transform(texts) @ matrix.T).toarray()
        names = router.task_names
        return [{n: float(row[j]) for j, n in enumerate(names)} for row in sims]

    def classify_many(self, texts: list[str], router: "RouterConfig") -> list[Decision]:
        return [decide(s, self.threshold) for s in self.scores(texts, router)]

    async def classify(self, text: str, router: "RouterConfig") -> Decision:
        return self.classify_many([text], router)[0]


LLM_ROUTER_PROMPT = """You are a request router. Read the user's message and choose the one task below that best \
matches what the user wants. Each task has a name and a description.

<routes>
{routes}
</routes>

<message>
{message}
</message>

Answer with JSON only, exactly {{"route": "<task name>"}}. If no task fits the message, answer {{"route": "other"}}."""

NO_ROUTE = ("other", "none", "fallback", "null", "")


def build_llm_prompt(text: str, router: "RouterConfig") -> str:
    """Pure: the zero-shot routing prompt listing every task name and description."""
    routes = json.dumps([{"name": t.name, "description": t.description} for t in router.tasks], indent=1)
    return LLM_ROUTER_PROMPT.format(routes=routes, message=text)


def parse_llm_route(answer: str | None, task_names: list[str]) -> str | None:
    """Pure: the task named in the model's answer, ``fallback`` for ``other``, None when unparseable."""
    if answer is None:
        return None
    text = answer.strip()
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text).strip()
    candidate: str | None = None
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("route"), (str, type(None))):
            candidate = data.get("route") or ""
        elif isinstance(data, str):
            candidate = data
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        match = re.search(r'"route"\s*:\s*"([^"]*)"', text)
        candidate = match.group(1) if match else text
    if candidate is None:
        return None
    key = candidate.strip().strip("\"'`.").strip().lower()
    for name in task_names:
        if name.lower() == key:
            return name
    if key in NO_ROUTE:
        return FALLBACK
    return None


class LlmClassifierError(TargetError):
    """The routing model could not be reached or gave no usable answer."""

    code = "classifier_failed"  # the OpenAI error code of the local router's 502


class LlmClassifier:
    """Zero-shot routing by an OpenAI-compatible chat model (the Arch-Router approach)."""

    name = "llm"

    def __init__(self, *, model: str, base_url: str, api_key: str | None = None, timeout_s: float = 60.0) -> None:
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.threshold = 0.0  # the model decides; there is no similarity to threshold
        self._client: Any = None

    def _openai(self) -> Any:
        if self._client is None:
            import openai

            from evalkit.targets import capped_async_client

            # the model's answer is read under the size cap of evalkit's clients (docs/reliability.md)
            self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key or "none",
                                              max_retries=1, timeout=self.timeout_s,
                                              http_client=capped_async_client(self.timeout_s, follow_redirects=True))
        return self._client

    async def classify(self, text: str, router: "RouterConfig") -> Decision:
        import openai

        from evalkit.targets import ResponseRefused, refusal_of

        prompt = build_llm_prompt(text, router)
        try:
            completion = await self._openai().chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0)
        except (openai.OpenAIError, ResponseRefused) as exc:
            refused = refusal_of(exc)
            raise LlmClassifierError(f"routing model '{self.model}' failed: "
                                     f"{refused.message if refused else type(exc).__name__}") from None
        answer = completion.choices[0].message.content if completion.choices else None
        route = parse_llm_route(answer, router.task_names)
        if route is None:
            # An answer that names no task is treated like "other": the prompt goes to fallback.
            return Decision(FALLBACK, 0.0, {})
        if route == FALLBACK:
            return Decision(FALLBACK, 0.0, {})
        return Decision(route, 1.0, {route: 1.0})


CLASSIFIERS = ("embedding", "tfidf", "llm", "arch-router")
MODEL_CLASSIFIERS = ("llm", "arch-router")  # classifiers that ask a chat model (no threshold)


def make_classifier(kind: str = "embedding", *, threshold: float | None = None, llm_model: str | None = None,
                    llm_base_url: str | None = None, llm_api_key: str | None = None,
                    timeout_s: float | None = None) -> Any:
    """A classifier by backend name, with that backend's default threshold unless one is given."""
    from evalkit.errors import UsageError

    if kind == "arch-router":
        from evalkit.emulator.arch_router import ARCH_ROUTER_MODEL, DEFAULT_TIMEOUT_S, ArchRouterClassifier

        if not llm_base_url:
            raise UsageError("the arch-router classifier needs the base URL of a server that serves the model",
                             where="--classifier arch-router",
                             fix="add --classifier-base-url URL, e.g. http://127.0.0.1:11434/v1 (Ollama) or "
                                 "http://127.0.0.1:8000/v1 (vLLM); see docs/local-router.md")
        if not re.match(r"^https?://[^\s/]+", llm_base_url):
            raise UsageError("the routing model's base URL is not an http(s) URL", where="--classifier-base-url",
                             got=llm_base_url, fix="e.g. --classifier-base-url http://127.0.0.1:11434/v1")
        return ArchRouterClassifier(model=llm_model or ARCH_ROUTER_MODEL, base_url=llm_base_url, api_key=llm_api_key,
                                    timeout_s=timeout_s or DEFAULT_TIMEOUT_S)

    if kind == "embedding":
        return EmbeddingClassifier(DEFAULT_THRESHOLD if threshold is None else threshold)
    if kind == "tfidf":
        return TfidfClassifier(TFIDF_DEFAULT_THRESHOLD if threshold is None else threshold)
    if kind == "llm":
        if not llm_model or not llm_base_url:
            raise UsageError("the llm classifier needs a routing model and its base URL", where="--classifier llm",
                             fix="add --classifier-model SLUG and either --classifier-base-url URL or "
                                 "--upstream SLUG=URL for that model")
        return LlmClassifier(model=llm_model, base_url=llm_base_url, api_key=llm_api_key)
    raise UsageError(f"unknown classifier '{kind}'", where="--classifier", got=kind,
                     fix=f"use one of: {', '.join(CLASSIFIERS)}")


def classifier_from_options(kind: str = "embedding", *, threshold: float | None = None, model: str | None = None,
                            base_url: str | None = None, api_key_env: str | None = None,
                            upstreams: "dict[str, Any] | None" = None, timeout_s: float | None = None) -> Any:
    """The classifier for ``evalkit serve`` / ``evalkit run --target local`` options.

    For ``llm`` and ``arch-router`` the routing model's URL is ``base_url`` or, failing that, the
    model's own ``--upstream``; its key comes from ``api_key_env`` or that upstream's key
    variable. ``arch-router``'s model defaults to katanemo/Arch-Router-1.5B.
    """
    from evalkit.emulator.upstream import WILDCARD, parse_upstreams
    from evalkit.errors import UsageError

    if kind not in MODEL_CLASSIFIERS:
        return make_classifier(kind, threshold=threshold)
    if kind == "arch-router" and not model:
        from evalkit.emulator.arch_router import ARCH_ROUTER_MODEL

        model = ARCH_ROUTER_MODEL
    if not model:
        raise UsageError("the llm classifier needs a routing model", where="--classifier llm",
                         fix="add --classifier-model SLUG (an OpenAI-compatible chat model)")
    parsed = parse_upstreams(upstreams)
    upstream = parsed.get(model) or parsed.get(WILDCARD)
    url = base_url or (upstream.url if upstream else None)
    if not url:
        example = " (e.g. http://127.0.0.1:11434/v1 for Ollama; see docs/local-router.md)" \
            if kind == "arch-router" else ""
        raise UsageError(f"no URL for the routing model '{model}'", where="--classifier-base-url",
                         fix=f"add --classifier-base-url URL{example} or --upstream {model}=URL")
    key_env = api_key_env or (upstream.key_env if upstream and not base_url else None)
    key = os.environ.get(key_env) if key_env else None
    if key:
        from evalkit.redact import register

        register(key)
    if key_env and not key:
        raise UsageError(f"environment variable {key_env} (the routing model's key) is not set",
                         where="--classifier-api-key-env", fix=f"export {key_env}=<key>")
    return make_classifier(kind, llm_model=model, llm_base_url=url, llm_api_key=key, timeout_s=timeout_s)
