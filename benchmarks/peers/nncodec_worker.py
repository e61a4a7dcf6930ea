"""One NNCodec round trip, timed: runs inside NNCodec's own venv (numpy<2), not dcformat's.

    python nncodec_worker.py IN.npz OUT_DIR --qp -38 [--no-dq] [--lambda-scale 0]
                             [--nonweight-qp -75] [--qp-density 2] [--opt-qp]
                             [--codebook-mode 0] [--decode-repeats 1]

``IN.npz`` maps tensor names to float32 or int32 arrays (the only dtypes NNCodec takes;
``benchmarks/peers/nncodec.py`` converts the rest). The worker compresses them with
``nnc.compress`` into ``OUT_DIR/bitstream.nnc``, decompresses that file with
``nnc.decompress``, and writes ``OUT_DIR/decoded.npz`` (each array in its input shape)
and, last, ``OUT_DIR/result.json``: bitstream bytes, encode and decode seconds, versions
and the settings used. Exit status 0 on success; 3 when NNCodec refuses the input (it
raises ``SystemExit``), with its message in ``result.json`` under ``"error"``.

Timings are single-threaded: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` are set to 1 before numpy loads and ``torch.set_num_threads(1)``
(NNCodec's codec path is numpy plus its C++ extension, which has no threads of its own,
so this only keeps BLAS from taking other cores). Encode time is the whole
``nnc.compress`` call (quantization, CABAC coding, writing the file); decode time is the
whole ``nnc.decompress`` call from the file path (reading, CABAC decoding,
dequantization), best of ``--decode-repeats``. Each is given as wall time and as the
process's CPU time: on a shared machine the CPU time is the steadier figure.

What NNCodec 2.1.3 does with a plain dict of arrays (read from its source,
``nncodec/nnc/compression.py`` and ``nnc_core/``), which is what a fair comparison needs:

- **Weights vs the rest.** With no ``block_id_and_param_type`` (there is none for a dict),
  ``NNRModel`` types every tensor with 2 or more dimensions as ``"weight"`` and every
  1-D tensor (biases, LayerNorm and BatchNorm vectors, running statistics) as
  ``"unspecified"``. Weights are quantized at ``qp``; the others at ``nonweight_qp``
  (default -75: a step of 2.4e-6, almost lossless, yet still CABAC-coded).
- **0-d scalars** crash ``nnc.compress`` (``IndexError`` in ``coder/baseline.py``): the
  worker hands them over as 1-element vectors and restores their shape after decoding.
- **Step size.** ``qp`` is one value for all weight tensors (no per-tensor adaptation
  unless ``opt_qp`` or ``qp_per_tensor``). With ``qp_density`` = 2 the step is
  ``(4 + (qp & 3)) * 2**((qp >> 2) - 2)``: qp -38 gives 0.00146, each +4 doubles it.
- **Dependent quantization** (``use_dq``, default on): trellis-coded quantization with
  two interleaved quantizers and a 4-state machine (``quantizeTCQ`` in the extension),
  the main source of NNCodec's rate-distortion advantage over plain uniform rounding.
  ``--no-dq`` turns it off.
- **Rate-distortion optimised quantization** (``lambda_scale``, default 0): off by
  default; a positive value lets the quantizer trade distortion for CABAC rate.
- **int32 tensors** take the ``"skip"`` path: not quantized, their integers CABAC-coded
  losslessly.
- **codebook_mode** 0 (default) is uniform quantization; 1 and 2 build a codebook of the
  quantized levels (NNR's codebook tool). ``param_opt`` (on) lets CABAC pick its binarization
  parameters per tensor; ``scan_order`` 0 (no block scan, no entry points) is kept.
- **Not used here**: batch-norm folding (``bnf``), local scaling adaptation (``lsa``),
  fine-tuning, inference-optimised qp (``ioq``): each needs a model or training data.
- The bitstream is self-describing: tensor names, shapes and qps travel in it, so its
  size is the whole stored size.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # One thread for BLAS and OpenMP, set before numpy loads.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"
    # This folder holds dcformat's host-side nncodec.py, which would shadow the real package.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BITSTREAM = "bitstream.nnc"
DECODED = "decoded.npz"
RESULT = "result.json"
EXIT_REFUSED = 3


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arrays", type=Path, help=".npz of float32 / int32 arrays")
    ap.add_argument("out_dir", type=Path, help="where bitstream.nnc, decoded.npz and result.json go")
    ap.add_argument("--qp", type=int, required=True, help="quantization parameter of weight tensors")
    ap.add_argument("--no-dq", dest="use_dq", action="store_false", help="turn dependent quantization off")
    ap.add_argument("--lambda-scale", type=float, default=0.0, help="RDOQ strength (0: off)")
    ap.add_argument("--nonweight-qp", type=int, default=-75, help="qp of 1-D tensors")
    ap.add_argument("--qp-density", type=int, default=2, help="qp steps per octave = 2**qp_density")
    ap.add_argument("--opt-qp", action="store_true", help="NNCodec's per-tensor qp heuristic")
    ap.add_argument("--codebook-mode", type=int, default=0, choices=(0, 1, 2), help="0 uniform, 1-2 codebook")
    ap.add_argument("--decode-repeats", type=int, default=1, help="decode this many times, keep the best")
    return ap.parse_args(argv)


def settings_of(args) -> dict:
    """The keyword arguments of ``nnc.compress`` that the command line sets."""
    return dict(qp=args.qp, use_dq=args.use_dq, lambda_scale=args.lambda_scale, nonweight_qp=args.nonweight_qp,
                qp_density=args.qp_density, opt_qp=args.opt_qp, codebook_mode=args.codebook_mode)


def write_npz(path: Path, arrays: dict) -> None:
    """``np.savez`` for any tensor names (savez's own keyword arguments cannot be names)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, array in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)


def write_result(out_dir: Path, result: dict) -> None:
    # result.json appears complete or not at all: the host reads its presence as success.
    tmp = out_dir / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out_dir / RESULT)


