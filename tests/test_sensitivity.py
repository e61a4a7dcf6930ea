"""Output sensitivity per tensor (dcformat.training.sensitivity) and the rd_weights it feeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dcformat.compress import CompressionSettings, TensorSettings, compress_tensors  # noqa: E402
from dcformat.errors import InvalidSettings  # noqa: E402
from dcformat.training.sensitivity import (  # noqa: E402
    UNUSED_WEIGHT, module_rd_weights, output_sensitivity, rd_weights)


def _mlp(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))


def _batches(n: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(24, 16, generator=g) for _ in range(n)]


def test_linear_layer_matches_its_exact_gauss_newton_diagonal():
    # f = x W^T: d f_bi / d W_ij = x_bj, so diag(J^T J)_ij = sum_b x_bj**2 for every row i.
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    xs = _batches()
    got = output_sensitivity(lambda p, x: x @ p["w"].T, {"w": w}, xs, probes=64)["w"]
    exact = float(np.mean([(x.double() ** 2).sum(0).mean() for x in xs]))
    assert got == pytest.approx(exact, rel=0.05)


def test_weights_survive_a_rescaling_that_keeps_the_function():
    # ReLU is positively homogeneous: W1 * 4 with W2 / 4 computes the same function, and
    # the weights (diagonal x mean square) must not change.
    net = _mlp().eval()
    scaled = _mlp().eval()
    with torch.no_grad():
        scaled[0].weight *= 4.0
        scaled[0].bias *= 4.0
        scaled[2].weight /= 4.0
    a = module_rd_weights(net, _batches(), probes=4)
    b = module_rd_weights(scaled, _batches(), probes=4)
    assert a.keys() == b.keys()
    for name in a:
        assert b[name] == pytest.approx(a[name], rel=1e-3)


def test_exponent_softens_the_weights():
    net = _mlp().eval()
    full = module_rd_weights(net, _batches())
    soft = module_rd_weights(net, _batches(), exponent=0.5)
    for name in full:
        assert soft[name] == pytest.approx(full[name] ** 0.5, rel=1e-9)
    for bad in (0.0, -1.0, 5.0, "1"):
        with pytest.raises(InvalidSettings):
            rd_weights({"w": 1.0}, {"w": torch.ones(2)}, exponent=bad)


def test_unreached_tensor_gets_the_floor_weight():
    params = {"used": torch.randn(4, 4), "unused": torch.randn(4, 4)}
    sens = output_sensitivity(lambda p, x: x @ p["used"], params, [torch.randn(5, 4)])
    assert sens["unused"] == 0.0 and sens["used"] > 0.0
    assert rd_weights(sens, params) == {"used": 1.0, "unused": UNUSED_WEIGHT}


def test_the_allocation_follows_the_weights():
    # Equal slope: a tensor weighted w ends 10 log10(w) dB above one weighted 1, so the
    # SQNR gap between the two layers follows the ratio of their measured weights.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64)).eval()
    arrays = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    weights = module_rd_weights(net, [torch.randn(32, 64, generator=g) for _ in range(4)])
    for extra in (1.0, 100.0):
        w = {**weights, "2.weight": weights["2.weight"] * extra}
        settings = CompressionSettings(default=TensorSettings(quantizer="ecq", code_bits=12), bits_per_param=6.0,
                                       rd_weights=w)
        by = {r.name: r for r in compress_tensors(arrays, settings)[1]}
        gap = by["2.weight"].sqnr_db - by["0.weight"].sqnr_db
        assert gap == pytest.approx(10 * math.log10(w["2.weight"] / w["0.weight"]), abs=1.5)


def test_rd_weights_setting_round_trips_and_is_checked():
    s = CompressionSettings(default=TensorSettings(quantizer="ecq"), bits_per_param=4.0,
                            rd_weights={"b": 2.0, "a": 0.5})
    assert s.rd_weights == (("a", 0.5), ("b", 2.0))
    assert CompressionSettings.from_json(s.to_json()) == s
    assert s.settings_for("a", (64, 64), "F32").rd_weight == 0.5
    assert s.settings_for("c", (64, 64), "F32").rd_weight == 1.0
    assert s.settings_for("a", (64,), "F32") is None  # exact stays exact
    for bad in ({"a": 0.0}, {"a": -1.0}, {"a": float("inf")}, {"a": "x"}, {3: 1.0}, [("a", 1.0), ("a", 2.0)]):
        with pytest.raises(InvalidSettings):
            CompressionSettings(rd_weights=bad)
    with pytest.raises(InvalidSettings):
        CompressionSettings.from_dict({"rd_weights": [1, 2]})


def test_bad_arguments_are_refused():
    params = {"w": torch.randn(3, 3)}
    with pytest.raises(InvalidSettings):
        output_sensitivity(lambda p, x: x @ p["w"], params, [torch.randn(2, 3)], probes=0)
    with pytest.raises(InvalidSettings):
        output_sensitivity(lambda p, x: x @ p["w"], params, [])
    with pytest.raises(InvalidSettings):
        output_sensitivity(lambda p, x: (x @ p["w"]).argmax(1), params, [torch.randn(2, 3)])
    with pytest.raises(InvalidSettings):
        output_sensitivity(lambda p, x: x, {"i": torch.ones(3, dtype=torch.long)}, [torch.randn(2, 3)])
