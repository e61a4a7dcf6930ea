"""NNCodec 2.1.3 (MPEG NNR, DeepCABAC) beside dcformat: a timed round trip in its own venv.

NNCodec needs numpy<2 and dcformat's venv has numpy 2, so NNCodec lives in a venv of its
own (``bash benchmarks/peers/install_nncodec.sh``) and :func:`roundtrip` runs
``nncodec_worker.py`` there in a subprocess, passing arrays through ``.npz`` files. The
worker's docstring says what NNCodec does with the arrays (weights vs 1-D tensors, qp,
dependent quantization) and how it is timed (one thread, whole ``nnc.compress`` and
``nnc.decompress`` calls).

The API, kept stable for ``benchmarks/posttraining.py`` and ``benchmarks/decode_speed.py``::

    python_path() -> Path | None
    roundtrip(arrays: Mapping[str, np.ndarray], qp: int, *, use_dq: bool = True,
              lambda_scale: float = 0.0, nonweight_qp: int = -75, qp_density: int = 2,
              opt_qp: bool = False, codebook_mode: int = 0, decode_repeats: int = 1,
              timeout: float | None = 3600) -> NNCodecResult

Dtypes: NNCodec takes only float32 and int32. Other floats (float16, float64, bfloat16
and the other ml_dtypes floats) go in as float32 and are quantized like any weight;
integer and bool tensors whose values fit int32 go in as int32, which NNCodec codes
losslessly. Both come back in their own dtype. Anything else (an int64 beyond int32, a
complex or string array, an empty tensor) is not sent: it is returned unchanged and its
bytes are counted in ``passthrough_bytes``, as a container would have to store it raw.

Examples
--------
>>> import numpy as np
>>> from peers import nncodec
>>> if nncodec.python_path() is not None:
...     w = {"fc.weight": np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)}
...     r = nncodec.roundtrip(w, qp=-38)
...     assert r.decoded["fc.weight"].shape == (64, 64) and r.stored_bytes < w["fc.weight"].nbytes
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcformat.errors import UsageError

from .nncodec_worker import DECODED, RESULT, write_npz

HERE = Path(__file__).resolve().parent
WORKER = HERE / "nncodec_worker.py"
DEFAULT_VENV = HERE.parent / ".cache" / "nncodec-venv"
ENV_VAR = "DCFORMAT_NNCODEC_PYTHON"
INSTALL_COMMAND = "bash benchmarks/peers/install_nncodec.sh"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
INT32 = np.iinfo(np.int32)



class NNCodecNotInstalled(RuntimeError):
    """No NNCodec venv: neither ``$DCFORMAT_NNCODEC_PYTHON`` nor the default one exists."""

    def __init__(self):
        super().__init__(f"NNCodec is not installed: run `{INSTALL_COMMAND}` "
                         f"(or set {ENV_VAR} to a python that imports nncodec 2.1.3)")


class NNCodecFailed(RuntimeError):
    """The worker ran and did not finish its round trip; the message carries its stderr."""


@dataclass
class NNCodecResult:
    """One NNCodec round trip.

    ``bitstream_bytes`` is the size of NNCodec's bitstream file (self-describing: names,
    shapes and qps are in it); ``decoded`` maps every input name to its decoded array, in
    the input's dtype and shape; ``encode_s`` and ``decode_s`` are single-thread wall
    times of the whole ``nnc.compress`` and ``nnc.decompress`` calls (decode: best of
    ``decode_repeats``), and ``encode_cpu_s`` / ``decode_cpu_s`` the CPU time of the same
    calls (steadier on a shared machine). ``passthrough_bytes`` counts tensors NNCodec
    cannot take, kept raw; ``settings`` are the ``nnc.compress`` arguments used.
    """

    bitstream_bytes: int
    decoded: dict[str, np.ndarray]
    encode_s: float
    decode_s: float
    passthrough_bytes: int = 0
    settings: dict = field(default_factory=dict)
    encode_cpu_s: float = float("nan")
    decode_cpu_s: float = float("nan")

    @property
    def stored_bytes(self) -> int:
        """What storing the model this way takes: the bitstream plus the raw tensors."""
        return self.bitstream_bytes + self.passthrough_bytes


def python_path() -> Path | None:
    """The python of NNCodec's venv: ``$DCFORMAT_NNCODEC_PYTHON`` if set, else the default venv's."""
    given = os.environ.get(ENV_VAR)
    path = Path(given) if given else DEFAULT_VENV / "bin" / "python"
    return path if path.is_file() else None


def roundtrip(arrays: Mapping[str, np.ndarray], qp: int, *, use_dq: bool = True, lambda_scale: float = 0.0,
              nonweight_qp: int = -75, qp_density: int = 2, opt_qp: bool = False, codebook_mode: int = 0,
              decode_repeats: int = 1, timeout: float | None = 3600) -> NNCodecResult:
    """Compress ``arrays`` with NNCodec at ``qp``, decompress, and time both (see the module docstring).

    Raises :class:`NNCodecNotInstalled` without the venv, :class:`NNCodecFailed` when the
    worker fails (NNCodec refused the input, crashed, or ran past ``timeout`` seconds),
    and :class:`dcformat.errors.UsageError` for an empty mapping or a value that is not
    an array.
    """
    python = python_path()
    if python is None:
        raise NNCodecNotInstalled()
    sent, passthrough = split_by_dtype(arrays)
    options = [f"--qp={qp}", f"--lambda-scale={lambda_scale}", f"--nonweight-qp={nonweight_qp}",
               f"--qp-density={qp_density}", f"--codebook-mode={codebook_mode}",
               f"--decode-repeats={decode_repeats}"] + ([] if use_dq else ["--no-dq"]) + (["--opt-qp"] if opt_qp else [])
    with tempfile.TemporaryDirectory(prefix="nncodec-") as tmp:
        inputs, out_dir = Path(tmp) / "arrays.npz", Path(tmp) / "out"
        write_npz(inputs, sent)
        result = run_worker(python, [str(inputs), str(out_dir), *options], out_dir, timeout)
        with np.load(out_dir / DECODED) as npz:
            decoded = {k: npz[k].astype(arrays[k].dtype, copy=False) for k in npz.files}
    decoded.update(passthrough)
    return NNCodecResult(bitstream_bytes=result["bitstream_bytes"], decoded={k: decoded[k] for k in arrays},
                         encode_s=result["encode_s"], decode_s=result["decode_s"],
                         passthrough_bytes=sum(a.nbytes for a in passthrough.values()), settings=result["settings"],
                         encode_cpu_s=result["encode_cpu_s"], decode_cpu_s=result["decode_cpu_s"])


def split_by_dtype(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(sent, passthrough)``: the arrays NNCodec takes, as float32 / int32, and the rest, unchanged."""
    if not arrays:
        raise UsageError("no arrays to compress")
    sent, passthrough = {}, {}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise UsageError(f"tensor {name!r} is a {type(array).__name__}, not a numpy array")
        as_nncodec = nncodec_dtype(array)
        if as_nncodec is None:
            passthrough[name] = array
        else:
            sent[name] = array.astype(as_nncodec, order="C", copy=False)
    if not sent:
        raise UsageError("none of the arrays has a dtype NNCodec can take")
    return sent, passthrough