def timed(fn):
    """``(fn(), wall seconds, CPU seconds of this process)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def timed_decode(nnc, path: Path, repeats: int):
    """The decoded arrays and the wall and CPU seconds of the fastest of ``repeats`` decodes."""
    best = (None, float("inf"), float("inf"))
    for _ in range(max(1, repeats)):
        run = timed(lambda: nnc.decompress(str(path)))
        best = min(best, run, key=lambda r: r[1])
    return best


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from importlib.metadata import version

    from nncodec import nnc

    with np.load(args.arrays) as npz:
        arrays = {k: npz[k] for k in npz.files}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    bitstream = args.out_dir / BITSTREAM
    settings = settings_of(args)
    result = dict(nncodec=version("nncodec"), numpy=np.__version__, torch=torch.__version__,
                  threads=1, settings=settings, tensors=len(arrays),
                  input_bytes=int(sum(a.nbytes for a in arrays.values())))
    try:
        _, encode_s, encode_cpu_s = timed(lambda: nnc.compress(
            {k: a.reshape(1) if a.ndim == 0 else a for k, a in arrays.items()},
            bitstream_path=str(bitstream), verbose=False, **settings))
        decoded, decode_s, decode_cpu_s = timed_decode(nnc, bitstream, args.decode_repeats)
    except SystemExit as exc:  # NNCodec's way of refusing input
        write_result(args.out_dir, dict(result, error=str(exc)))
        print(f"NNCodec refused the input: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    missing = sorted(set(arrays) - set(decoded))
    if missing:
        write_result(args.out_dir, dict(result, error=f"decoded bitstream lacks {missing[:5]}"))
        return EXIT_REFUSED
    # 0-d scalars went in as 1-element vectors: give every array its input shape back.
    write_npz(args.out_dir / DECODED, {k: np.asarray(decoded[k]).reshape(a.shape) for k, a in arrays.items()})
    write_result(args.out_dir, dict(result, bitstream_bytes=bitstream.stat().st_size, encode_s=encode_s,
                                    decode_s=decode_s, encode_cpu_s=encode_cpu_s, decode_cpu_s=decode_cpu_s,
                                    decode_repeats=args.decode_repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
