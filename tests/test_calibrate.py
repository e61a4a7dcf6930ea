"""The calibration path: ``dcformat compress --model MODULE:CALLABLE --calibration INPUTS`` builds
the model from the checkpoint, measures on the inputs how much the output depends on each
tensor, and gives those tensors the bits (dcformat.training.calibrate)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dcformat  # noqa: E402
from dcformat.cli import main as cli_main  # noqa: E402
from dcformat.errors import InvalidSettings, UsageError  # noqa: E402
from dcformat.training import calibrate  # noqa: E402

MODEL = textwrap.dedent('''
    import torch

    class Net(torch.nn.Module):
        """Two linear layers side by side, one of them amplified 30 times: the output depends on
        its weights far more than on the other's, which are as large."""

        def __init__(self):
            super().__init__()
            self.loud = torch.nn.Linear(128, 64)
            self.quiet = torch.nn.Linear(128, 64)

        def forward(self, x):
            return 30.0 * self.loud(x) + self.quiet(x)

    def build():
        return Net()

    def not_a_module():
        return 3
''')


@pytest.fixture()
def model(tmp_path):
    source = tmp_path / "net.py"
    source.write_text(MODEL)
    net = calibrate.load_callable(f"{source}:build")()
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    from safetensors.numpy import save_file

    checkpoint = tmp_path / "net.safetensors"
    save_file({k: v.detach().numpy().copy() for k, v in net.state_dict().items()}, str(checkpoint))
    return source, checkpoint


def sqnr_db(original, decoded) -> float:
    x, r = original.astype(np.float64), decoded.astype(np.float64)
    return float(10 * np.log10(np.sum(x ** 2) / np.sum((x - r) ** 2)))


def test_calibration_gives_the_bits_to_what_the_output_depends_on(model, tmp_path):
    source, checkpoint = model
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, np.random.default_rng(1).standard_normal((40, 128)).astype(np.float32))
    plain, calibrated = tmp_path / "plain.dcf", tmp_path / "calibrated.dcf"
    base = ["compress", str(checkpoint), "--bits-per-param", "4", "-q", "--force"]
    assert cli_main([*base, "-o", str(plain)]) == 0
    assert cli_main([*base, "-o", str(calibrated), "--model", f"{source}:build", "--calibration", str(inputs),
                     "--calibration-samples", "32"]) == 0
    from safetensors.numpy import load_file

    dense = load_file(str(checkpoint))
    a, b = dcformat.load_file(plain), dcformat.load_file(calibrated)
    # the amplified layer gets more of the same budget, the other less
    assert sqnr_db(dense["loud.weight"], b["loud.weight"]) > sqnr_db(dense["loud.weight"], a["loud.weight"]) + 6
    assert sqnr_db(dense["quiet.weight"], b["quiet.weight"]) < sqnr_db(dense["quiet.weight"], a["quiet.weight"]) - 3
    assert abs(calibrated.stat().st_size - plain.stat().st_size) < 0.03 * plain.stat().st_size


def test_noise_inputs_and_the_weights_they_give(model):
    source, checkpoint = model
    from safetensors.numpy import load_file

    module = calibrate.build_module(f"{source}:build", load_file(str(checkpoint)))
    assert not module.training
    batches = calibrate.calibration_batches("noise:128", 40)
    assert [len(b) for b in batches] == [16, 16, 8] and batches[0].shape[1:] == (128,)
    assert torch.equal(batches[0], calibrate.calibration_batches("noise:128", 40)[0])  # seeded
    weights = calibrate.calibrated_rd_weights(module, batches)
    assert 300 < weights["loud.weight"] / weights["quiet.weight"] < 3000  # 30 ** 2 = 900


def test_bad_models_and_inputs_are_one_line_errors(model, tmp_path):
    source, checkpoint = model
    from safetensors.numpy import load_file

    tensors = load_file(str(checkpoint))
    for spec in ("net.py", ":build", f"{source}:", f"{tmp_path}/missing.py:build", "no_such_module_x:build",
                 f"{source}:missing", f"{source}:not_a_module"):
        with pytest.raises(UsageError):
            calibrate.build_module(spec, tensors)
    with pytest.raises(UsageError, match="does not take"):
        calibrate.build_module(f"{source}:build", {k: v for k, v in tensors.items() if k != "quiet.bias"})
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    (tmp_path / "text.npy").write_text("not an array")
    for source_spec in ("noise:", "noise:3,0", "noise:a,b", str(tmp_path / "none.npy"), str(tmp_path / "objects.npy"),
                        str(tmp_path / "strings.npy"), str(tmp_path / "text.npy")):
        with pytest.raises(UsageError):
            calibrate.calibration_batches(source_spec, 8)
    with pytest.raises(InvalidSettings):
        calibrate.calibration_batches("noise:128", 0)
    module = calibrate.build_module(f"{source}:build", tensors)
    with pytest.raises(UsageError, match="calibration inputs"):
        calibrate.calibrated_rd_weights(module, calibrate.calibration_batches("noise:5,8", 4))


@pytest.mark.parametrize("extra, message", [
    (["--model", "x.py:f"], "go together"),
    (["--calibration", "noise:128"], "go together"),
    (["--model", "x.py:f", "--calibration", "noise:128", "--rd-weights", "w.json"], "pass one of them"),
])
def test_the_cli_refuses_options_that_do_not_go_together(model, tmp_path, capsys, extra, message):
    _, checkpoint = model
    out = tmp_path / "o.dcf"
    assert cli_main(["compress", str(checkpoint), "-o", str(out), "--bits-per-param", "4", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not out.exists()
    assert cli_main(["compress", str(checkpoint), "-o", str(out), "--model", "x.py:f", "--calibration",
                     "noise:128"]) == 2  # no budget to steer
    assert cli_main(["compress", str(checkpoint), "-o", str(out), "--preset", "lossless", "--model", "x.py:f",
                     "--calibration", "noise:128"]) == 2


def test_input_weights_are_the_unfolded_inputs_means_over_their_spread():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1, groups=2), torch.nn.ReLU(),
                              torch.nn.Conv2d(6, 6, 3, groups=6), torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 3))
    batches = [torch.randn(5, 4, 6, 6) + torch.arange(4.0)[None, :, None, None] for _ in range(3)]
    got = calibrate.input_weights(net, batches)
    assert {k: v.shape for k, v in got.items()} == {"0.weight": (2, 18), "2.weight": (6, 9), "4.weight": (1, 96)}
    # the first layer's, computed here from its inputs unfolded by hand
    x = torch.cat(batches).double()
    cols = torch.nn.functional.unfold(x, 3, padding=1)  # (n, 4 * 9, L), channel-major as a weight row
    cols = cols.reshape(x.shape[0], 2, 18, -1).permute(1, 0, 3, 2).reshape(2, -1, 18)
    mean = cols.mean(dim=1)
    spread = float(((cols * cols).mean(dim=1) - mean * mean).mean())
    np.testing.assert_allclose(got["0.weight"], (mean / spread ** 0.5).numpy(), rtol=1e-9)
    assert got["0.weight"][1].mean() > got["0.weight"][0].mean()  # the second group's channels sit higher


def test_real_calibration_inputs_weigh_the_row_sums_by_their_means(model, tmp_path, monkeypatch):
    import dcformat.convert as convert

    source, checkpoint = model
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, (np.random.default_rng(2).standard_normal((40, 128)) + 1.5).astype(np.float32))
    seen = []
    real = convert.compress_checkpoint

    def spy(*args, **kwargs):
        seen.append(kwargs.get("input_weights"))
        return real(*args, **kwargs)

    monkeypatch.setattr(convert, "compress_checkpoint", spy)
    base = ["compress", str(checkpoint), "-o", str(tmp_path / "c.dcf"), "--bits-per-param", "4", "-q", "--force",
            "--model", f"{source}:build"]
    assert cli_main([*base, "--calibration", str(inputs)]) == 0
    assert cli_main([*base, "--calibration", "noise:128"]) == 0
    measured, noise = seen
    assert noise is None  # noise has means of its own, not the model's inputs'
    assert set(measured) == {"loud.weight", "quiet.weight"}
    assert measured["loud.weight"].shape == (1, 128) and np.all(measured["loud.weight"] > 1.0)  # mean 1.5, spread 1
