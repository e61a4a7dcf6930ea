"""What a checkpoint holds besides its tensors, through the command line: kept, restored, or named once."""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dcformat
from dcformat.cli import main
from examples.lenet300 import WEIGHTS_PATH

from . import real_checkpoints

torch = pytest.importorskip("torch")

from dcformat.convert.torch_io import STRUCTURE_KEY  # noqa: E402

from .test_convert_torch import assert_same, nested_checkpoint  # noqa: E402

#: The Khmer OCR model (CRNN + CTC) of khmer-ocr-ocm 0.1.0 (a 35 MB wheel): a nested
#: ``model_state_dict`` beside its vocabulary (char2idx, idx2char: 983 entries each) and counters.
KHMER = real_checkpoints.Wheel(
    "khmer-ocr-ocm", "0.1.0", "khmer_ocr_ocm-0.1.0-py3-none-any.whl",
    "89cfedfe07dc937fde881878bc7ab9261695392139f8e187885ba091761bbe05",
    {"khmer_ocr_ocm/assets/model.pth": "6e5a2d6adfb4f23b53aa2e6cb1eab9b1c81726e00f920ef0c9965771d7b024ca"})


def wheel_member(wheel, member: str) -> Path:
    """A file of a pinned wheel, fetched once into the real-checkpoint cache (or skipped offline)."""
    target = real_checkpoints.cache_dir() / f"{wheel.package}-{wheel.version}" / member
    if not (target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == wheel.members[member]):
        real_checkpoints._extract(wheel, real_checkpoints._download(wheel), target.parents[len(Path(member).parts) - 1])
    return target


