"""The ``dcformat`` command, run in-process through ``cli.main`` (and once as the installed script)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dcformat
from dcformat.cli import main
from examples.lenet300 import WEIGHTS_PATH, evaluate

from .real_checkpoints import copy_as, raw_safetensors

WEIGHTS = ("ip1.weight", "ip2.weight", "ip3.weight")


@pytest.fixture
def lenet(tmp_path) -> Path:
    """A private copy of the bundled LeNet-300-100 (tests write beside it)."""
    return Path(shutil.copyfile(WEIGHTS_PATH, tmp_path / "lenet.safetensors"))


@pytest.fixture(scope="module")
def paper_dcf(tmp_path_factory) -> Path:
    """The bundled LeNet compressed once with ``--preset paper``, shared by the read-only tests."""
    path = tmp_path_factory.mktemp("paper") / "lenet.dcf"
    assert main(["compress", str(WEIGHTS_PATH), "-o", str(path), "--preset", "paper", "-q"]) == 0
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# --- compress, info, verify -------------------------------------------------------------


def test_compress_paper_prints_a_row_per_layer_and_a_total(capsys, lenet, tmp_path):
    out_path = tmp_path / "lenet.dcf"
    code, out, err = run(capsys, "compress", lenet, "-o", out_path, "--preset", "paper")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line and line.split()[0] in
            {*WEIGHTS, "ip1.bias", "ip2.bias", "ip3.bias"}}
    assert set(WEIGHTS) <= set(rows)
    # fc layers of at least min_elements are pruned to ~10 % and shared on 5 bits; ip3 (1000
    # elements) is below the preset's min_elements and stays exact, as float planes (smaller than raw).
    assert "sparse+codebook" in rows["ip1.weight"] and "sparse+codebook" in rows["ip2.weight"]
    assert "planes" in rows["ip3.weight"]
    ratio = float(re.search(r"\s([\d.]+)x(\s|$)", rows["ip1.weight"]).group(1))
    assert ratio > 20
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert float(re.search(r"([\d.]+)x\s*$", total).group(1)) > 10
    summary = re.search(r"wrote (.+): ([\d,]+) bytes, ([\d.]+)x smaller than dense", out)
    assert summary and Path(summary.group(1)) == out_path
    assert int(summary.group(2).replace(",", "")) == out_path.stat().st_size
    assert float(summary.group(3)) > 10


def test_compress_quiet_prints_only_the_summary(capsys, lenet, tmp_path):
    code, out, _ = run(capsys, "compress", lenet, "-o", tmp_path / "q.dcf", "--preset", "paper", "-q")
    assert code == 0
    assert out.splitlines() == [line for line in out.splitlines() if line.startswith("wrote ")]
    assert len(out.splitlines()) == 1


def test_compress_default_output_name_is_beside_the_input(capsys, lenet):
    assert run(capsys, "compress", lenet, "--preset", "lossless", "-q")[0] == 0
    assert lenet.with_suffix(".dcf").is_file()


def test_info_and_verify_on_the_output(capsys, paper_dcf):
    code, out, _ = run(capsys, "info", paper_dcf)
    assert code == 0
    for name in WEIGHTS:
        assert re.search(rf"^{re.escape(name)}\s", out, re.M)
    assert "total" in out

    code, out, _ = run(capsys, "info", paper_dcf, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["file_bytes"] == paper_dcf.stat().st_size
    assert info["metadata"]["model"] == "LeNet-300-100"  # the safetensors __metadata__ is kept
    by_name = {t["name"]: t for t in info["tensors"]}
    assert by_name["ip1.weight"]["encoding"] == "sparse+codebook"
    assert by_name["ip1.weight"]["codebook_size"] <= 32
    assert 5 < by_name["ip1.weight"]["stored_percent"] < 20

    code, out, err = run(capsys, "verify", paper_dcf)
    assert code == 0 and err == ""
    assert str(paper_dcf) in out and "OK" in out


def test_paper_preset_network_still_classifies_mnist(paper_dcf):
    from examples.mnist import load_mnist

    try:
        images, labels = load_mnist("test")
    except FileNotFoundError as exc:
        pytest.skip(f"MNIST is not available: {exc}")
    decoded = dcformat.load_file(paper_dcf)
    images, labels = images[:1000], labels[:1000]
    dense = evaluate(_lenet_state(), images, labels)
    accuracy = evaluate(decoded, images, labels)
    # The paper retrains after pruning and after quantisation and keeps 98.4 %; this pipeline
    # prunes 90 % of ip1/ip2 and shares weights on 5 bits without any retraining, so it gives
    # a few points up (about 94-95 % on these 1000 images). 90 % shows the network is usable.
    assert dense > 0.97
    assert accuracy > 0.90, f"paper-preset accuracy {accuracy:.3f} (dense: {dense:.3f})"


def _lenet_state() -> dict:
    from examples.lenet300 import load_state_dict

    return load_state_dict()[0]


def test_flags_override_the_preset(capsys, lenet, tmp_path):
    out_path = tmp_path / "flags.dcf"  # (with --preset lossless they contradict it: tests/test_cli_options.py)
    code, _, err = run(capsys, "compress", lenet, "-o", out_path, "--preset", "paper", "--sparsity", "0.8",
                       "--code-bits", "4", "--gap-bits", "3", "--no-huffman", "-q")
    assert code == 0, err
    decoded = dcformat.load_file(out_path)
    for name in ("ip1.weight", "ip2.weight"):  # ip3.weight is below min_elements
        assert len(np.unique(decoded[name])) <= 16
        assert 0.15 < np.mean(decoded[name] != 0) <= 0.2 + 1e-9
    code, _, err = run(capsys, "compress", lenet, "-o", out_path, "--sparsity", "0.5", "--quality", "1", "--force")
    assert code == 2 and "sparsity" in err


def test_compress_a_real_pytorch_checkpoint(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    src = copy_as("pesto.ckpt", tmp_path / "pesto.ckpt")
    code, out, err = run(capsys, "compress", src, "--preset", "paper", "-q")
    assert code == 0, err
    dcf = tmp_path / "pesto.dcf"
    assert f"wrote {dcf}" in out
    assert run(capsys, "verify", dcf)[0] == 0
    code, _, err = run(capsys, "decompress", dcf, "-o", tmp_path / "back.pth")
    assert code == 0, err
    restored = torch.load(tmp_path / "back.pth", weights_only=True)
    original = torch.load(src, weights_only=True)
    assert list(restored) == list(original)  # Lightning's counters and hyper-parameters come back
    assert restored["epoch"] == original["epoch"] and restored["hparams"] == original["hparams"]
    assert {f"state_dict.{k}" for k in restored["state_dict"]} == set(dcformat.load_file(dcf))
    assert restored["state_dict"]["encoder.fc.weight"].shape == (1, 1, 1175)


# --- decompress ------------------------------------------------------------------------


def test_lossless_compress_then_decompress_is_bit_exact(capsys, lenet, tmp_path):
    dcf, back = tmp_path / "l.dcf", tmp_path / "back.safetensors"
    assert run(capsys, "compress", lenet, "-o", dcf, "--preset", "lossless", "-q")[0] == 0
    code, out, _ = run(capsys, "decompress", dcf, "-o", back)
    assert code == 0 and f"wrote {back}: 6 tensors" in out
    meta_in, tensors_in = raw_safetensors(lenet)
    meta_out, tensors_out = raw_safetensors(back)
    assert meta_out == meta_in
    assert tensors_out == tensors_in  # names, dtypes, shapes and every byte


def test_decompress_default_output_is_safetensors(capsys, paper_dcf, tmp_path):
    dcf = Path(shutil.copyfile(paper_dcf, tmp_path / "p.dcf"))
    assert run(capsys, "decompress", dcf)[0] == 0
    _, tensors = raw_safetensors(tmp_path / "p.safetensors")
    decoded = dcformat.load_file(dcf)
    assert list(tensors) == sorted(decoded)
    for name, (dtype, shape, data) in tensors.items():
        assert dtype == "F32" and tuple(shape) == decoded[name].shape
        assert data == decoded[name].tobytes()


def test_decompress_to_pytorch(capsys, paper_dcf, tmp_path):
    torch = pytest.importorskip("torch")
    out_path = tmp_path / "lenet.pt"
    code, _, err = run(capsys, "decompress", paper_dcf, "-o", out_path)
    assert code == 0, err
    state = torch.load(out_path, weights_only=True)
    decoded = dcformat.load_file(paper_dcf)
    assert list(state) == list(decoded)
    for name, tensor in state.items():
        assert tensor.dtype == torch.float32
        assert np.array_equal(tensor.numpy(), decoded[name])
    from examples.lenet300 import LeNet300

    LeNet300().load_state_dict(state)  # strict: the names and shapes fit the module


def test_decompress_lossless_to_pytorch_is_bit_exact(capsys, lenet, tmp_path):
    torch = pytest.importorskip("torch")
    dcf = tmp_path / "l.dcf"
    assert run(capsys, "compress", lenet, "-o", dcf, "--preset", "lossless", "-q")[0] == 0
    assert run(capsys, "decompress", dcf, "-o", tmp_path / "l.pth")[0] == 0
    state = torch.load(tmp_path / "l.pth", weights_only=True)
    _, original = raw_safetensors(lenet)
    assert sorted(state) == sorted(original)
    for name, (_, shape, data) in original.items():
        assert list(state[name].shape) == shape
        assert state[name].numpy().tobytes() == data


# --- refusals --------------------------------------------------------------------------


def test_existing_output_is_kept_without_force_and_replaced_with_it(capsys, lenet, tmp_path):
    out_path = tmp_path / "out.dcf"
    out_path.write_bytes(b"precious")
    before = fingerprint(out_path)
    code, _, err = run(capsys, "compress", lenet, "-o", out_path, "--preset", "lossless", "-q")
    assert code == 2
    assert str(out_path) in err and "--force" in err
    assert fingerprint(out_path) == before

    code, _, err = run(capsys, "compress", lenet, "-o", out_path, "--preset", "lossless", "-q", "--force")
    assert code == 0, err
    assert dcformat.load_file(out_path).keys() == raw_safetensors(lenet)[1].keys()


def test_decompress_refuses_to_overwrite_without_force(capsys, paper_dcf, tmp_path):
    out_path = tmp_path / "out.safetensors"
    out_path.write_bytes(b"precious")
    before = fingerprint(out_path)
    code, _, err = run(capsys, "decompress", paper_dcf, "-o", out_path)
    assert code == 2 and str(out_path) in err
    assert fingerprint(out_path) == before
    assert run(capsys, "decompress", paper_dcf, "-o", out_path, "--force")[0] == 0
    assert raw_safetensors(out_path)[1].keys() == dcformat.load_file(paper_dcf).keys()


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_output_that_is_the_input_is_refused_even_with_force(capsys, lenet, paper_dcf, tmp_path, command):
    src = lenet if command == "compress" else Path(shutil.copyfile(paper_dcf, tmp_path / "in.dcf"))
    other_spelling = tmp_path / "sub" / ".." / src.name
    (tmp_path / "sub").mkdir()
    before = fingerprint(src)
    for out_path in (src, other_spelling):
        code, _, err = run(capsys, command, src, "-o", out_path, "--force")
        assert code == 2
        assert "input" in err
        assert fingerprint(src) == before


@pytest.mark.parametrize("damage", ["flip a payload byte", "truncate", "flip a header byte"])
def test_verify_names_a_corrupted_file_and_exits_1(capsys, paper_dcf, tmp_path, damage):
    data = bytearray(paper_dcf.read_bytes())
    if damage == "flip a payload byte":
        data[len(data) // 2] ^= 0x10
    elif damage == "truncate":
        del data[len(data) // 2:]
    else:
        data[40] ^= 0x01
    bad = tmp_path / "damaged.dcf"
    bad.write_bytes(bytes(data))
    code, out, err = run(capsys, "verify", bad)
    assert code == 1
    assert out == ""
    assert str(bad) in err and "invalid file" in err


def test_not_a_dcf_file(capsys, lenet):
    code, _, err = run(capsys, "verify", lenet)  # a safetensors file is no .dcf
    assert code == 1 and str(lenet) in err


# A missing input (exit 3) and an output that cannot be written (exit 4): tests/test_cli_faults.py.


def test_unknown_input_suffix_exits_2(capsys, lenet, tmp_path):
    odd = Path(shutil.copyfile(lenet, tmp_path / "model.onnx"))
    code, _, err = run(capsys, "compress", odd, "-o", tmp_path / "x.dcf")
    assert code == 2 and "model.onnx" in err and ".safetensors" in err
    assert not (tmp_path / "x.dcf").exists()


def test_unknown_output_suffix_exits_2(capsys, paper_dcf, tmp_path):
    code, _, err = run(capsys, "decompress", paper_dcf, "-o", tmp_path / "weights.h5")
    assert code == 2 and "weights.h5" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"default": {"code_bits": 99}}', "code_bits"),
    ('{"defualt": null}', "defualt"),
    ("[1, 2]", "JSON object"),
])
def test_bad_settings_json_exits_2(capsys, lenet, tmp_path, text, message):
    settings = tmp_path / "settings.json"
    settings.write_text(text)
    code, _, err = run(capsys, "compress", lenet, "-o", tmp_path / "x.dcf", "--settings", settings)
    assert code == 2
    assert message in err
    assert not (tmp_path / "x.dcf").exists()


def test_missing_settings_file_exits_3_and_unknown_preset_2(capsys, lenet, tmp_path):
    code, _, err = run(capsys, "compress", lenet, "-o", tmp_path / "x.dcf", "--settings", tmp_path / "no.json")
    assert code == 3 and "no.json" in err
    with pytest.raises(SystemExit) as info:  # an argparse choice (tests/test_cli_details.py)
        main(["compress", str(lenet), "-o", str(tmp_path / "x.dcf"), "--preset", "bogus"])
    assert info.value.code == 2 and "bogus" in capsys.readouterr().err
    assert not (tmp_path / "x.dcf").exists()


def test_settings_file_is_applied(capsys, lenet, tmp_path):
    from dcformat.compress import CompressionSettings, Rule, TensorSettings

    settings = CompressionSettings(default=None, rules=(Rule(glob="ip1.weight",
                                                             settings=TensorSettings(code_bits=3)),))
    (tmp_path / "s.json").write_text(settings.to_json())
    code, _, err = run(capsys, "compress", lenet, "-o", tmp_path / "s.dcf", "--settings", tmp_path / "s.json", "-q")
    assert code == 0, err
    decoded = dcformat.load_file(tmp_path / "s.dcf")
    assert len(np.unique(decoded["ip1.weight"])) <= 8
    assert np.array_equal(decoded["ip2.weight"], _lenet_state()["ip2.weight"])


def test_rd_weights_file_steers_the_budget(capsys, lenet, tmp_path):
    # Same budget; weighting ip2 x1000 moves SQNR from ip1 (most of the parameters) to it.
    def sqnr(*extra):
        out = tmp_path / f"w{len(extra)}.dcf"
        code, _, err = run(capsys, "compress", lenet, "-o", out, "--bits-per-param", "3", "-q", *extra)
        assert code == 0, err
        decoded, original = dcformat.load_file(out), _lenet_state()
        return {k: 10 * np.log10(np.sum(original[k] ** 2) / np.sum((original[k] - decoded[k]) ** 2))
                for k in ("ip1.weight", "ip2.weight")}

    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"ip2.weight": 1000.0}))
    plain, weighted = sqnr(), sqnr("--rd-weights", weights)
    assert weighted["ip2.weight"] > plain["ip2.weight"] + 10.0
    assert weighted["ip1.weight"] < plain["ip1.weight"]


@pytest.mark.parametrize("text, message", [("[1]", "JSON object"), ("{", "not valid JSON"),
                                           ('{"ip1.weight": -1}', "must be > 0")])
def test_bad_rd_weights_exit_2(capsys, lenet, tmp_path, text, message):
    weights = tmp_path / "weights.json"
    weights.write_text(text)
    code, _, err = run(capsys, "compress", lenet, "-o", tmp_path / "x.dcf", "--bits-per-param", "3",
                       "--rd-weights", weights)
    assert code == 2 and message in err
    assert not (tmp_path / "x.dcf").exists()


def test_no_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_installed_console_script_reports_the_version():
    script = shutil.which("dcformat", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                            os.environ.get("PATH", "")]))
    if script is None:
        pytest.skip("the dcformat console script is not installed (pip install -e .)")
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"dcformat {dcformat.__version__}"
