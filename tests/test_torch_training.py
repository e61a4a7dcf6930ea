"""The training side: pruning masks hold, shared weights stay tied, centroid gradients are
per-cluster sums, the exported .dcf decodes to exactly the evaluated weights, DSD restores
pruned connections at zero. Small random problems only (the MNIST runs are in benchmarks/)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import dcformat  # noqa: E402
from dcformat.compress import prune_mask  # noqa: E402
from dcformat.encodings.model import Dense, Sparse  # noqa: E402
from dcformat.training import (  # noqa: E402
    Pruner,
    WeightSharing,
    dsd,
    effective_state_dict,
    encode_shared,
    epoch_trainer,
    export_dcf,
    iterative_schedule,
    magnitude_mask,
    prune_and_retrain,
)

torch.set_num_threads(2)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc1 = nn.Linear(4 * 6 * 6, 64)
        self.fc2 = nn.Linear(64, 5)

    def forward(self, x):
        x = torch.max_pool2d(self.conv(x), 1)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 5, (n,), generator=g)
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return Net()


def _steps(model, opt, n=10, seed=0):
    x, y = _data(seed=seed)
    loss_fn = nn.CrossEntropyLoss()
    for i in range(n):
        idx = slice((i * 32) % 256, (i * 32) % 256 + 32)
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()


WEIGHTS = ["conv.weight", "fc1.weight", "fc2.weight"]


# -- pruning -----------------------------------------------------------------------------

def test_magnitude_mask_matches_the_pipeline_and_is_monotone():
    w = torch.randn(40, 30, generator=torch.Generator().manual_seed(1))
    for s in (0.0, 0.3, 0.9):
        assert np.array_equal(magnitude_mask(w, sparsity=s).numpy(), prune_mask(w.numpy(), sparsity=s))
    m1 = magnitude_mask(w, sparsity=0.5)
    m2 = magnitude_mask(w * m1, sparsity=0.8, mask=m1)
    assert not (m2 & ~m1).any() and int((~m2).sum()) == round(0.8 * w.numel())
    assert torch.equal(magnitude_mask(w, sparsity=0.2, mask=m2), m2)  # a lower target prunes nothing
    m3 = magnitude_mask(w, quality=1.0, mask=m1)
    assert not (m3 & ~m1).any()
    survivors = w[m1].double()
    assert torch.equal(m3, m1 & (w.abs().double() >= survivors.std(unbiased=False)))


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
    lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
    lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
], ids=["sgd-momentum-wd", "adam", "adamw"])
def test_masks_hold_through_optimisation(make_opt):
    model = _model()
    opt = make_opt(model.parameters())
    _steps(model, opt, 5)  # dense training first: the optimizer state is non-zero everywhere
    pruner = Pruner(model, WEIGHTS).attach(opt)
    for target in iterative_schedule(0.9, 3):
        pruner.prune(sparsity=target)
        for name, p in pruner.params.items():  # the optimizer state forgot the pruned weights
            for value in opt.state[p].values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    assert (value[~pruner.masks[name]] == 0).all()
        _steps(model, opt, 10, seed=1)
        for name, p in pruner.params.items():
            assert (p[~pruner.masks[name]] == 0).all()
            assert p[pruner.masks[name]].ne(0).all()  # the survivors did train
    assert pruner.sparsity() == pytest.approx({n: 0.9 for n in WEIGHTS}, abs=0.02)  # conv: 32 of 36
    pruner.detach()
    _steps(model, opt, 3, seed=2)  # detached: the pruned weights move again
    assert (model.fc1.weight[~pruner.masks["fc1.weight"]] != 0).any()


def test_prune_and_retrain_runs_a_schedule():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = Pruner(model, ["fc1.weight"])
    seen = []
    history = prune_and_retrain(pruner, opt, lambda epoch: _steps(model, opt, 3), [0.5, 0.75],
                                epochs_per_step=2, after_step=lambda step, s: seen.append(step))
    assert [h["fc1.weight"] for h in history] == pytest.approx([0.5, 0.75], abs=1e-3)
    assert seen == [0, 1]
    assert int((model.fc1.weight == 0).sum()) >= round(0.75 * model.fc1.weight.numel())


# -- trained quantization ----------------------------------------------------------------

def _quantized(bits=3, init="linear", sparsity=0.7, gap_bits="auto"):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    _steps(model, opt, 5)
    pruner = Pruner(model, ["conv.weight", "fc1.weight"])
    pruner.prune(sparsity={"conv.weight": 0.3, "fc1.weight": sparsity})
    q = WeightSharing(model, bits=bits, params=WEIGHTS, init=init, masks=pruner.masks, gap_bits=gap_bits)
    return model, q, pruner


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_tied_weights_stay_tied_and_pruned_stay_zero(init):
    model, q, pruner = _quantized(init=init)
    opt = torch.optim.SGD([{"params": q.codebooks(), "lr": 1e-3}, {"params": q.other_parameters()}],
                          lr=0.05, momentum=0.9, weight_decay=1e-4)
    before = {n: q.codebook(n).clone() for n in WEIGHTS}
    _steps(model, opt, 10, seed=3)
    for name in WEIGHTS:
        w, codes, mask = q.weight(name), q.codes(name), q.mask(name)
        assert torch.equal(getattr(model.get_submodule(name.rsplit(".", 1)[0]), "weight"), w)
        cb = q.codebook(name)
        assert cb.numel() <= 8 and not torch.equal(cb, before[name])  # the centroids trained
        for c in range(cb.numel()):  # every weight of a cluster equals its centroid
            assert (w[codes == c] == cb[c]).all()
        assert (w[~mask] == 0).all()
        if name in pruner.masks:
            assert torch.equal(mask, pruner.masks[name])
    # the untouched original weights are no longer trained
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.endswith(".original"))


def test_centroid_gradient_is_the_per_cluster_sum():
    model, q, _ = _quantized(bits=4)
    x, y = _data(64, seed=4)
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    # The same loss as a function of plain weight tensors: their gradients, summed per cluster.
    w = {n: q.weight(n).requires_grad_(True) for n in WEIGHTS}
    h = torch.max_pool2d(nn.functional.conv2d(x, w["conv.weight"], model.conv.bias), 1)
    h = torch.relu(nn.functional.linear(h.flatten(1), w["fc1.weight"], model.fc1.bias))
    ref_loss = nn.CrossEntropyLoss()(nn.functional.linear(h, w["fc2.weight"], model.fc2.bias), y)
    grads = torch.autograd.grad(ref_loss, [w[n] for n in WEIGHTS])
    for name, g in zip(WEIGHTS, grads):
        k = q.codebook(name).numel()
        codes, mask = q.codes(name), q.mask(name)
        expected = torch.zeros(k, dtype=torch.float64).index_add_(0, codes[mask], g[mask].double())
        got = q.shared(name).codebook.grad.double()
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
        assert got.abs().sum() > 0


def test_fillers_keep_a_code_slot():
    model, q, _ = _quantized(bits=3, sparsity=0.97, gap_bits=2)
    layer = q.layers["fc1.weight"]
    assert layer.gap_bits == 2 and layer.fillers and q.codebook("fc1.weight").numel() <= 7
    assert q.layers["fc2.weight"].gap_bits is None  # not pruned: stored dense


# -- export ------------------------------------------------------------------------------

def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


@pytest.mark.parametrize("huffman", [True, False])
@pytest.mark.parametrize("gap_bits", ["auto", 2])
def test_export_decodes_to_exactly_what_was_evaluated(tmp_path, huffman, gap_bits):
    model, q, _ = _quantized(bits=3, sparsity=0.9, gap_bits=gap_bits)
    opt = torch.optim.SGD([{"params": q.codebooks(), "lr": 1e-3}, {"params": q.other_parameters()}],
                          lr=0.05, momentum=0.9)
    _steps(model, opt, 5, seed=5)
    path = tmp_path / "m.dcf"
    written = export_dcf(model, path, {"note": "test"}, huffman=huffman)
    assert isinstance(written["fc1.weight"].layout, Sparse)
    assert isinstance(written["fc2.weight"].layout, Dense)
    if gap_bits == 2:
        assert written["fc1.weight"].layout.gap_bits == 2
        assert written["fc1.weight"].values.codebook.size <= 8  # the fillers' zero fits the 3 bits
    decoded = dcformat.load_file(path)
    effective = {k: v.numpy() for k, v in effective_state_dict(model).items()}
    assert sorted(decoded) == sorted(n for n, _ in _model().named_parameters())
    for name, value in effective.items():
        assert decoded[name].dtype == value.dtype and decoded[name].shape == value.shape
        assert np.array_equal(_bits(decoded[name]), _bits(value)), name
    # and the plain model with the decoded weights computes the same outputs, bit for bit
    plain = _model(seed=7)
    plain.load_state_dict({k: torch.from_numpy(v) for k, v in decoded.items()})
    x, _ = _data(32, seed=6)
    with torch.no_grad():
        assert torch.equal(plain(x), model(x))
    q.remove()  # back to a plain module holding the shared values
    assert sorted(model.state_dict()) == sorted(decoded)
    assert all(np.array_equal(_bits(v.numpy()), _bits(decoded[k])) for k, v in model.state_dict().items())


def test_encode_shared_edge_cases():
    # duplicate centroids, a -0.0 centroid, fillers with no +0.0 in the codebook
    codebook = np.array([0.5, -0.0, 0.5, -1.0], np.float32)
    codes = np.full((4, 40), 4)
    codes[0, 0], codes[0, 1], codes[1, 5], codes[3, 39] = 0, 1, 2, 3
    enc = encode_shared(codebook, codes, gap_bits=3)
    from dcformat.compress import reconstruct

    expected = np.append(codebook, np.float32(0.0))[codes]
    assert np.array_equal(_bits(reconstruct(enc)), _bits(expected))
    cb = enc.values.codebook
    assert cb.tolist() == [-1.0, -0.0, 0.0, 0.5] and np.signbit(cb[1]) and not np.signbit(cb[2])
    dense = encode_shared(codebook, np.array([[0, 1], [2, 3]]))
    assert isinstance(dense.layout, Dense) and dense.values.codebook.size == 3
    assert np.array_equal(_bits(reconstruct(dense)), _bits(codebook[[[0, 1], [2, 3]]]))


# -- DSD ---------------------------------------------------------------------------------

def test_dsd_restores_pruned_connections_at_zero():
    model = _model()
    x, y = _data()
    loader = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    train = epoch_trainer(model, loader, nn.CrossEntropyLoss())
    opts = {}

    def make_optimizer(phase):
        opts[phase] = torch.optim.SGD(model.parameters(), lr=0.01 if phase == "redense" else 0.05,
                                      momentum=0.9, weight_decay=1e-4)
        return opts[phase]

    snapshots = {}

    def evaluate(phase, epoch):
        snapshots[(phase, epoch)] = model.fc1.weight.detach().clone()
        return {"norm": float(model.fc1.weight.detach().norm())}

    seen_at_start = {}
    original_train = train

    def train_epoch(opt, phase, epoch):
        if phase == "redense" and epoch == 0:
            seen_at_start["fc1"] = model.fc1.weight.detach().clone()
        original_train(opt, phase, epoch)

    result = dsd(model, train_epoch, make_optimizer, epochs=(2, 2, 2), sparsity=0.6,
                 params=["fc1.weight", "fc2.weight"], evaluate=evaluate)
    mask = result.masks["fc1.weight"]
    assert result.sparsity["fc1.weight"] == pytest.approx(0.6, abs=1e-3)
    assert result.restored == sum(int((~m).sum()) for m in result.masks.values())
    assert [(h["phase"], h["epoch"]) for h in result.history] == [
        ("dense", 0), ("dense", 1), ("sparse", 0), ("sparse", 1), ("redense", 0), ("redense", 1)]
    assert all("norm" in h for h in result.history)
    for epoch in (0, 1):  # sparse phase: pruned weights exactly zero
        assert (snapshots[("sparse", epoch)][~mask] == 0).all()
    assert (seen_at_start["fc1"][~mask] == 0).all()  # restored at zero ...
    assert (model.fc1.weight[~mask] != 0).any()  # ... and retrained
    assert (snapshots[("dense", 1)][~mask] != 0).any()


def test_the_bridge_imports_no_training_module():
    import subprocess
    import sys

    code = ("import sys, dcformat.torch, dcformat.safe_open; "
            "assert not [m for m in sys.modules if m.startswith('dcformat.training')], sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("alignment", [None, 8])
def test_export_dcf_aligns_as_writers_do_unless_told(tmp_path, alignment):
    from dcformat.container.file import ContainerFile
    from dcformat.format.constants import DEFAULT_ALIGNMENT

    model = _model()
    path = tmp_path / "m.dcf"
    export_dcf(model, path, **({} if alignment is None else {"alignment": alignment}))
    assert ContainerFile(path.read_bytes()).header.alignment == (alignment or DEFAULT_ALIGNMENT) == (alignment or 64)
    decoded = dcformat.load_file(path)
    assert all(np.array_equal(decoded[k], v.detach().numpy()) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kind", ["shared", "shared, width at export", "raw sparse"])
def test_export_codes_each_stream_once_and_the_writer_stores_it(monkeypatch, kind):
    from dcformat.training import export_tensors

    from .test_encodings_sparse import count_encodes

    if kind == "raw sparse":  # pruned, not quantized
        model = _model()
        Pruner(model, ["fc1.weight"]).prune(sparsity=0.9)
    else:
        model, _, _ = _quantized(bits=3, sparsity=0.9, gap_bits="auto" if kind == "shared" else None)
    calls = count_encodes(monkeypatch)
    tensors = export_tensors(model, raw_sparse=kind == "raw sparse")
    assert isinstance(tensors["fc1.weight"].layout, Sparse)
    coded = len(calls)
    data = dcformat.save(tensors)
    assert len(calls) == coded  # the writer stored the streams as the export coded them
    effective = effective_state_dict(model)  # (raw_sparse stores a pruned -0.0 as +0.0)
    assert all(np.array_equal(v, effective[k].numpy()) for k, v in dcformat.load(data).items())
