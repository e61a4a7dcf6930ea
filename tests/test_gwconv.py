"""Global Weight: GWConv2d, the post-hoc bank builder and storage through the bank section."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import dcformat  # noqa: E402
from dcformat.compress.bank import build_bank  # noqa: E402
from dcformat.encodings.model import BankValues, CodebookValues, EncodedTensor  # noqa: E402
from dcformat.errors import UsageError  # noqa: E402
from dcformat.inspect import describe  # noqa: E402
from dcformat.training.gwconv import (  # noqa: E402
    GWConv2d, KernelBank, clamp_selectors_, convert_to_gwconv, export_gw, freeze_selectors, gw_layers,
    parameter_counts, quantize_bank_, reassign_, recalibrate_batchnorm_, save_gw)
from dcformat.training.quantize import WeightSharing  # noqa: E402

torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.short = nn.Conv2d(4, 6, 1, stride=2)
        self.c3 = nn.Conv2d(6, 6, 3, padding=2, dilation=2)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x) + self.short(x))
        x = torch.relu(self.c3(x))
        return self.fc(x.mean((2, 3)))


def _net(seed=0):
    torch.manual_seed(seed)
    return Net()


def test_convert_shares_one_bank_and_keeps_1x1_and_linear():
    net = _net()
    short_w, fc_w = net.short.weight.clone(), net.fc.weight.clone()
    bank = convert_to_gwconv(net, 8)
    layers = dict(gw_layers(net))
    assert set(layers) == {"c1", "c2", "c3"}
    assert all(layer.bank is bank for layer in layers.values())
    assert type(net.short) is nn.Conv2d and type(net.fc) is nn.Linear
    assert torch.equal(net.short.weight, short_w) and torch.equal(net.fc.weight, fc_w)
    assert sum(p is bank.weight for p in net.parameters()) == 1  # listed once
    assert net.c3.dilation == (2, 2) and net.c3.padding == (2, 2) and net.c2.bias is None
    # an in-place change of the bank is seen by every layer
    with torch.no_grad():
        bank.weight.add_(1.0)
    for layer in layers.values():
        assert torch.equal(layer.effective_weight(), bank.weight[layer.indices()])


def test_post_hoc_network_uses_at_most_L_distinct_bank_kernels():
    net = _net()
    kernels = torch.cat([m.weight.detach().reshape(-1, 3, 3) for m in (net.c1, net.c2, net.c3)])
    bank = convert_to_gwconv(net, 10)
    assert bank.size == 10
    used = torch.cat([m.effective_weight().reshape(-1, 9) for _, m in gw_layers(net)])
    distinct = torch.unique(used, dim=0)
    assert distinct.shape[0] <= 10
    bank_rows = {tuple(r) for r in bank.weight.detach().reshape(-1, 9).tolist()}
    assert all(tuple(r) in bank_rows for r in distinct.tolist())
    # each kernel went to its nearest bank kernel
    d = torch.cdist(kernels.reshape(-1, 9).double(), bank.weight.detach().reshape(-1, 9).double())
    chosen = torch.cat([m.indices().reshape(-1) for _, m in gw_layers(net)])
    assert torch.allclose(d.gather(1, chosen[:, None]).squeeze(1), d.min(1).values)


def test_bank_builder_is_exact_with_enough_kernels_and_deterministic():
    rng = np.random.default_rng(1)
    k = rng.standard_normal((50, 3, 3)).astype(np.float32)
    exact = build_bank(k, 64)
    assert exact.sse == 0.0 and np.array_equal(exact.bank[exact.selectors], k)
    a, b = build_bank(k, 7, seed=3), build_bank(k, 7, seed=3)
    assert np.array_equal(a.bank, b.bank) and np.array_equal(a.selectors, b.selectors)
    assert a.bank.shape == (7, 3, 3) and a.selectors.max() < 7


def test_selectors_in_range_after_training_steps():
    net = _net()
    convert_to_gwconv(net, 6)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 3, (8,))
    grads = []
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        grads.append(net.c3.selectors.grad.abs().sum().item())
        opt.step()
        clamp_selectors_(net)
    assert max(grads) > 0  # the straight-through rule reaches the selectors
    for _, layer in gw_layers(net):
        s = layer.selectors.detach()
        assert s.min() >= 0 and s.max() <= 1
        idx = layer.indices()
        assert idx.min() >= 0 and idx.max() <= layer.bank.size - 1


def test_frozen_selectors_train_only_the_bank_and_reassign_moves_pairs():
    net = _net()
    bank = convert_to_gwconv(net, 6, rule="reassign")
    freeze_selectors(net)
    before = {n: m.indices().clone() for n, m in gw_layers(net)}
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 3, (8,))
    nn.functional.cross_entropy(net(x), y).backward()
    assert bank.weight.grad is not None and bank.weight.grad.abs().sum() > 0
    assert all(m.selectors.grad is None for _, m in gw_layers(net))
    assert all(torch.equal(m.indices(), before[n]) for n, m in gw_layers(net))
    assert reassign_(net, 0.0) == 0.0  # a zero step keeps each pair on its own kernel
    nn.functional.cross_entropy(net(x), y).backward()
    frac = reassign_(net, 1e3)
    assert 0.0 < frac <= 1.0


def _decoded_equals_module(net, path, **kwargs):
    net.eval()
    save_gw(net, path, **kwargs)
    out = dcformat.load_file(path)
    for name, layer in gw_layers(net):
        w = layer.effective_weight().detach().numpy()
        got = out[f"{name}.weight"]
        assert got.dtype == w.dtype and got.shape == w.shape
        assert np.array_equal(got.view(np.uint32), w.view(np.uint32)), name  # bit-equal
    assert not any(k.endswith("selectors") or "bank" in k for k in out)
    # the decoded file is an ordinary Conv2d state dict: the unconverted net gives the same outputs
    plain = _net(seed=5)
    plain.load_state_dict({k: torch.from_numpy(v) for k, v in out.items()})
    plain.eval()
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(plain(x), net(x))
    return out


def test_decoded_weights_bit_equal_raw_bank(tmp_path):
    net = _net()
    convert_to_gwconv(net, 9)
    tensors, banks = export_gw(net)
    assert isinstance(tensors["c1.weight"].values, BankValues) and isinstance(banks["gw"], np.ndarray)
    _decoded_equals_module(net, tmp_path / "gw.dcf")
    rows, bank_rows, _ = describe(tmp_path / "gw.dcf")
    assert [b.name for b in bank_rows] == ["gw"] and bank_rows[0].shape == (9, 3, 3)


def test_decoded_weights_bit_equal_quantized_bank(tmp_path):
    net = _net()
    bank = convert_to_gwconv(net, 12)
    with pytest.raises(UsageError):
        export_gw(net, bank_bits=3)
    codebook, codes = quantize_bank_(bank, 3)
    assert codebook.size <= 8 and torch.unique(bank.weight).numel() <= 8
    tensors, banks = export_gw(net, bank_bits=3)
    assert isinstance(banks["gw"], EncodedTensor) and isinstance(banks["gw"].values, CodebookValues)
    _decoded_equals_module(net, tmp_path / "gwq.dcf", bank_bits=3)


def test_gwconv_is_a_drop_in_and_counts():
    bank = KernelBank(5, 3)
    layer = GWConv2d(2, 4, 3, stride=2, padding=1, bank=bank)
    assert layer(torch.randn(1, 2, 9, 9)).shape == (1, 4, 5, 5)
    with pytest.raises(UsageError):
        GWConv2d(2, 4, 5, bank=bank)
    net = _net()
    convert_to_gwconv(net, 10)
    c = parameter_counts(net)
    assert c["H"] == 1 * 4 + 4 * 6 + 6 * 6 and c["K"] == 9 and c["L"] == 10
    assert c["gw_conv"] == 9 * 10 + c["H"] and c["dense_conv"] == 9 * c["H"]


def test_weight_shared_1x1_and_fc_are_stored_as_their_codebooks(tmp_path):
    net = _net()
    convert_to_gwconv(net, 9)
    WeightSharing(net, bits={"short.weight": 2, "fc.weight": 3})
    tensors, _ = export_gw(net)
    assert isinstance(tensors["fc.weight"].values, CodebookValues)
    assert tensors["fc.weight"].values.codebook.size <= 8
    out = _decoded_equals_module(net, tmp_path / "ws.dcf")
    assert np.array_equal(out["fc.weight"], net.fc.weight.detach().numpy())  # what the forward used
    assert np.unique(out["short.weight"]).size <= 4


def test_recalibrate_batchnorm_averages_batch_statistics_and_restores_state():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU(), nn.Dropout(0.5),
                        nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    net.train()
    seen = {id(m): [] for m in (net[1], net[5])}
    dropout_modes = []
    hooks = [m.register_forward_pre_hook(lambda m, args: seen[id(m)].append(args[0].detach().clone()))
             for m in (net[1], net[5])]
    hooks.append(net[3].register_forward_hook(lambda m, args, out: dropout_modes.append(m.training)))
    batches = [torch.randn(4, 1, 6, 6) * (i + 1) for i in range(3)]
    assert recalibrate_batchnorm_(net, batches) == 2
    for h in hooks:
        h.remove()
    assert dropout_modes == [False] * 3  # only the norms ran in training mode
    for norm in (net[1], net[5]):
        xs = seen[id(norm)]
        mean = torch.stack([x.mean((0, 2, 3)) for x in xs]).mean(0)
        var = torch.stack([x.var((0, 2, 3), unbiased=True) for x in xs]).mean(0)
        assert torch.allclose(norm.running_mean, mean, atol=1e-6)
        assert torch.allclose(norm.running_var, var, rtol=1e-5)
        assert int(norm.num_batches_tracked) == 3
    assert net[1].momentum == 0.3 and net[5].momentum == 0.1
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize("alignment", [None, 8])
def test_save_gw_aligns_as_writers_do_unless_told(tmp_path, alignment):
    from dcformat.container.file import ContainerFile
    from dcformat.format.constants import DEFAULT_ALIGNMENT

    net = _net()
    convert_to_gwconv(net, 9)
    kwargs = {} if alignment is None else {"alignment": alignment}
    _decoded_equals_module(net, tmp_path / "gw.dcf", **kwargs)
    assert ContainerFile((tmp_path / "gw.dcf").read_bytes()).header.alignment == (alignment or DEFAULT_ALIGNMENT)


@pytest.mark.parametrize("dtype, wire", [(torch.float64, "F64"), (torch.bfloat16, "BF16"),
                                         (torch.float8_e4m3fn, None)])
def test_export_gw_writes_the_banks_float_dtype(dtype, wire):
    net = _net()
    convert_to_gwconv(net, 9)
    net.c1.bank.weight.data = net.c1.bank.weight.data.to(dtype)
    if wire is None:
        with pytest.raises(UsageError):
            export_gw(net)
        return
    tensors, _ = export_gw(net)
    assert tensors["c1.weight"].dtype == wire


def test_export_gw_codes_selectors_and_bank_codes_once(monkeypatch):
    from .test_encodings_sparse import count_encodes

    net = _net()
    bank = convert_to_gwconv(net, 12)
    quantize_bank_(bank, 3)
    calls = count_encodes(monkeypatch)
    tensors, banks = export_gw(net, bank_bits=3)
    coded = len(calls)
    assert coded >= 4  # three selector streams and the bank's codes
    out = dcformat.load(dcformat.save(tensors, banks=banks))
    assert len(calls) == coded  # the writer stored them as coded
    for name, layer in gw_layers(net):
        assert np.array_equal(out[f"{name}.weight"], layer.effective_weight().detach().numpy())
