"""Stream codec speeds beside stdlib/numpy baselines, in one run.

    python benchmarks/bench_huffman.py [--quick]

For each stream (realistic symbol distributions: quantised Gaussian weights at 5 and
8 bits, sparse-layout gaps, incompressible uniform symbols) it prints bits per symbol,
encode speed (MB/s of uint16 input) and decode speed (G symbols/s into a preallocated
array), warm, best of N:

- ``huffman``: :class:`HuffmanCodec` (decode on 1 thread, and on every core);
- ``packed``: :class:`PackedCodec`;
- ``zlib-1`` / ``zlib-6``: zlib at levels 1 and 6 over the packed bytes, decode
  including the unpack to uint16;
- ``np.unpackbits``: the packed bytes unpacked with numpy alone (bit planes, then
  weighted sum), a baseline for the packed kernels.

Results are machine-dependent; benchmarks/results/huffman.txt holds one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import zlib

import numba
import numpy as np

from dcformat.format.constants import symbol_width
from dcformat.streams import HuffmanCodec, PackedCodec


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gaussian(n: int, bits: int, rng) -> np.ndarray:
    """Weights ~ N(0, 1) quantised to 2**bits levels over +-4 sigma (Deep Compression codes)."""
    levels = 1 << bits
    x = rng.normal(size=n)
    return np.clip(np.round((x + 4) / 8 * (levels - 1)), 0, levels - 1).astype(np.uint16)


def gaps(n: int, density: float, gap_bits: int, rng) -> np.ndarray:
    """Relative-index gaps of a random sparse layout, capped as fillers would cap them."""
    return np.minimum(rng.geometric(density, n) - 1, (1 << gap_bits) - 1).astype(np.uint16)


def numpy_unpack(packed: bytes, count: int, width: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(packed, np.uint8), bitorder="little", count=count * width)
    return bits.reshape(count, width).astype(np.uint16) @ (1 << np.arange(width, dtype=np.uint16))


def streams(quick: bool, rng):
    big = 1 << 20 if quick else 1 << 24
    yield "gauss5", gaussian(big, 5, rng), 32, False
    if not quick:
        yield "gauss5", gaussian(1 << 20, 5, rng), 32, False
    yield "gauss8", gaussian(big, 8, rng), 256, False
    yield "gaps 10% b5", gaps(big, 0.10, 5, rng), 32, True
    yield "uniform8", rng.integers(0, 256, big).astype(np.uint16), 256, False


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M-symbol streams, fewer repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 25
    rng = np.random.default_rng(0)
    huffman, packed = HuffmanCodec(), PackedCodec()
    cores = os.cpu_count() or 1

    print(f"# dcformat stream codecs, {cpu_name()}, {cores} cores,"
          f" numpy {np.__version__}, numba {numba.__version__}")
    print(f"# warm; decode best of {repeats}, encode best of {max(3, repeats // 3)}; encode MB/s of uint16 input; decode G symbols/s into a preallocated array")
    print(f"# load average at start: {load()} (other processes share these cores; wall-clock timings)")
    header = f"{'stream':<12} {'symbols':>9} {'codec':<16} {'bits/sym':>8} {'enc MB/s':>9} {'dec Gsym/s':>10}"
    print(header)
    print("-" * len(header))

    for label, symbols, alphabet, gap in streams(args.quick, rng):
        n = symbols.size
        width = symbol_width(alphabet)
        out = np.empty(n, dtype=np.uint16)
        mb = symbols.nbytes / 1e6

        def row(codec_name, size, enc_s, dec_s):
            enc = f"{mb / enc_s:9.0f}" if enc_s else f"{'-':>9}"
            print(f"{label:<12} {n:>9} {codec_name:<16} {size * 8 / n:8.3f} {enc} {n / dec_s / 1e9:10.3f}")

        # warm the kernels (compiled or loaded from the cache) before timing
        payload = huffman.encode(symbols, alphabet, gap_stream=gap)
        huffman.decode(payload, n, alphabet, gap_stream=gap, out=out)
        np.testing.assert_array_equal(out, symbols)
        enc = best_of(lambda: huffman.encode(symbols, alphabet, gap_stream=gap), max(3, repeats // 3))
        dec1 = best_of(lambda: huffman.decode(payload, n, alphabet, gap_stream=gap, out=out, threads=1), repeats)
        row("huffman 1 thread", len(payload), enc, dec1)
        decn = best_of(lambda: huffman.decode(payload, n, alphabet, gap_stream=gap, out=out, threads=cores), repeats)
        row(f"huffman {cores} thr", len(payload), None, decn)

        raw = packed.encode(symbols, alphabet)
        packed.decode(raw, n, alphabet, out=out)
        np.testing.assert_array_equal(out, symbols)
        enc = best_of(lambda: packed.encode(symbols, alphabet), max(3, repeats // 3))
        dec = best_of(lambda: packed.decode(raw, n, alphabet, out=out), repeats)
        row("packed", len(raw), enc, dec)

        for level in (1, 6):
            z = zlib.compress(raw, level)
            enc = best_of(lambda: zlib.compress(raw, level), max(1, repeats // 3))
            dec = best_of(lambda: packed.decode(zlib.decompress(z), n, alphabet, out=out), repeats)
            row(f"zlib-{level} (packed)", len(z), enc, dec)

        np.testing.assert_array_equal(numpy_unpack(raw, n, width), symbols)
        dec = best_of(lambda: numpy_unpack(raw, n, width), max(1, repeats // 3))
        row("np.unpackbits", len(raw), None, dec)
    print(f"# load average at end: {load()}")


if __name__ == "__main__":
    main()
