"""Small things a new user meets: the progress bar's end, the size summary, a .dcf as input,
``python -m dcformat``, the presets listed, and what ``info`` checks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dcformat
from dcformat.cli import main
from dcformat.compress.settings import PRESETS
from examples.lenet300 import WEIGHTS_PATH


@pytest.fixture
def lenet(tmp_path) -> Path:
    return Path(shutil.copyfile(WEIGHTS_PATH, tmp_path / "lenet.safetensors"))


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_progress_bar_ends_at_every_tensor(capsys, lenet, tmp_path):
    code, _, err = run(capsys, "compress", lenet, "-o", tmp_path / "l.dcf")
    assert code == 0, err
    states = re.findall(r"compressing:.*?(\d+)/(\d+)", err)
    assert states and states[-1] == ("6", "6"), states


def test_a_larger_output_is_reported_as_larger(capsys, tmp_path):
    from safetensors.numpy import save_file

    small = tmp_path / "small.safetensors"
    save_file({"b": np.zeros(4, np.float32)}, str(small))  # 16 bytes: any container is bigger
    code, out, _ = run(capsys, "compress", small, "-o", tmp_path / "s.dcf", "-q")
    assert code == 0
    summary = out.strip().splitlines()[-1]
    size = (tmp_path / "s.dcf").stat().st_size
    assert re.fullmatch(rf"wrote .*s\.dcf: {size:,} bytes, [\d,.]+% larger than dense", summary), summary
    assert "smaller" not in summary


def test_a_slightly_smaller_output_is_a_percentage(capsys, tmp_path):
    from safetensors.numpy import save_file

    src = tmp_path / "m.safetensors"
    # random bits, exponents drawn from half their range: lossless planes save 1 bit of 32
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << 32, 90_000, dtype=np.uint32) & np.uint32(0x807FFFFF)
    bits |= (rng.integers(64, 192, bits.size, dtype=np.uint32) << np.uint32(23))
    save_file({"w": bits.view(np.float32).reshape(300, 300)}, str(src))
    code, out, _ = run(capsys, "compress", src, "-o", tmp_path / "m.dcf", "--preset", "lossless", "-q")
    assert code == 0
    assert re.search(r"bytes, \d+\.\d% (smaller|larger) than dense$", out.strip()), out  # not "1.0x smaller"


def test_a_dcf_input_is_refused_with_the_way_to_go(capsys, lenet, tmp_path):
    dcf = tmp_path / "l.dcf"
    assert run(capsys, "compress", lenet, "-o", dcf, "-q")[0] == 0
    code, out, err = run(capsys, "compress", dcf, "-o", tmp_path / "again.dcf", "--preset", "paper")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(dcf) in lines[0] and "dcformat decompress" in lines[0]
    assert not (tmp_path / "again.dcf").exists()


def test_python_dash_m_dcformat_runs():
    done = subprocess.run([sys.executable, "-m", "dcformat", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"dcformat {dcformat.__version__}"


def test_the_presets_are_the_settings_modules_and_listed(capsys):
    assert "rd" in PRESETS
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    out = capsys.readouterr().out
    assert "{" + ",".join(PRESETS) + "}" in out
    with pytest.raises(SystemExit) as info:
        main(["compress", "x.safetensors", "--preset", "bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "bogus" in err and all(name in err for name in PRESETS)


def test_info_says_it_did_not_check_the_payloads(capsys, lenet, tmp_path):
    dcf = tmp_path / "l.dcf"
    assert run(capsys, "compress", lenet, "-o", dcf, "-q")[0] == 0
    data = bytearray(dcf.read_bytes())
    data[len(data) // 2] ^= 0x10  # a payload byte: the header checksum still holds
    bad = tmp_path / "bad.dcf"
    bad.write_bytes(bytes(data))
    code, out, _ = run(capsys, "info", bad)
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert "payload" in last and "not checked" in last and "dcformat verify" in last
    code, out, _ = run(capsys, "info", bad, "--json")
    assert code == 0 and json.loads(out)["payloads_checked"] is False
    assert run(capsys, "verify", bad)[0] == 1  # verify is the check
