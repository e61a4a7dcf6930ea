#!/usr/bin/env bash
# Install NNCodec 2.1.3 (Fraunhofer HHI's MPEG NNR / DeepCABAC codec) into a venv of its own,
# for the side-by-side benchmarks (issues 5 and 6).
#
#     bash benchmarks/peers/install_nncodec.sh [VENV]      # default benchmarks/.cache/nncodec-venv
#
# Then benchmarks/peers/nncodec.py finds it (or set DCFORMAT_NNCODEC_PYTHON to its python).
#
# Why a venv of its own: NNCodec requires numpy<2, dcformat's venv has numpy 2; the two talk
# through .npz files (benchmarks/peers/nncodec_worker.py runs inside this venv).
#
# What goes in, and what does not:
# - torch==2.13.0, pinned and first: pip takes the local CPU wheel for exactly this version (an
#   unpinned torch pulls gigabytes of CUDA packages);
# - numpy<2 and NNCodec itself, an sdist whose C++ extension (DeepCABAC, pybind11) is compiled
#   here with g++, with --no-deps;
# - nothing else: NNCodec's codec path (nnc.compress / nnc.decompress on a dict of numpy arrays)
#   runs only numpy, torch and the extension. Its other install_requires (torchvision, opencv,
#   scikit-learn, pandas, h5py, tqdm, click, ptflops, torchmetrics) serve its training loops,
#   data sets, model zoo and TensorFlow loading, some of which are imported when `nncodec.nnc`
#   is. Those imports get a stub package each (torchvision has no CPU build for torch 2.13.0
#   at all); a stub accepts being imported, subclassed and called at import time, and raises
#   ImportError as soon as anything real is asked of it.
#
# Idempotent: a venv whose NNCodec imports and round-trips a tensor is left as it is.
# Needs only PyPI (and g++).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$(realpath -m "${1:-$HERE/../.cache/nncodec-venv}")"
PYTHON="${PYTHON:-python3}"
NNCODEC_VERSION="2.1.3"
STUBBED="torchvision torchvision.datasets torchvision.transforms torchvision.models cv2 sklearn
sklearn.metrics pandas h5py tqdm"

check() {
    # A round trip of one small tensor: proves the extension loads and the codec works.
    "$VENV/bin/python" - <<'EOF'
import numpy as np
from nncodec import nnc
w = {"w": np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)}
bits = nnc.compress(w, bitstream_path=None, qp=-38, return_bitstream=True, verbose=False)
out = nnc.decompress(bytearray(bits))
assert np.abs(out["w"] - w["w"]).max() < 0.01, "NNCodec round trip is off"
EOF
}

if [ -x "$VENV/bin/python" ] && check 2>/dev/null; then
    echo "NNCodec $NNCODEC_VERSION already installed: $VENV/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet)
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" "numpy<2" "pybind11>=2.6.2"
"${PIP[@]}" --no-deps "nncodec==$NNCODEC_VERSION"

# The stub packages, one per module named in STUBBED, in the venv's site-packages.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
for module in $STUBBED; do
    dir="$SITE/${module//.//}"
    mkdir -p "$dir"
    cat > "$dir/__init__.py" <<EOF
"""Stub for '$module', written by dcformat's benchmarks/peers/install_nncodec.sh.

NNCodec imports it only in its training, data-set and model-zoo code, which the codec
path (nnc.compress / nnc.decompress on a dict of numpy arrays) never runs.
"""


class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return cls


class _Stub(metaclass=_Meta):
    """Anything: a class to subclass, a function to call, a namespace to look into."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        raise ImportError("'$module' is a stub in this venv: NNCodec's training code is not installed")

    def __getattr__(self, name):
        return _Stub


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Stub
EOF
done

check
echo "NNCodec $NNCODEC_VERSION installed: $VENV/bin/python"
