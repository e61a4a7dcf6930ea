"""Dependency-free loader for the MNIST IDX files (numpy + gzip + struct only).

The data set lives outside the repository, in the shared folder beside it::

    <repo>/../shared/datasets/mnist/
        train-images.idx3-ubyte.gz   train-labels.idx1-ubyte.gz
        t10k-images.idx3-ubyte.gz    t10k-labels.idx1-ubyte.gz

The directory is chosen, first match wins, from: the ``root`` argument, the
environment variable ``DCFORMAT_MNIST_DIR``, then the default above.

Fashion-MNIST (Zalando; same IDX layout, 28x28 uint8, labels 0..9) loads the same way
with ``root=FASHION_MNIST_DIR``, where the Debian package puts it
(``apt-get install dataset-fashion-mnist``). Its files are spelled
``train-images-idx3-ubyte.gz`` (a dash where MNIST has a dot); both spellings are tried.

IDX format: a big-endian uint32 magic (2051 for images, 2049 for labels),
then one big-endian uint32 per dimension (3 for images: N, rows, cols; 1 for
labels: N), then the raw uint8 bytes in C order. Files may be gzipped (``.gz``)
or plain; both names are tried.

Usage::

    from examples.mnist import load_mnist          # or: from mnist import load_mnist
    images, labels = load_mnist("train")           # uint8 [60000, 28, 28], uint8 [60000]
    images, labels = load_mnist("test")            # uint8 [10000, 28, 28], uint8 [10000]
    images, labels = load_mnist("test", FASHION_MNIST_DIR)   # Fashion-MNIST, same shapes
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_MNIST_DIR",
    "ENV_VAR",
    "FASHION_MNIST_DIR",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "SPLITS",
    "load_mnist",
    "mnist_dir",
    "parse_idx",
    "read_idx",
]

ENV_VAR = "DCFORMAT_MNIST_DIR"
DEFAULT_MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist

IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension

#: split name -> (file stem prefix, expected number of examples)
SPLITS = {
    "train": ("train", 60000),
    "test": ("t10k", 10000),
}
ROWS = COLS = 28


def mnist_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the MNIST directory: ``root``, else ``$DCFORMAT_MNIST_DIR``, else the default."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_MNIST_DIR


def parse_idx(data: bytes, expected_magic: int, *, name: str = "<bytes>") -> np.ndarray:
    """Parse an (uncompressed) IDX byte string of uint8 data.

    Validates the magic number and that the payload size matches the header
    exactly; raises ``ValueError`` with a message naming ``name`` otherwise.
    """
    if len(data) < 4:
        raise ValueError(f"{name}: truncated IDX file ({len(data)} bytes, no magic number)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise ValueError(
            f"{name}: bad IDX magic {magic} (0x{magic:08x}), expected {expected_magic} "
            f"(0x{expected_magic:08x})"
        )
    ndim = magic & 0xFF
    dtype_code = (magic >> 8) & 0xFF
    if dtype_code != 0x08:
        raise ValueError(f"{name}: IDX element type 0x{dtype_code:02x} is not uint8 (0x08)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"{name}: truncated IDX header ({len(data)} bytes, need {header_len} for {ndim} dims)"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = 1
    for d in dims:
        expected *= d
    payload = len(data) - header_len
    if payload != expected:
        raise ValueError(
            f"{name}: IDX payload is {payload} bytes but dimensions {tuple(dims)} "
            f"need {expected} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def read_idx(path: str | os.PathLike[str], expected_magic: int) -> np.ndarray:
    """Read one IDX file (gzipped if its name ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read IDX file: {exc}") from exc
    return parse_idx(data, expected_magic, name=str(path))


def _find(directory: Path, stem: str) -> Path:
    # MNIST spells "train-images.idx3-ubyte", Fashion-MNIST "train-images-idx3-ubyte".
    for spelling in (stem, stem.replace(".idx", "-idx")):
        for candidate in (directory / f"{spelling}.gz", directory / spelling):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"MNIST file {stem}(.gz) not found in {directory}; pass root=... or set ${ENV_VAR}"
    )


def load_mnist(
    split: str = "train", root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load one MNIST split.

    Returns ``(images, labels)``: ``images`` is uint8 ``[N, 28, 28]`` (0 = background,
    255 = ink), ``labels`` is uint8 ``[N]`` with values 0..9; N is 60000 for
    ``"train"`` and 10000 for ``"test"``.

    Raises ``ValueError`` for an unknown split or a malformed file, and
    ``FileNotFoundError`` when the files are missing.
    """
    try:
        prefix, n_expected = SPLITS[split]
    except KeyError:
        raise ValueError(f"unknown MNIST split {split!r}; expected one of {sorted(SPLITS)}") from None
    directory = mnist_dir(root)
    images_path = _find(directory, f"{prefix}-images.idx3-ubyte")
    labels_path = _find(directory, f"{prefix}-labels.idx1-ubyte")
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape != (n_expected, ROWS, COLS):
        raise ValueError(
            f"{images_path}: images have shape {images.shape}, expected ({n_expected}, {ROWS}, {COLS})"
        )
    if labels.shape != (n_expected,):
        raise ValueError(f"{labels_path}: labels have shape {labels.shape}, expected ({n_expected},)")
    if labels.size and int(labels.max()) > 9:
        raise ValueError(f"{labels_path}: label value {int(labels.max())} out of range 0..9")
    return images, labels


if __name__ == "__main__":  # quick self-check: python examples/mnist.py
    for _split in SPLITS:
        _x, _y = load_mnist(_split)
        print(_split, _x.shape, _x.dtype, _y.shape, np.bincount(_y, minlength=10).tolist())
