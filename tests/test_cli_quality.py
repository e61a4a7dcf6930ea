"""``dcformat compress`` warns, in one line on stderr, when a tensor lands below the quality floor."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dcformat.cli import QUALITY_FLOOR_DB, main
from examples.lenet300 import WEIGHTS_PATH


@pytest.fixture
def lenet(tmp_path) -> Path:
    return Path(shutil.copyfile(WEIGHTS_PATH, tmp_path / "lenet.safetensors"))


def compress(capsys, lenet, *flags) -> tuple[str, str]:
    """(stdout, stderr without the progress bar's lines)."""
    code = main(["compress", str(lenet), "-o", str(lenet.with_suffix(".dcf")), "--force", *flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, "".join(line + "\n" for line in re.split(r"[\r\n]", err)
                        if line.strip() and not line.startswith("compressing"))


def test_paper_preset_without_retraining_warns_once_and_points_to_retraining(capsys, lenet):
    # LeNet-300-100 pruned 90 % and shared on 5 bits without retraining: 3.6-4.8 dB
    _, err = compress(capsys, lenet, "--preset", "paper")
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("dcformat: warning:")
    assert f"{QUALITY_FLOOR_DB:g} dB" in line and re.search(r"lowest: ip2\.weight, 3\.\d dB", line)
    assert "--preset paper" in line and "retrain" in line
    for name in ("dcformat.training", "dsd", "quantize", "export_dcf"):
        assert name in line


def test_any_result_below_the_floor_warns(capsys, lenet):
    _, err = compress(capsys, lenet, "--code-bits", "1")  # two values per tensor
    assert err.count("\n") == 1 and "warning" in err and "dcformat.training" in err
    assert "--preset paper" not in err


def test_quiet_suppresses_the_warning(capsys, lenet):
    out, err = compress(capsys, lenet, "--preset", "paper", "-q")
    assert err == "" and out.startswith("wrote ")


@pytest.mark.parametrize("flags", [(), ("--preset", "lossless")], ids=["default", "lossless"])
def test_no_warning_above_the_floor(capsys, lenet, flags):
    _, err = compress(capsys, lenet, *flags)
    assert err == ""
