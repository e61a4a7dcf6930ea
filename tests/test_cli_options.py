"""``dcformat compress`` refuses options that contradict each other: one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dcformat.cli import main
from examples.lenet300 import WEIGHTS_PATH


@pytest.fixture
def lenet(tmp_path) -> Path:
    return Path(shutil.copyfile(WEIGHTS_PATH, tmp_path / "lenet.safetensors"))


def refused(capsys, tmp_path, lenet, *flags) -> str:
    """Run compress with ``flags``; assert the refusal's shape and return its one line."""
    out = tmp_path / "out.dcf"
    code = main(["compress", str(lenet), "-o", str(out), *map(str, flags)])
    stdout, stderr = capsys.readouterr()
    assert code == 2, (flags, stderr)
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    return lines[0]


LOSSY_FLAGS = [("--sparsity", "0.5"), ("--quality", "1"), ("--code-bits", "4"), ("--gap-bits", "4"),
               ("--init", "density"), ("--no-huffman",), ("--bits-per-param", "4"),
               ("--max-rel-error", "0.1"), ("--min-sqnr", "20")]


@pytest.mark.parametrize("flag", LOSSY_FLAGS, ids=[f[0] for f in LOSSY_FLAGS])
def test_lossless_preset_with_a_lossy_option(capsys, tmp_path, lenet, flag):
    line = refused(capsys, tmp_path, lenet, "--preset", "lossless", *flag)
    assert "--preset lossless" in line and flag[0] in line


def test_lossless_preset_with_rd_weights(capsys, tmp_path, lenet):
    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"ip1.weight": 2.0}))
    line = refused(capsys, tmp_path, lenet, "--preset", "lossless", "--rd-weights", weights)
    assert "--preset lossless" in line and "--rd-weights" in line


@pytest.mark.parametrize("preset", ["default", "paper", "lossless", "rd"])
def test_preset_and_settings_file(capsys, tmp_path, lenet, preset):
    settings = tmp_path / "s.json"
    settings.write_text("{}")
    line = refused(capsys, tmp_path, lenet, "--preset", preset, "--settings", settings)
    assert "--preset" in line and "--settings" in line


CONFLICTS = [
    (("--sparsity", "0.5", "--quality", "1"), ("--sparsity", "--quality")),
    (("--max-rel-error", "0.1", "--min-sqnr", "20"), ("--max-rel-error", "--min-sqnr")),
    # the ecq quantizer (a budget or an error bound) does not prune
    (("--bits-per-param", "4", "--sparsity", "0.5"), ("--bits-per-param", "--sparsity")),
    (("--max-rel-error", "0.1", "--quality", "1"), ("--max-rel-error", "--quality")),
    (("--min-sqnr", "20", "--preset", "paper"), ("--min-sqnr", "--preset paper")),
    (("--preset", "rd", "--sparsity", "0.5"), ("--preset rd", "--sparsity")),
    (("--bits-per-param", "4", "--preset", "paper"), ("--bits-per-param", "--preset paper")),
    # k-means options that the ecq quantizer does not use
    (("--bits-per-param", "4", "--init", "density"), ("--init", "--bits-per-param")),
    (("--preset", "rd", "--init", "random"), ("--init", "--preset rd")),
    (("--max-rel-error", "0.1", "--gap-bits", "4"), ("--gap-bits", "--max-rel-error")),
    # a budget planned on Huffman-coded sizes, written at fixed width
    (("--bits-per-param", "4", "--no-huffman"), ("--no-huffman", "--bits-per-param")),
    (("--preset", "rd", "--no-huffman"), ("--no-huffman", "--preset rd")),
    # options with nothing to act on
    (("--gap-bits", "4",), ("--gap-bits", "prune")),
    (("--preset", "default", "--gap-bits", "4"), ("--gap-bits", "prune")),
]


@pytest.mark.parametrize("flags, named", CONFLICTS, ids=[" ".join(f) for f, _ in CONFLICTS])
def test_contradictory_options(capsys, tmp_path, lenet, flags, named):
    line = refused(capsys, tmp_path, lenet, *flags)
    for word in named:
        assert word in line, line


def test_rd_weights_without_a_budget(capsys, tmp_path, lenet):
    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"ip1.weight": 2.0}))
    line = refused(capsys, tmp_path, lenet, "--rd-weights", weights)
    assert "--rd-weights" in line and "--bits-per-param" in line
    line = refused(capsys, tmp_path, lenet, "--rd-weights", weights, "--max-rel-error", "0.1")
    assert "--rd-weights" in line and "--bits-per-param" in line


def test_prototxt_for_an_input_that_is_not_a_net_file(capsys, tmp_path, lenet):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text("name: 'x'\n")
    line = refused(capsys, tmp_path, lenet, "--prototxt", prototxt)
    assert "--prototxt" in line and ".net" in line


def test_settings_file_that_prunes_with_a_budget(capsys, tmp_path, lenet):
    from dcformat.compress import CompressionSettings

    settings = tmp_path / "paper.json"
    settings.write_text(CompressionSettings.preset("paper").to_json())
    line = refused(capsys, tmp_path, lenet, "--settings", settings, "--bits-per-param", "4")
    assert "--bits-per-param" in line and "prune" in line


COMPATIBLE = [
    ("--preset", "paper", "--code-bits", "4", "--gap-bits", "3"),  # flags override a preset
    ("--sparsity", "0.8", "--code-bits", "4", "--gap-bits", "3", "--no-huffman", "--init", "density"),
    ("--preset", "rd", "--bits-per-param", "5", "--max-rel-error", "0.2"),  # a budget with a floor
    ("--min-sqnr", "20", "--code-bits", "10"),
    ("--preset", "lossless", "-q", "--force"),
]


@pytest.mark.parametrize("flags", COMPATIBLE, ids=[" ".join(f) for f in COMPATIBLE])
def test_options_that_agree_still_work(capsys, tmp_path, lenet, flags):
    out = tmp_path / "ok.dcf"
    assert main(["compress", str(lenet), "-o", str(out), "-q", *flags]) == 0, capsys.readouterr().err
    assert out.is_file()


def test_safe_global_for_an_input_that_is_not_a_pytorch_file(capsys, tmp_path, lenet):
    line = refused(capsys, tmp_path, lenet, "--safe-global", "torch.torch_version.TorchVersion")
    assert "--safe-global" in line and ".pt" in line
