"""The sentence-embedding model of the local router and of ``evalkit overlap``, on onnxruntime.

all-MiniLM-L6-v2 ships inside evalkit (``evalkit/data/all-MiniLM-L6-v2/``): an ONNX graph built
from the sentence-transformers weights (stored as fp16 and cast back to fp32 once, when
onnxruntime loads the graph) and the model's ``tokenizer.json``. Nothing is downloaded at run
time and torch is not needed. ``dev/embedding_model.py`` rebuilds the files and checks them
against the sentence-transformers implementation; the data folder's README records their
provenance, SHA-256 and licence.

The computation is sentence-transformers' for this model: WordPiece tokens truncated at 256,
BERT, mean pooling over the attention mask, L2 normalisation. The graph does pooling and
normalisation itself, so ``encode`` returns unit rows.

Every module that embeds calls :func:`encode` (one model per process, loaded on first use).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from evalkit.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_DIR = Path(__file__).resolve().parent / "data" / MODEL_NAME
MODEL_FILE = MODEL_DIR / "model.onnx"
TOKENIZER_FILE = MODEL_DIR / "tokenizer.json"
# SHA-256 of the two files above, also in MODEL_DIR / README.md; part of every cache key built on
# the vectors (tests check that they match the files).
MODEL_SHA256 = "e5c8bca7322c63eb05eab0940f05990acae21da8956b058ed4248ae5214e26a9"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MODEL_ID = f"{MODEL_NAME}:{MODEL_SHA256[:16]}"
DIMENSION = 384
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for this model (tokens, [CLS] and [SEP] included)
PAD_ID = 0

# Batching. Texts are tokenised, sorted by token count and cut into padded batches: a batch
# costs about (rows x longest row) tokens of compute plus a fixed cost per call, so mixing a
# 10-token ticket with a 200-token reasoning prompt pays for 200 tokens twice. The cut points
# minimise that cost (see ``plan_batches``).
MAX_BATCH_ROWS = 64
MAX_BATCH_TOKENS = 4096  # rows x longest row; bounds the attention scratch memory (16 x 256 tokens)
CALL_COST_TOKENS = 16    # the fixed cost of one call, in tokens (measured: ~10-20 on this model, 2 cores)


def plan_batches(lengths: Sequence[int], *, max_rows: int = MAX_BATCH_ROWS, max_tokens: int = MAX_BATCH_TOKENS,
                 call_cost: int = CALL_COST_TOKENS) -> list[list[int]]:
    """Pure: indices of ``lengths`` grouped into batches of similar length, shortest first.

    Minimises the sum over batches of ``rows * longest + call_cost`` (dynamic programming over
    the lengths in sorted order, where the best batches are contiguous runs), with at most
    ``max_rows`` rows and ``max_tokens`` padded tokens per batch (a single longer row still gets
    a batch of its own).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    sorted_len = [max(1, lengths[i]) for i in order]
    best = [0] * (n + 1)  # best[j]: least cost of the first j sorted rows
    cut = [0] * (n + 1)   # cut[j]: where the last batch of that plan starts
    for j in range(1, n + 1):
        longest = sorted_len[j - 1]
        rows_cap = max(1, min(max_rows, max_tokens // longest))
        best_cost, best_i = None, j - 1
        for i in range(j - 1, max(-1, j - 1 - rows_cap), -1):  # last batch = sorted rows i .. j-1
            cost = best[i] + (j - i) * longest + call_cost
            if best_cost is None or cost < best_cost:
                best_cost, best_i = cost, i
        best[j], cut[j] = best_cost or 0, best_i
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append([order[k] for k in range(cut[j], j)])
        j = cut[j]
    batches.reverse()
    return batches


def default_threads() -> int:
    """Intra-op threads: ``EVALKIT_ENCODER_THREADS``, else every CPU this process may use."""
    value = os.environ.get("EVALKIT_ENCODER_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ModelError("EVALKIT_ENCODER_THREADS must be a whole number", where="EVALKIT_ENCODER_THREADS",
                             got=value[:40], fix="e.g. EVALKIT_ENCODER_THREADS=2, or unset it") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Encoder:
    """all-MiniLM-L6-v2 on onnxruntime: ``encode(texts)`` gives one unit row of 384 floats per text.

    ``run`` and ``encode`` are thread-safe (onnxruntime sessions are, and release the GIL), so the
    local router encodes on an executor thread while its event loop serves HTTP.
    """

    def __init__(self, model_file: Path = MODEL_FILE, tokenizer_file: Path = TOKENIZER_FILE, *,
                 threads: int | None = None) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from the Rust pool
        from tokenizers import Tokenizer

        for path in (model_file, tokenizer_file):
            if not path.is_file():
                raise ModelError("the packaged embedding model is missing", where=str(path), got="no such file",
                                 fix="reinstall evalkit (pip install -e . in a clone, with its data files)")
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception on a damaged file
            raise ModelError("the packaged tokenizer cannot be read", where=str(tokenizer_file),
                             got=str(exc)[:200], fix="reinstall evalkit") from None
        # tokenizer.json carries a fixed 128-token padding and truncation: sentence-transformers
        # overrides both (truncation at max_seq_length, padding per batch), so do we.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
        self.threads = threads or default_threads()
        self._model_file = model_file
        try:
            self.session = self._session(self.threads)
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / InvalidProtobuf
            raise ModelError("the packaged embedding model cannot be loaded", where=str(model_file),
                             got=f"{type(exc).__name__}: {str(exc)[:200]}",
                             fix="reinstall evalkit; a file of about 45 MB is expected (not a Git LFS pointer)") from None
        self._bulk: tuple[Any, ThreadPoolExecutor] | None = None
        self._bulk_lock = threading.Lock()

    def _session(self, threads: int) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: between micro-batches the event loop and
        # other processes on a busy machine get the CPU (measured faster under load, same when idle).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(str(self._model_file), options, providers=["CPUExecutionProvider"])

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids per text, [CLS] and [SEP] included, truncated at ``MAX_SEQ_LENGTH``."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def run(self, ids: Sequence[Sequence[int]], session: Any = None) -> "np.ndarray":
        """One padded batch through the graph: unit sentence embeddings, one row per id list."""
        import numpy as np

        longest = max(len(row) for row in ids)
        input_ids = np.full((len(ids), longest), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for r, row in enumerate(ids):
            input_ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
        return (session or self.session).run(None, {"input_ids": input_ids, "attention_mask": mask})[0]

    def encode(self, texts: Sequence[str]) -> "np.ndarray":
        """Unit-normalised embeddings of ``texts`` (float32, shape ``(len(texts), 384)``, input order)."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not one string")
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        batches = plan_batches([len(row) for row in ids])
        if len(batches) == 1 or self.threads == 1:
            for batch in batches:
                out[batch] = self.run([ids[i] for i in batch])
            return out
        # Several batches (bulk input, and the local router's micro-batches of mixed lengths): one
        # single-threaded session per CPU, each taking whole batches. A batch costs at least one
        # pass of every weight matrix through the cache (~4.5 ms here), which two threads share
        # badly: 1,024 mixed prompts encoded at 161 instead of 144 prompts/s, and the local
        # router's micro-batches of 32 mixed prompts at 0.92-0.96 of bulk throughput instead of
        # 0.84-0.88 (CPU time per prompt). A single batch (one short request, a few similar
        # prompts) keeps the multi-threaded session, whose threads split it evenly. The second
        # session (about 90 MB) is made on first use.
        with self._bulk_lock:
            if self._bulk is None:
                self._bulk = (self._session(1), ThreadPoolExecutor(self.threads, thread_name_prefix="evalkit-encoder"))
        session, pool = self._bulk
        for batch, rows in zip(batches, pool.map(lambda b: self.run([ids[i] for i in b], session), batches)):
            out[batch] = rows
        return out


_LOCK = threading.Lock()
_ENCODER: Encoder | None = None


def load_encoder() -> Encoder:
    """The packaged model, loaded once per process (about 0.3 s), never from a hub."""
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            _ENCODER = Encoder()
        return _ENCODER


def encode(texts: Sequence[str]) -> "np.ndarray":
    """Unit-normalised embeddings of ``texts`` (one row each), from the process's one encoder."""
    return load_encoder().encode(texts)


def model_info() -> dict[str, Any]:
    """What a manifest or cache key records about the model."""
    return {"name": MODEL_NAME, "sha256": MODEL_SHA256, "tokenizer_sha256": TOKENIZER_SHA256,
            "max_seq_length": MAX_SEQ_LENGTH, "runtime": "onnxruntime"}


def cache_dir() -> Path:
    """Where prompt embeddings are kept between runs (``EVALKIT_CACHE_DIR``, else ~/.cache/evalkit)."""
    root = os.environ.get("EVALKIT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "evalkit")
    return Path(root) / "embeddings"


def encode_cached(texts: list[str], *, use_cache: bool = True) -> "np.ndarray":
    """``encode(texts)``, kept on disk by the model and the exact list of texts.

    The description-improvement loop re-runs ``evalkit overlap`` on the same suite with new
    descriptions; only the descriptions need encoding again. A damaged cache file is ignored.
    """
    import hashlib

    import numpy as np

    digest = hashlib.sha256("\x00".join([MODEL_ID, *texts]).encode("utf-8")).hexdigest()[:32]
    path = cache_dir() / f"{digest}.npy"
    if use_cache and path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(texts):
                return cached
        except (OSError, ValueError):
            pass
    vectors = encode(texts)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npy")  # one per process: concurrent runs never share it
            np.save(tmp, vectors, allow_pickle=False)
            tmp.replace(path)
        except OSError:
            pass  # a read-only home is not a reason to fail the analysis
    return vectors
