"""Import Deep Compression's compressed_SqueezeNet.net and write it as a .dcf file.

    python benchmarks/squeezenet_import.py [--shared DIR] [--out FILE] [--alignment N]

Prints one row per layer (weights, entries stored in the 2016 file, entries kept now,
layout, gap width, bits per entry of the Huffman-coded code and gap streams, bytes of the
record's segments) and the file size against the 675,763-byte original and the order-0
entropy estimate of the 2016 streams (codebooks and biases included).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcformat.convert.net2016 import (  # noqa: E402
    _entropy_bits,
    net_to_encoded,
    plan_net,
    plan_to_encoded,
    read_net,
)

ORIGINAL_BYTES = 675_763
ENTROPY_ESTIMATE = 541_700  # order-0 entropy of the 2016 code + gap streams, plus codebooks and biases


def _segment_bytes(t) -> tuple[int, int, int]:
    """(codebook, codes, gaps) payload bytes of an EncodedTensor, from its codecs."""
    from dcformat.encodings.model import Sparse

    v = t.values
    cb = v.codebook.nbytes
    codes = len(v.codec.encode(v.codes, v.codebook.size))
    gaps = 0
    if isinstance(t.layout, Sparse):
        gaps = len(t.layout.codec.encode(t.layout.gaps, 1 << t.layout.gap_bits, gap_stream=True))
    return cb, codes, gaps


def main(argv: list[str] | None = None) -> int:
    default_shared = os.environ.get("DCFORMAT_SHARED_DIR") or str(ROOT.parent / "shared")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=default_shared, help="the shared/ folder holding reference/")
    ap.add_argument("--out", help="write the .dcf here (default: a temporary directory)")
    ap.add_argument("--alignment", type=int, default=None,
                    help="segment alignment for the container writer (default: the writer's, 64)")
    args = ap.parse_args(argv)

    ref = Path(args.shared) / "reference" / "squeezenet-deep-compression"
    t0 = time.perf_counter()
    nf = read_net(ref / "compressed_SqueezeNet.net", ref / "SqueezeNet_deploy.prototxt")
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    plans = plan_net(nf)
    encoded = {}
    for layer, plan in zip(nf.layers, plans):
        encoded[f"{layer.name}.weight"] = plan_to_encoded(plan)
        encoded[f"{layer.name}.bias"] = layer.bias.copy()
    t_plan = time.perf_counter() - t0

    h2016 = sum(_entropy_bits(np.bincount(layer.codes)) + _entropy_bits(np.bincount(layer.gaps)) for layer in nf)
    h2016 = h2016 / 8 + 4 * (sum(layer.codebook.size for layer in nf) + nf.bias_count)

    print(f"{nf.path}: {nf.file_size:,} bytes, {len(nf)} layers, {nf.weight_count:,} weights, "
          f"{nf.bias_count:,} biases, {nf.stored_count:,} stored entries ({nf.nonzero_count:,} non-zero)")
    print(f"read + decode {t_read * 1e3:.0f} ms, re-encoding plan {t_plan * 1e3:.0f} ms")
    print(f"order-0 entropy of the 2016 streams + codebooks + biases: {h2016:,.0f} bytes")
    print()
    hdr = (f"{'layer':18s} {'weights':>8s} {'stored':>7s} {'kept':>7s} {'kept%':>6s} {'layout':>6s} "
           f"{'gapb':>4s} {'cb':>4s} {'codecs':>7s} {'code b/e':>8s} {'gap b/e':>7s} {'codebook':>8s} {'codes':>7s} "
           f"{'gaps':>7s} {'bias':>6s} {'bytes':>7s} {'2016':>7s}")
    print(hdr)
    print("-" * len(hdr))
    tot = dict(w=0, s=0, k=0, cb=0, codes=0, gaps=0, bias=0, old=0)
    for layer, plan in zip(nf.layers, plans):
        t = encoded[f"{layer.name}.weight"]
        cb, codes, gaps = _segment_bytes(t)
        nbias = layer.bias.nbytes
        kept = layer.nonzero_count
        entries = plan.entries
        total = cb + codes + gaps + nbias
        code_bpe = 8 * codes / kept if kept else 0.0
        gap_bpe = 8 * gaps / kept if kept else 0.0
        gb = str(plan.gap_bits) if plan.layout == "sparse" else "-"

        def cdc(which: str, limit: int) -> str:
            return "P" if which == "packed" else f"H{limit}"

        codec = cdc(plan.codes_codec, plan.codes_max_length)
        codec += "/" + (cdc(plan.gaps_codec, plan.gaps_max_length) if plan.gaps is not None else "-")
        print(f"{layer.name:18s} {layer.weight_size:8d} {layer.count:7d} {entries:7d} "
              f"{100 * kept / layer.weight_size:5.1f}% {plan.layout:>6s} {gb:>4s} {plan.codebook.size:4d} {codec:>7s} "
              f"{code_bpe:8.3f} {gap_bpe:7.3f} {cb:8d} {codes:7d} {gaps:7d} {nbias:6d} {total:7d} "
              f"{layer.stored_bytes:7d}")
        for key, val in (("w", layer.weight_size), ("s", layer.count), ("k", entries), ("cb", cb),
                         ("codes", codes), ("gaps", gaps), ("bias", nbias), ("old", layer.stored_bytes)):
            tot[key] += val
    payload = tot["cb"] + tot["codes"] + tot["gaps"] + tot["bias"]
    print("-" * len(hdr))
    print(f"{'total':18s} {tot['w']:8d} {tot['s']:7d} {tot['k']:7d} "
          f"{100 * nf.nonzero_count / tot['w']:5.1f}% {'':>6s} {'':>4s} {'':>4s} {'':>7s} "
          f"{8 * tot['codes'] / nf.nonzero_count:8.3f} {8 * tot['gaps'] / nf.nonzero_count:7.3f} "
          f"{tot['cb']:8d} {tot['codes']:7d} {tot['gaps']:7d} {tot['bias']:6d} {payload:7d} {tot['old']:7d}")
    print("(kept: entries stored now, fillers included (every element for dense); kept%: non-zero weights;\n"
          " codecs: codes/gaps streams, H<n> Huffman with codes of at most n bits, P packed;\n"
          " b/e: bits per non-zero weight; bytes: codebook + codes + gaps + bias segments; 2016: the same in the .net)")
    print()

    from dcformat import load_file
    from dcformat.container.writer import ContainerWriter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.out) if args.out else Path(tmp) / "squeezenet.dcf"
        t0 = time.perf_counter()
        writer = ContainerWriter() if args.alignment is None else ContainerWriter(alignment=args.alignment)
        for name, value in encoded.items():
            writer.add_tensor(name, value)
        writer.write(path, overwrite=True)
        t_write = time.perf_counter() - t0
        size = path.stat().st_size
        t0 = time.perf_counter()
        back = load_file(path)
        t_load = time.perf_counter() - t0
        for layer in nf.layers:
            w = np.asarray(back[f"{layer.name}.weight"])
            b = np.asarray(back[f"{layer.name}.bias"])
            if w.tobytes() != layer.weight.tobytes() or b.tobytes() != layer.bias.tobytes():
                print(f"MISMATCH in {layer.name}")
                return 1
        print(f"wrote {path.name} (alignment {writer.alignment}) in {t_write * 1e3:.0f} ms; "
              f"load_file in {t_load * 1e3:.0f} ms: all {2 * len(nf)} tensors bit-identical to the .net decoding")
        aligned8 = ContainerWriter(alignment=8)
        for name, value in encoded.items():
            aligned8.add_tensor(name, value)
        size8 = len(aligned8.to_bytes())
        verbatim = ContainerWriter()
        for name, value in net_to_encoded(nf, reencode=False).items():
            verbatim.add_tensor(name, value)
        size_verbatim = len(verbatim.to_bytes())
    overhead = size - payload
    print(f"segments {payload:,} bytes + header, alignment padding and preamble {overhead:,} bytes")
    print(f".dcf file: {size:,} bytes = {100 * size / ORIGINAL_BYTES:.1f}% of the {ORIGINAL_BYTES:,}-byte .net "
          f"({ORIGINAL_BYTES / size:.3f}x smaller); {size - ENTROPY_ESTIMATE:+,} bytes vs the "
          f"{ENTROPY_ESTIMATE:,}-byte entropy estimate ({100 * (size / ENTROPY_ESTIMATE - 1):+.2f}%)")
    print(f"same tensors with alignment 8: {size8:,} bytes; the 2016 streams kept verbatim "
          f"(4-bit gaps, full codebooks, default Huffman per stream): {size_verbatim:,} bytes")
    print(f"dense float32 would be {4 * (nf.weight_count + nf.bias_count):,} bytes "
          f"({4 * (nf.weight_count + nf.bias_count) / size:.1f}x the .dcf)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