def run(capsys, *argv) -> tuple[int, str, list[str]]:
    """(exit code, stdout, stderr lines without the progress bar's)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, [line for line in re.split(r"[\r\n]", err) if line.strip() and not line.startswith("compressing")]


@pytest.fixture
def nested(tmp_path) -> Path:
    path = tmp_path / "nested.pth"
    torch.save(nested_checkpoint(), path)
    return path


def test_what_cannot_be_kept_is_named_in_one_line(capsys, nested, tmp_path):
    code, _, err = run(capsys, "compress", nested, "-o", tmp_path / "n.dcf", "--preset", "lossless")
    assert code == 0, err
    assert len(err) == 1, err
    assert err[0].startswith("dcformat: note: 2 values") and "'dtype'" in err[0] and "'keys.torch.float16'" in err[0]
    code, _, err = run(capsys, "compress", nested, "-o", tmp_path / "n.dcf", "--preset", "lossless", "--force", "-q")
    assert code == 0 and err == []


def test_decompress_to_pytorch_restores_the_nesting_and_the_values(capsys, nested, tmp_path):
    dcf, back = tmp_path / "n.dcf", tmp_path / "back.pth"
    assert run(capsys, "compress", nested, "-o", dcf, "--preset", "lossless", "-q")[0] == 0
    assert STRUCTURE_KEY in dcformat.safe_open(dcf).metadata()
    code, out, err = run(capsys, "decompress", dcf, "-o", back)
    assert code == 0 and err == [], err
    assert f"wrote {back}" in out
    expected = nested_checkpoint()
    del expected["dtype"]
    del expected["keys"][torch.float16]
    assert_same(torch.load(back, weights_only=True), expected)


def test_the_structure_survives_a_safetensors_round_trip(capsys, nested, tmp_path):
    dcf, st, dcf2, back = (tmp_path / n for n in ("a.dcf", "a.safetensors", "b.dcf", "b.pt"))
    assert run(capsys, "compress", nested, "-o", dcf, "--preset", "lossless", "-q")[0] == 0
    assert run(capsys, "decompress", dcf, "-o", st)[0] == 0
    assert run(capsys, "compress", st, "-o", dcf2, "--preset", "lossless", "-q")[0] == 0
    assert run(capsys, "decompress", dcf2, "-o", back)[0] == 0
    assert torch.load(back, weights_only=True)["idx2char"] == {1: "\t", 2: " ", 3: "\u1780"}


def test_decompressing_to_pytorch_says_once_that_the_metadata_stays_behind(capsys, tmp_path):
    dcf = tmp_path / "lenet.dcf"
    assert run(capsys, "compress", WEIGHTS_PATH, "-o", dcf, "--preset", "lossless", "-q")[0] == 0
    keys = list(dcformat.safe_open(dcf).metadata())
    assert keys
    code, _, err = run(capsys, "decompress", dcf, "-o", tmp_path / "l.pt")
    assert code == 0 and len(err) == 1, err
    assert err[0].startswith("dcformat: note:") and ".safetensors" in err[0]
    assert f"({len(keys)} entries: {', '.join(map(repr, keys[:3]))} and {len(keys) - 3} more)" in err[0]
    assert run(capsys, "decompress", dcf, "-o", tmp_path / "q.pt", "-q")[2] == []
    assert run(capsys, "decompress", dcf, "-o", tmp_path / "l.safetensors")[2] == []  # kept there


def test_khmer_ocr_vocabulary_and_nesting_come_back(capsys, tmp_path):
    src = wheel_member(KHMER, "khmer_ocr_ocm/assets/model.pth")
    assert zipfile.is_zipfile(src)
    dcf, back = tmp_path / "khmer.dcf", tmp_path / "khmer.pth"
    code, out, err = run(capsys, "compress", src, "-o", dcf, "--preset", "lossless")
    assert code == 0, err
    assert err == []  # everything beside the tensors is JSON: no note (there were 1,974 lines)
    assert run(capsys, "decompress", dcf, "-o", back)[0] == 0

    original = torch.load(src, weights_only=True, map_location="cpu")
    restored = torch.load(back, weights_only=True)
    assert list(restored) == list(original)
    assert len(restored["char2idx"]) == 983 and restored["char2idx"] == original["char2idx"]
    assert restored["idx2char"] == original["idx2char"] and all(isinstance(k, int) for k in restored["idx2char"])
    for key in ("epoch", "cer", "wer", "num_classes", "finetuned_from", "vocab_expanded", "dataset"):
        assert restored[key] == original[key], key
    state = restored["model_state_dict"]
    assert list(state) == list(original["model_state_dict"])
    assert "cnn.0.weight" in state
    for name, tensor in original["model_state_dict"].items():
        assert torch.equal(state[name], tensor), name
    assert np.array_equal(dcformat.load_file(dcf)["model_state_dict.cnn.0.weight"],
                          original["model_state_dict"]["cnn.0.weight"].numpy())


# --- a trusted checkpoint that needs one more global ------------------------------------------

#: criscross 0.1.8 (a 70 MB wheel) ships its CRISPR off-target model as a zstd-compressed
#: torch.save file whose metadata holds a torch.torch_version.TorchVersion.
CRISCROSS = real_checkpoints.Wheel(
    "criscross", "0.1.8", "criscross-0.1.8-py3-none-any.whl",
    "b193444496a1c3b0881ae2e37eab262021b84f7ae7559b602b28ecc7b7f88734",
    {"criscross/_weights/criscross_seqonly_finetuned.fp16.pt.zst":
         "5d75029bb0d2cab4e92fdc448453ff623ae712d7900d1d9d91f017c9f0765923"})


@pytest.fixture
def versioned(tmp_path) -> Path:
    path = tmp_path / "versioned.pt"
    torch.save({"state_dict": {"w": torch.ones(2, 2)}, "meta": {"torch_version": torch.__version__}}, path)
    return path


def test_a_missing_global_names_the_option(capsys, versioned, tmp_path):
    code, _, err = run(capsys, "compress", versioned, "-o", tmp_path / "v.dcf", "-q")
    assert code == 2 and len(err) == 1, err
    assert "--safe-global torch.torch_version.TorchVersion" in err[0] and str(versioned) in err[0]
    assert not (tmp_path / "v.dcf").exists()


def test_safe_global_lets_a_trusted_checkpoint_through(capsys, versioned, tmp_path):
    dcf, back = tmp_path / "v.dcf", tmp_path / "back.pt"
    code, _, err = run(capsys, "compress", versioned, "-o", dcf, "--preset", "lossless", "-q",
                       "--safe-global", "torch.torch_version.TorchVersion", "--safe-global", "collections.OrderedDict")
    assert code == 0, err
    assert run(capsys, "decompress", dcf, "-o", back)[0] == 0
    assert torch.load(back, weights_only=True)["meta"] == {"torch_version": str(torch.__version__)}


@pytest.mark.parametrize("name", ["no.such.Thing", "TorchVersion"])
def test_a_safe_global_that_does_not_resolve_is_a_usage_error(capsys, versioned, tmp_path, name):
    code, _, err = run(capsys, "compress", versioned, "-o", tmp_path / "v.dcf", "--safe-global", name)
    assert code == 2 and len(err) == 1 and name in err[0], err


def test_safe_global_for_an_input_that_is_no_pytorch_file(capsys, tmp_path):
    code, _, err = run(capsys, "compress", WEIGHTS_PATH, "-o", tmp_path / "x.dcf",
                       "--safe-global", "torch.torch_version.TorchVersion")
    assert code == 2 and len(err) == 1 and "--safe-global" in err[0] and ".safetensors" in err[0], err


def _unzstd(src: Path, dest: Path) -> Path:
    if shutil.which("zstd") is None:
        pytest.skip("the zstd command is not installed (apt-get install zstd)")
    import subprocess

    subprocess.run(["zstd", "-d", "-q", "-f", str(src), "-o", str(dest)], check=True, timeout=120)
    return dest


def test_criscross_needs_one_safe_global(capsys, tmp_path):
    src = _unzstd(wheel_member(CRISCROSS, "criscross/_weights/criscross_seqonly_finetuned.fp16.pt.zst"),
                  tmp_path / "criscross.pt")
    code, _, err = run(capsys, "compress", src, "-o", tmp_path / "c.dcf", "--preset", "lossless", "-q")
    assert code == 2 and "--safe-global torch.torch_version.TorchVersion" in err[0]
    code, _, err = run(capsys, "compress", src, "-o", tmp_path / "c.dcf", "--preset", "lossless", "-q",
                       "--safe-global", "torch.torch_version.TorchVersion")
    assert code == 0, err
    with dcformat.safe_open(tmp_path / "c.dcf") as f:
        assert "torch_version" in f.metadata()[STRUCTURE_KEY]
        assert all(name.startswith("state_dict.") for name in f.keys())
