"""Sweep the local router's fallback threshold on the bundled suites.

For each suite, encodes every prompt and task description once with the local router's
encoder, then for each threshold computes what the local router would do (best task, or
``fallback`` when the best cosine is under the threshold): accuracy, and fallback precision and
recall (fallback as the positive class). Prints one table per suite and the threshold with the
best accuracy. Same classifier as ``evalkit run --target local``.

    python bench/threshold_sweep.py [SUITE ...] [--router-override SUITE=ROUTER_JSON]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLDS = [round(0.025 * k, 3) for k in range(0, 17)]  # 0.000 .. 0.400


def sweep(suite_path: Path, router_path: Path | None = None) -> list[dict[str, float]]:
    import numpy as np

    from evalkit.emulator.classifier import encode
    from evalkit.records import FALLBACK
    from evalkit.suites import load_suite

    suite = load_suite(suite_path, router_path=router_path)
    names = suite.router.task_names
    n_desc = len(names)
    vectors = encode([t.description for t in suite.router.tasks] + [c.user_text for c in suite.cases])
    scores = vectors[n_desc:] @ vectors[:n_desc].T
    best = scores.argmax(axis=1)
    top = scores.max(axis=1)
    expected = np.array([c.expected_route for c in suite.cases])
    rows = []
    for t in THRESHOLDS:
        routed = np.where(top >= t, np.array(names, dtype=object)[best], FALLBACK)
        correct = float(np.mean(routed == expected))
        fb_pred, fb_true = routed == FALLBACK, expected == FALLBACK
        tp = int(np.sum(fb_pred & fb_true))
        precision = tp / int(fb_pred.sum()) if fb_pred.any() else float("nan")
        recall = tp / int(fb_true.sum()) if fb_true.any() else float("nan")
        rows.append({"threshold": t, "accuracy": correct, "fallback_precision": precision,
                     "fallback_recall": recall, "fallback_rate": float(fb_pred.mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=["suites/saas-support", "suites/clinc150-domains"])
    parser.add_argument("--router-override", action="append", default=[], metavar="SUITE=ROUTER_JSON")
    args = parser.parse_args()
    overrides = dict(o.split("=", 1) for o in args.router_override)
    for s in args.suites:
        rows = sweep(ROOT / s, ROOT / overrides[s] if s in overrides else None)
        print(f"\n{s}" + (f" (router {overrides[s]})" if s in overrides else ""))
        print("threshold  accuracy  fb_precision  fb_recall  fallback_rate")
        for r in rows:
            print(f"{r['threshold']:9.3f}  {r['accuracy']:8.3f}  {r['fallback_precision']:12.3f}  "
                  f"{r['fallback_recall']:9.3f}  {r['fallback_rate']:13.3f}")
        top = max(rows, key=lambda r: (r["accuracy"], -abs(r["threshold"] - 0.10)))
        print(f"best accuracy {top['accuracy']:.3f} at threshold {top['threshold']:.3f}")


if __name__ == "__main__":
    main()
