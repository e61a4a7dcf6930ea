"""Coverage-guided fuzzing of the reader (atheris), differential against the reference decoder.

One command, with a time budget, seeded with every conformance vector and a few files
written here (PLANES records of every float type, dense and sparse, several blocks):

    python fuzz/fuzz_reader.py --minutes 30            # JIT kernels, as users run them
    python fuzz/fuzz_reader.py --minutes 30 --no-jit   # kernels as Python: instrumented too

The target decodes each input with the fast reader, checksums off (a fuzzer cannot forge
CRCs, and every other rule must hold without them) and a 64 MiB decode budget. The input
must either decode or raise a subclass of ``DCFormatError``; when it decodes, the
reference decoder must give the same tensors bit for bit, and when it is refused, the
reference must refuse it too. Anything else (another exception, a crash, a hang caught by
``-timeout``, memory beyond ``-rss_limit_mb``) is a finding: libFuzzer writes the input to
``fuzz/findings/``. Every fixed finding becomes an invalid vector in ``spec/vectors/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUDGET = 64 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="time budget (default 1)")
    parser.add_argument("--no-jit", action="store_true", help="run kernels as Python (NUMBA_DISABLE_JIT=1)")
    parser.add_argument("--corpus", type=Path, default=HERE / "corpus", help="working corpus directory")
    args, libfuzzer_args = parser.parse_known_args()
    if args.no_jit:
        os.environ["NUMBA_DISABLE_JIT"] = "1"
    seed_corpus(args.corpus)
    findings = HERE / "findings"
    findings.mkdir(exist_ok=True)

    import atheris

    instrument_python_code()
    argv = [sys.argv[0], str(args.corpus), f"-max_total_time={int(args.minutes * 60)}",
            f"-artifact_prefix={findings}/", "-timeout=20", "-rss_limit_mb=2048",
            "-max_len=65536", "-print_final_stats=1", *libfuzzer_args]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def instrument_python_code() -> None:
    """Instrument every loaded Python function for coverage, except the Numba kernels.

    Numba compiles a kernel from its Python bytecode; instrumented bytecode calls into
    atheris, which Numba cannot compile, so each kernel's original code is put back.
    """
    import importlib
    import pkgutil

    import atheris

    import dcformat
    import dcformat.kernels as kernels
    from dcformat import reference  # noqa: F401

    dispatchers = []
    for module in pkgutil.iter_modules(kernels.__path__):
        mod = importlib.import_module(f"dcformat.kernels.{module.name}")
        dispatchers += [obj for obj in vars(mod).values() if hasattr(obj, "py_func")]
    saved = [(d.py_func, d.py_func.__code__) for d in dispatchers]
    atheris.instrument_all()
    for func, code in saved:
        func.__code__ = code
    assert dcformat


def seed_corpus(corpus: Path) -> None:
    """Copy every conformance vector into the corpus, and add :func:`written_seeds` (once)."""
    corpus.mkdir(parents=True, exist_ok=True)
    for vector in sorted((ROOT / "spec" / "vectors").glob("*/*.dcf")):
        target = corpus / f"{vector.parent.name}-{vector.name}"
        if not target.exists():
            shutil.copyfile(vector, target)
    for name, data in written_seeds().items():
        target = corpus / f"written-{name}.dcf"
        if not target.exists():
            target.write_bytes(data)


def written_seeds() -> dict[str, bytes]:
    """Small files of the record kinds the vectors have few of: PLANES values (v1.2) of
    every float type, dense and sparse, one block and several, Huffman and packed planes,
    beside a RAW and a GROUPED record. Each is well under ``-max_len``."""
    import numpy as np

    import dcformat
    from dcformat import Dense, EncodedTensor, GroupedValues, PlaneValues, Sparse
    from dcformat.streams import HuffmanCodec, PackedCodec
    from dcformat.testing import WIRE_NUMPY_DTYPES, special_bit_patterns

    rng = np.random.default_rng(0)
    seeds = {}
    for name in ("F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"):
        dtype = WIRE_NUMPY_DTYPES[name]
        storage = np.dtype(f"<u{dtype.itemsize}")
        values = (rng.standard_normal(300) * 0.05).astype(np.float32).astype(dtype)
        bits = values.view(storage)
        specials = np.array(special_bit_patterns(name), storage)
        bits[:specials.size] = specials  # NaN payloads, -0.0, subnormals, infinities
        gaps = np.minimum(rng.geometric(0.3, 120) - 1, 7).astype(np.uint16)
        seeds[f"planes-{name}"] = dcformat.save({
            "dense": EncodedTensor(name, (30, 10), Dense(), PlaneValues(values, block_size=64)),
            "sparse": EncodedTensor(name, (int(gaps.sum()) + gaps.size,), Sparse(3, gaps, PackedCodec()),
                                    PlaneValues(values[:120], block_size=50, codec=PackedCodec())),
            "one-block": EncodedTensor(name, (40,), Dense(), PlaneValues(values[:40], codec=HuffmanCodec(8, 5))),
        })
    weights = rng.standard_normal((16, 16)).astype(np.float32)
    seeds["planes-beside-raw-and-grouped"] = dcformat.save({
        "raw": weights,
        "planes": EncodedTensor("F32", weights.shape, Dense(), PlaneValues(weights.reshape(-1), block_size=100)),
        "grouped": EncodedTensor("F32", (64,), Dense(), GroupedValues(
            16, np.linspace(-1, 1, 8, dtype=np.float32), rng.integers(0, 8, 64).astype(np.uint16),
            np.array([0.5, 2.0], np.float32), np.array([0, 1, 1, 0], np.uint16))),
    }, {"seed": "planes"})
    return seeds


def test_one_input(data: bytes) -> None:
    import numpy as np

    import dcformat
    from dcformat.errors import DCFormatError
    from dcformat.reference import decode_file

    try:
        fast = dcformat.load(data, verify=False, decode_budget=BUDGET)
    except DCFormatError:
        fast = None
    try:
        ref = decode_file(data, verify_checksums=False, decode_budget=BUDGET).tensors
    except DCFormatError:
        ref = None
    if (fast is None) != (ref is None):
        raise AssertionError(f"readers disagree: fast {'refused' if fast is None else 'decoded'}, "
                             f"reference {'refused' if ref is None else 'decoded'}")
    if fast is not None:
        assert list(fast) == list(ref), "tensor names differ"
        for name in fast:
            a, b = fast[name], ref[name]
            assert a.dtype == b.dtype and a.shape == b.shape, f"{name}: dtype/shape differ"
            assert np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8)), f"{name}: bits differ"


if __name__ == "__main__":
    main()