def nncodec_dtype(array: np.ndarray) -> type | None:
    """float32 for any float, int32 for integers and bools that fit it, None for the rest."""
    kind = array.dtype.kind
    if array.size == 0:  # nothing to code, and NNCodec's scans assume a first element
        return None
    if kind == "f" or (kind == "V" and is_ml_float(array.dtype)):
        return np.float32
    if kind in "iub" and INT32.min <= array.min() and array.max() <= INT32.max:
        return np.int32
    return None


def is_ml_float(dtype: np.dtype) -> bool:
    """bfloat16 and the float8 types of ml_dtypes, which numpy reports as kind 'V'."""
    try:
        import ml_dtypes

        ml_dtypes.finfo(dtype)
        return True
    except (ImportError, ValueError, TypeError):
        return False


def run_worker(python: Path, argv: list[str], out_dir: Path, timeout: float | None) -> dict:
    env = dict(os.environ, **ONE_THREAD)
    try:
        proc = subprocess.run([str(python), str(WORKER), *argv], capture_output=True, text=True,
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NNCodecFailed(f"NNCodec worker ran past {timeout} s") from None
    result_file = out_dir / RESULT
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if proc.returncode or "error" in result:
        detail = result.get("error") or proc.stderr.strip()[-2000:]
        raise NNCodecFailed(f"NNCodec worker exited with status {proc.returncode}: {detail}")
    return result
