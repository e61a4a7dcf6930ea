"""GPTQ assignment (dcformat.training.gptq): the ecq codebook and budget, codes chosen one input column
at a time with the inverse input second moment; lower output error on held-out inputs at the same size."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dcformat  # noqa: E402
from dcformat.cli import main as cli_main  # noqa: E402
from dcformat.compress import CompressionSettings, compress_tensors  # noqa: E402
from dcformat.errors import InvalidSettings, UsageError  # noqa: E402
from dcformat.training import gptq  # noqa: E402


def settings(bpp: float = 3.0, **kw) -> CompressionSettings:
    return CompressionSettings(bits_per_param=bpp, min_elements=256, **kw).with_overrides(quantizer="ecq",
                                                                                            code_bits=12)


def correlated(n: int, d: int, seed: int) -> torch.Tensor:
    """Inputs with a few strong directions (as a layer's activations have)."""
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(d, d, generator=g) * (0.8 ** torch.arange(d))[:, None]
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) @ mix


def smooth_images(n: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, 16, 20, 20, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2) + 0.1 * x


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.dw = torch.nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.fc = torch.nn.Linear(32, 24)

    def forward(self, x):
        return self.fc(self.dw(torch.relu(self.conv(x))).mean((2, 3)))


def linear_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128))


def decoded_net(net, tensors):
    out = type(net)() if isinstance(net, ConvNet) else linear_net()
    out.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in dcformat.load(dcformat.save(tensors)).items()})
    return out.eval()


def output_error(net, tensors, x) -> float:
    with torch.no_grad():
        ref = net(x)
        return float(((decoded_net(net, tensors)(x) - ref) ** 2).sum() / (ref ** 2).sum())


@pytest.mark.parametrize("make, data", [(linear_net, lambda s: correlated(512, 64, s)),
                                        (lambda: (torch.manual_seed(0), ConvNet())[1], lambda s: smooth_images(256, s))])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_lowers_the_held_out_output_error_at_the_same_size(make, data, act_order):
    net = make().eval()
    calibration, held_out = list(data(1).split(64)), data(2)
    s = settings(3.0)
    plain, _ = compress_tensors({k: v.numpy() for k, v in net.state_dict().items()}, s)
    compensated, reports = gptq.compress_module(net, calibration, s, act_order=act_order)
    size_plain, size_gptq = len(dcformat.save(plain)), len(dcformat.save(compensated))
    assert abs(size_gptq - size_plain) < 0.04 * size_plain
    e_plain, e_gptq = output_error(net, plain, held_out), output_error(net, compensated, held_out)
    assert e_gptq < 0.8 * e_plain, (e_plain, e_gptq)


def test_the_assigned_codes_are_what_the_file_decodes_and_their_error_is_reported():
    net = linear_net().eval()
    hessians = gptq.layer_hessians(net, list(correlated(256, 64, 1).split(32)))
    calls = []

    def record(x, cb):
        calls.append(gptq.assigners(hessians)["0.weight"](x, cb))
        return calls[-1]

    state = {k: v.numpy() for k, v in net.state_dict().items()}
    bound = CompressionSettings(min_elements=256).with_overrides(quantizer="ecq", code_bits=12, max_rel_error=0.1)
    out, reports = compress_tensors(state, bound, assign={"0.weight": record})
    back = dcformat.load(dcformat.save(out))["0.weight"]
    assert len(calls) == 1
    codebook = np.asarray(out["0.weight"].values.codebook)
    assert np.array_equal(back, codebook[calls[0]].reshape(back.shape))
    w = state["0.weight"].astype(np.float64)
    rel = np.sqrt(np.sum((w - back) ** 2) / np.sum(w ** 2))
    assert reports[0].rel_rms_error == pytest.approx(rel, rel=1e-6)


def test_hessians_match_the_unfolded_inputs_and_group_per_channel():
    net = ConvNet().eval()
    x = smooth_images(4, 3)
    h = gptq.layer_hessians(net, [x[:2], x[2:]])
    assert set(h) == {"conv.weight", "dw.weight", "fc.weight"}
    u = torch.nn.functional.unfold(x, 3, padding=1).permute(0, 2, 1).reshape(-1, 16 * 9).double()
    assert np.allclose(h["conv.weight"].matrix()[0], (u.T @ u / u.shape[0]).numpy())
    assert h["dw.weight"].matrix().shape == (32, 9, 9)


def test_no_assign_is_the_default_path_byte_for_byte():
    state = {k: v.numpy() for k, v in linear_net().state_dict().items()}
    a, _ = compress_tensors(state, settings(4.0))
    b, _ = compress_tensors(state, settings(4.0), assign={})
    assert dcformat.save(a) == dcformat.save(b)


def test_bad_assignments_are_refused():
    state = {k: v.numpy() for k, v in linear_net().state_dict().items()}
    with pytest.raises(UsageError, match="shape"):
        compress_tensors(state, settings(4.0), assign={"0.weight": lambda x, cb: np.zeros(3, np.uint16)})
    with pytest.raises(UsageError, match="outside the codebook"):
        compress_tensors(state, settings(4.0), assign={"0.weight": lambda x, cb: np.full(x.size, cb.size)})
    with pytest.raises(InvalidSettings, match="ecq"):
        compress_tensors(state, CompressionSettings(min_elements=256),
                         assign={"0.weight": lambda x, cb: np.zeros(x.size, np.uint16)})
    with pytest.raises(InvalidSettings, match="ecq"):
        gptq.compress_module(linear_net(), [correlated(32, 64, 1)], CompressionSettings(min_elements=256))


MODEL = textwrap.dedent('''
    import torch

    def build():
        return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
''')


def test_cli_gptq(tmp_path, capsys):
    source = tmp_path / "net.py"
    source.write_text(MODEL)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
    checkpoint = tmp_path / "net.pt"
    torch.save(net.state_dict(), checkpoint)
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, correlated(128, 64, 1).numpy())
    base = ["compress", str(checkpoint), "--bits-per-param", "4", "-q", "--force", "--model", f"{source}:build",
            "--calibration", str(inputs)]
    plain, compensated = tmp_path / "plain.dcf", tmp_path / "gptq.dcf"
    assert cli_main([*base, "-o", str(plain)]) == 0
    assert cli_main([*base, "-o", str(compensated), "--gptq"]) == 0
    held_out = correlated(256, 64, 2)
    errors = []
    for path in (plain, compensated):
        net_q = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
        net_q.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in dcformat.load_file(path).items()})
        with torch.no_grad():
            errors.append(float(((net_q(held_out) - net(held_out)) ** 2).sum()))
    assert errors[1] < errors[0]
    assert abs(compensated.stat().st_size - plain.stat().st_size) < 0.05 * plain.stat().st_size
    capsys.readouterr()
    assert cli_main(["compress", str(checkpoint), "--bits-per-param", "4", "--gptq", "-o",
                     str(tmp_path / "x.dcf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--gptq" in err and "--model" in err and len(err.splitlines()) == 1
