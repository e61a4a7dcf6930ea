"""Reproduce Deep Compression's MNIST results (Han et al. 2016, Tables 2 and 3) with dcformat.torch.

    python benchmarks/paper_mnist.py --model lenet300     # about 4 minutes on a shared 2-core machine
    python benchmarks/paper_mnist.py --model lenet5       # about 6.5 minutes; 10 with --train-reference

Each run: the reference network (LeNet-300-100: the bundled examples/lenet300 model;
LeNet-5: trained here once and cached as ``results/lenet5-reference.safetensors``),
iterative magnitude pruning with retraining, trained quantization (per-layer codebooks,
centroids trained with the per-cluster summed gradients), export of the trained codebooks
and codes to ``results/<model>.dcf`` (Huffman-coded) and, to show the stages apart, the same
tensors with fixed-width streams. It prints and writes ``results/<model>.txt``:

- the paper-style table: per layer the weights, the kept fraction, bits per code and per
  gap before and after Huffman coding, bytes and compression rate; totals over the whole
  file (headers, codebooks and biases included);
- the test error of the reference and of the ``.dcf``, decoded with ``dcformat.load_file``
  and evaluated in numpy (and a check that the decoded weights equal, bit for bit, those
  the trained model evaluated with);
- the three centroid initialisations compared, the accuracy-versus-compression points,
  and for LeNet-300-100 a Dense-Sparse-Dense run against a dense baseline trained as long.

Plots (PNG, needs matplotlib): ``<model>_centroid_inits.png`` (the paper's Fig. 4: a
layer's weight distribution with the starting centroids of the three initialisations) and
``<model>_accuracy_vs_compression.png``. ``results/<model>.json`` holds every figure.

Training uses one thread by default: on a shared 2-core machine two torch threads were
measured 10-40x slower than one (they wait on each other whenever the other core is busy).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import dcformat  # noqa: E402
from dcformat.inspect import describe  # noqa: E402
from dcformat.training import (  # noqa: E402
    Pruner,
    WeightSharing,
    dsd,
    effective_state_dict,
    export_dcf,
    iterative_schedule,
)
from examples import lenet300  # noqa: E402
from examples.mnist import load_mnist  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

PAPER = {
    "lenet300": dict(name="LeNet-300-100", ref_error=1.64, error=1.58, kb_before=1070, kb_after=27, ratio=40),
    "lenet5": dict(name="LeNet-5", ref_error=0.80, error=0.74, kb_before=1720, kb_after=44, ratio=39),
}


@dataclass
class Config:
    """Everything one reproduction does (the defaults are what the committed results used)."""

    model: str
    # reference (LeNet-5 only; LeNet-300-100 uses the bundled model)
    ref_epochs: int = 0
    ref_lr: float = 0.05
    ref_wd: float = 5e-4
    # pruning with retraining: final sparsity per tensor, reached in `prune_steps` rounds
    sparsity: dict = field(default_factory=dict)
    prune_steps: int = 3
    prune_epochs: int = 2  # retraining epochs after each round
    prune_lr: float = 0.1  # peak of a cosine schedule restarted each round
    prune_wd: float = 5e-4
    # trained quantization
    bits: dict = field(default_factory=dict)
    init: str = "linear"
    quant_epochs: int = 3
    quant_lr: float = 0.01  # codebooks and biases, SGD momentum 0.9, cosine
    batch: int = 128
    seed: int = 0
    fig4_layer: str = ""
    sweep_bits: tuple = (2, 3, 4, 5, 6)
    sweep_epochs: int = 1  # fine-tuning epochs per point of the bits sweep (0: none)
    init_epochs: int = 1  # fine-tuning epochs per initialisation compared
    dsd_epochs: tuple = (0, 0, 0)
    dsd_sparsity: float = 0.5
    dsd_seeds: tuple = (0, 1, 2)
    dsd_lr: tuple = (0.1, 0.1, 0.01)


CONFIGS = {
    "lenet300": Config(
        model="lenet300",
        sparsity={"ip1.weight": 0.93, "ip2.weight": 0.90, "ip3.weight": 0.70},
        prune_steps=3, prune_epochs=6, prune_lr=0.1, prune_wd=5e-4,
        bits={"ip1.weight": 4, "ip2.weight": 4, "ip3.weight": 4},
        quant_epochs=3, quant_lr=0.01, fig4_layer="ip1.weight",
        sweep_epochs=1, init_epochs=2,
        dsd_epochs=(4, 4, 4), dsd_sparsity=0.5,
    ),
    "lenet5": Config(
        model="lenet5",
        ref_epochs=6, ref_lr=0.05, ref_wd=5e-4,
        sparsity={"conv1.weight": 0.30, "conv2.weight": 0.88, "ip1.weight": 0.95, "ip2.weight": 0.80},
        prune_steps=3, prune_epochs=3, prune_lr=0.05, prune_wd=5e-4,
        bits={"conv1.weight": 6, "conv2.weight": 6, "ip1.weight": 4, "ip2.weight": 4},
        quant_epochs=1, quant_lr=0.001, fig4_layer="conv2.weight",
        sweep_epochs=0, init_epochs=0,
    ),
}


# -- models and data ---------------------------------------------------------------------

def make_model(name: str) -> nn.Module:
    if name == "lenet300":
        return lenet300.LeNet300()
    from benchmarks.lenet5 import LeNet5

    return LeNet5()


def numpy_evaluate(name: str, state: dict, images: np.ndarray, labels: np.ndarray) -> float:
    if name == "lenet300":
        return lenet300.evaluate(state, images, labels)
    from benchmarks.lenet5 import evaluate

    return evaluate(state, images, labels)


class Data:
    def __init__(self):
        xtr, ytr = load_mnist("train")
        self.test_images, self.test_labels = load_mnist("test")
        self.x_train = torch.from_numpy(lenet300.preprocess(xtr))
        self.y_train = torch.from_numpy(ytr.astype(np.int64))
        self.x_test = torch.from_numpy(lenet300.preprocess(self.test_images))
        self.y_test = torch.from_numpy(self.test_labels.astype(np.int64))


def accuracy(model: nn.Module, data: Data) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, data.x_test.shape[0], 2000):
            correct += int((model(data.x_test[s:s + 2000]).argmax(1) == data.y_test[s:s + 2000]).sum())
    return correct / data.x_test.shape[0]


def cosine(optimizer, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total_steps) / max(total_steps, 1))))


def train(model: nn.Module, optimizer, data: Data, epochs: int, batch: int, gen: torch.Generator,
          log=None, what: str = "") -> None:
    """``epochs`` epochs of cross-entropy training, the learning rate following a cosine to 0."""
    n = data.x_train.shape[0]
    steps = math.ceil(n / batch)
    sched = cosine(optimizer, epochs * steps)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        t0, total = time.perf_counter(), 0.0
        for i in range(steps):
            idx = perm[i * batch:(i + 1) * batch]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            optimizer.step()
            sched.step()
            total += float(loss.detach())
        if log is not None:
            log(f"  {what} epoch {epoch + 1}/{epochs}: loss {total / steps:.4f}, "
                f"test acc {100 * accuracy(model, data):.2f} % ({time.perf_counter() - t0:.1f} s)")


def load_weights(model: nn.Module, state: dict) -> None:
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})


def reference(cfg: Config, data: Data, log, retrain: bool) -> tuple[dict, str]:
    """The reference weights (numpy) and where they came from."""
    if cfg.model == "lenet300":
        state, _ = lenet300.load_state_dict()
        return state, f"bundled {lenet300.WEIGHTS_PATH.relative_to(ROOT)}"
    from safetensors.numpy import load_file as st_load
    from safetensors.torch import save_file as st_save

    path = RESULTS / f"{cfg.model}-reference.safetensors"
    if path.exists() and not retrain:
        return st_load(str(path)), f"cached {path.relative_to(ROOT)} (--train-reference retrains it)"
    torch.manual_seed(cfg.seed)
    model = make_model(cfg.model)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.ref_lr, momentum=0.9, weight_decay=cfg.ref_wd)
    log(f"training the {PAPER[cfg.model]['name']} reference: {cfg.ref_epochs} epochs, SGD lr {cfg.ref_lr} "
        f"momentum 0.9 wd {cfg.ref_wd}, cosine, batch {cfg.batch}")
    train(model, opt, data, cfg.ref_epochs, cfg.batch, gen, log, "reference")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    acc = numpy_evaluate(cfg.model, {k: v.numpy() for k, v in state.items()}, data.test_images, data.test_labels)
    st_save(state, str(path), metadata={
        "model": PAPER[cfg.model]["name"], "dataset": "MNIST", "test_accuracy": f"{acc:.4f}",
        "trained_by": "benchmarks/paper_mnist.py", "epochs": str(cfg.ref_epochs), "seed": str(cfg.seed),
        "optimizer": f"SGD lr={cfg.ref_lr} momentum=0.9 weight_decay={cfg.ref_wd}, cosine per step, "
                     f"batch {cfg.batch}", "framework": f"torch {torch.__version__}"})
    return {k: v.numpy() for k, v in state.items()}, f"trained here, saved to {path.relative_to(ROOT)}"


#: The published sizes were written with 8-byte alignment (readers take any power of two
#: from 8 to 4096; writers default to 64): the table stays comparable with the paper's.
ALIGNMENT = 8

# -- sizes -------------------------------------------------------------------------------

def file_size(model: nn.Module, **kwargs) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.dcf"
        export_dcf(model, path, **{"alignment": ALIGNMENT, **kwargs})
        return path.stat().st_size


def dense_bytes(state: dict) -> int:
    return sum(np.asarray(v).size * 4 for v in state.values())


# -- the table ---------------------------------------------------------------------------

def paper_table(order: list[str], packed_path: Path, huffman_path: Path, kept: dict) -> tuple[str, list[dict]]:
    """Per layer: weights, kept %, bits per code and per gap before/after Huffman, bytes, rate."""
    rows_p, _, size_p = describe(packed_path)
    rows_h, _, size_h = describe(huffman_path)
    rows_h.sort(key=lambda r: order.index(r.name) if r.name in order else len(order))
    by_p = {r.name: r for r in rows_p}
    head = (f"{'layer':<14}{'weights':>9}{'kept':>8}{'entries':>9}{'cb':>5}"
            f"{'code bits':>11}{'(+H)':>7}{'gap bits':>10}{'(+H)':>7}"
            f"{'bytes P+Q':>11}{'(+H)':>8}{'rate P+Q':>10}{'(+H)':>8}")
    lines = [head, "-" * len(head)]
    out = []
    tot = dict(weights=0, nz=0, bp=0, bh=0, dense=0)

    def fmt_bits(v):
        return "-" if v is None else f"{v:.2f}"

    for rh in rows_h:
        rp = by_p[rh.name]
        n_kept = kept.get(rh.name, rh.elements)
        pct = 100.0 * n_kept / rh.elements
        enc = rh.encoding
        row = dict(name=rh.name, encoding=enc, weights=rh.elements, kept=n_kept, kept_percent=pct,
                   entries=rh.stored, codebook=rh.codebook_size,
                   code_bits_packed=rp.bits_per_code, code_bits_huffman=rh.bits_per_code,
                   gap_bits_packed=rp.bits_per_gap, gap_bits_huffman=rh.bits_per_gap,
                   bytes_packed=rp.payload_bytes, bytes_huffman=rh.payload_bytes, dense_bytes=rh.dense_bytes)
        out.append(row)
        tot["weights"] += rh.elements
        tot["nz"] += n_kept
        tot["bp"] += rp.payload_bytes
        tot["bh"] += rh.payload_bytes
        tot["dense"] += rh.dense_bytes
        lines.append(
            f"{rh.name:<14}{rh.elements:>9,}{pct:>7.1f}%{rh.stored:>9,}{(rh.codebook_size or '-'):>5}"
            f"{fmt_bits(rp.bits_per_code):>11}{fmt_bits(rh.bits_per_code):>7}"
            f"{fmt_bits(rp.bits_per_gap):>10}{fmt_bits(rh.bits_per_gap):>7}"
            f"{rp.payload_bytes:>11,}{rh.payload_bytes:>8,}"
            f"{100 * rp.payload_bytes / rh.dense_bytes:>9.2f}%{100 * rh.payload_bytes / rh.dense_bytes:>7.2f}%")
    lines.append("-" * len(head))
    lines.append(
        f"{'tensors':<14}{tot['weights']:>9,}{100 * tot['nz'] / tot['weights']:>7.1f}%{'':>9}{'':>5}"
        f"{'':>11}{'':>7}{'':>10}{'':>7}{tot['bp']:>11,}{tot['bh']:>8,}"
        f"{100 * tot['bp'] / tot['dense']:>9.2f}%{100 * tot['bh'] / tot['dense']:>7.2f}%")
    lines.append(
        f"{'whole file':<14}{'':>9}{'':>8}{'':>9}{'':>5}{'':>11}{'':>7}{'':>10}{'':>7}"
        f"{size_p:>11,}{size_h:>8,}{100 * size_p / tot['dense']:>9.2f}%{100 * size_h / tot['dense']:>7.2f}%")
    lines.append(f"compression (fp32 parameter bytes / whole file): {tot['dense'] / size_p:.1f}x with "
                 f"fixed-width streams (P+Q), {tot['dense'] / size_h:.1f}x with Huffman (P+Q+H): "
                 f"{tot['dense']:,} -> {size_h:,} bytes")
    lines.append("(kept: non-zero weights; entries: stored entries, fillers included; cb: codebook entries;"
                 "\n code/gap bits: per stored entry, stream tables and chunk entries included; bytes: "
                 "codebook + gaps + codes\n segments, or the raw values; rate: bytes / fp32 bytes; "
                 "P pruning, Q quantization, H Huffman\n (a stream of at most 16K symbols stays at fixed "
                 "width when that is smaller: dcformat.streams.stream_codec))")
    return "\n".join(lines), out


# -- plots -------------------------------------------------------------------------------

def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        return None


def plot_inits(path: Path, title: str, values: np.ndarray, k: int, log) -> bool:
    from dcformat.compress import initial_centroids

    plt = _pyplot()
    if plt is None:
        log("matplotlib missing: no plots (pip install matplotlib)")
        return False
    xs = np.sort(values.astype(np.float64))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True)
    a1.hist(xs, bins=200, density=True, color="0.7")
    a1.set_ylabel("density (PDF)")
    cdf = np.arange(1, xs.size + 1) / xs.size
    a2.plot(xs, cdf, color="0.4", lw=1.2)
    a2.set_ylabel("CDF")
    a2.set_xlabel("weight value")
    styles = {"density": ("o", "tab:blue", 0.2), "linear": ("^", "tab:red", 0.5), "random": ("x", "tab:green", 0.8)}
    ymax = a1.get_ylim()[1]
    for init, (marker, color, frac) in styles.items():
        c = initial_centroids(xs, k, init, seed=0)
        a1.plot(c, np.full(c.size, frac * ymax), marker, color=color, ms=6, ls="none", label=f"{init} init")
        a2.plot(c, np.interp(c, xs, cdf), marker, color=color, ms=6, ls="none", label=f"{init} init")
    a1.legend(loc="upper right", fontsize=8)
    a1.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_accuracy(path: Path, title: str, series: dict, ref_acc: float, chosen: tuple, paper: dict) -> None:
    plt = _pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    marks = {"pruning, no retraining": ("s--", "0.6"), "pruning + retraining": ("o-", "tab:blue"),
             "+ trained quantization (all layers b bits)": ("^-", "tab:red"),
             "+ quantization, no fine-tuning": ("v:", "tab:orange")}
    for label, pts in series.items():
        if not pts:
            continue
        style, color = marks.get(label, ("o-", None))
        pts = sorted(pts, key=lambda p: p[0])
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], style, color=color, label=label, ms=5)
        for p in pts:
            if len(p) > 2:
                below = label.startswith("+")
                ax.annotate(p[2], (p[0], 100 * p[1]), fontsize=7, textcoords="offset points",
                            xytext=(2, -10) if below else (3, 3))
    ax.plot([chosen[0]], [100 * chosen[1]], "*", color="k", ms=14, label="the committed .dcf")
    ax.axhline(100 * ref_acc, color="0.3", lw=0.8, label=f"reference {100 * ref_acc:.2f} %")
    ax.axhline(100 * ref_acc - 0.1, color="0.3", lw=0.8, ls=":", label="reference - 0.1 points")
    ax.plot([paper["ratio"]], [100 - paper["error"]], "D", color="tab:purple", ms=7,
            label=f"paper: {paper['ratio']}x at {100 - paper['error']:.2f} %")
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax.xaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 100, 200]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("compression (fp32 parameter bytes / whole .dcf file)")
    ax.set_ylabel("test accuracy (%)")
    lo = min([100 * p[1] for pts in series.values() for p in pts] + [100 * ref_acc - 0.5])
    ax.set_ylim(max(lo - 0.2, 100 * ref_acc - 3.0), 100 * ref_acc + 0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_dsd(path: Path, runs: list[dict], epochs: tuple) -> None:
    plt = _pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, run in enumerate(runs):
        x = np.arange(1, len(run["dsd_curve"]) + 1)
        ax.plot(x, [100 * a for a in run["dsd_curve"]], "-", color="tab:red", alpha=0.7,
                label="DSD" if i == 0 else None)
        ax.plot(x, [100 * a for a in run["baseline_curve"]], "-", color="tab:blue", alpha=0.7,
                label="dense baseline, same schedule" if i == 0 else None)
    for b in (epochs[0] + 0.5, epochs[0] + epochs[1] + 0.5):
        ax.axvline(b, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("epoch (dense | sparse | re-dense)")
    ax.set_ylabel("test accuracy (%)")
    allv = [100 * a for r in runs for a in r["dsd_curve"] + r["baseline_curve"]]
    ax.set_ylim(max(min(allv), max(allv) - 1.5), max(allv) + 0.1)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.set_title("LeNet-300-100: Dense-Sparse-Dense vs dense training of the same length", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- DSD ---------------------------------------------------------------------------------

def run_dsd(cfg: Config, data: Data, log) -> list[dict]:
    runs = []
    n = data.x_train.shape[0]
    steps = math.ceil(n / cfg.batch)
    for seed in cfg.dsd_seeds:
        result = {"seed": seed}
        for kind in ("dsd", "baseline"):
            torch.manual_seed(seed)
            model = make_model(cfg.model)
            gen = torch.Generator().manual_seed(seed)
            curve = []
            scheds = {}

            def make_optimizer(phase, model=model, scheds=scheds):
                lr = cfg.dsd_lr[("dense", "sparse", "redense").index(phase)]
                opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
                e = cfg.dsd_epochs[("dense", "sparse", "redense").index(phase)]
                scheds[phase] = cosine(opt, e * steps)
                return opt

            def train_epoch(opt, phase, epoch, model=model, gen=gen, scheds=scheds):
                model.train()
                perm = torch.randperm(n, generator=gen)
                for i in range(steps):
                    idx = perm[i * cfg.batch:(i + 1) * cfg.batch]
                    opt.zero_grad(set_to_none=True)
                    nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
                    opt.step()
                    scheds[phase].step()

            def evaluate(phase, epoch, model=model, curve=curve):
                curve.append(accuracy(model, data))
                return {"accuracy": curve[-1]}

            if kind == "dsd":
                dsd(model, train_epoch, make_optimizer, epochs=cfg.dsd_epochs, sparsity=cfg.dsd_sparsity,
                    evaluate=evaluate)
            else:  # the same three phases, optimizers and learning rates, nothing pruned
                for phase, e in zip(("dense", "sparse", "redense"), cfg.dsd_epochs):
                    opt = make_optimizer(phase)
                    for epoch in range(e):
                        train_epoch(opt, phase, epoch)
                        evaluate(phase, epoch)
            result[f"{kind}_curve"] = curve
            result[kind] = curve[-1]
        sparse_end = result["dsd_curve"][cfg.dsd_epochs[0] + cfg.dsd_epochs[1] - 1]
        result["sparse_phase_end"] = sparse_end
        log(f"  seed {seed}: DSD {100 * result['dsd']:.2f} % (end of sparse phase {100 * sparse_end:.2f} %), "
            f"dense baseline {100 * result['baseline']:.2f} %")
        runs.append(result)
    return runs


# -- the reproduction --------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, see the notes)")
    ap.add_argument("--train-reference", action="store_true", help="LeNet-5: retrain the cached reference")
    ap.add_argument("--no-dsd", action="store_true", help="skip the DSD comparison (LeNet-300-100)")
    ap.add_argument("--no-extras", action="store_true",
                    help="skip the initialisation comparison, the bits sweep and the plots")
    args = ap.parse_args(argv)
    cfg = CONFIGS[args.model]
    paper = PAPER[cfg.model]
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    t_start = time.perf_counter()
    lines: list[str] = []

    def log(msg: str = "") -> None:
        print(msg, flush=True)
        lines.append(msg)

    def elapsed() -> str:
        return f"[{time.perf_counter() - t_start:.0f} s]"

    log(f"Deep Compression on MNIST: {paper['name']} (benchmarks/paper_mnist.py --model {cfg.model})")
    log(f"torch {torch.__version__}, {args.threads} thread(s), dcformat {dcformat.__version__}")
    data = Data()
    figures: dict = {"model": paper["name"], "config": {k: (list(v) if isinstance(v, tuple) else v)
                                                        for k, v in cfg.__dict__.items()}}

    # 1. Reference
    ref_state, ref_source = reference(cfg, data, log, args.train_reference)
    ref_acc = numpy_evaluate(cfg.model, ref_state, data.test_images, data.test_labels)
    total_bytes = dense_bytes(ref_state)
    log(f"reference: {ref_source}; test error {100 * (1 - ref_acc):.2f} % (numpy); "
        f"{sum(np.asarray(v).size for v in ref_state.values()):,} parameters, {total_bytes:,} bytes as fp32 "
        f"{elapsed()}")
    figures["reference"] = dict(source=ref_source, accuracy=ref_acc, error=100 * (1 - ref_acc),
                                fp32_bytes=total_bytes)
    ref_model = make_model(cfg.model)
    load_weights(ref_model, ref_state)
    ref_point = (total_bytes / file_size(ref_model), ref_acc)
    series: dict[str, list] = {"pruning, no retraining": [ref_point], "pruning + retraining": [ref_point],
                               "+ trained quantization (all layers b bits)": [],
                               "+ quantization, no fine-tuning": []}

    torch.manual_seed(cfg.seed)
    model = make_model(cfg.model)
    load_weights(model, ref_state)
    gen = torch.Generator().manual_seed(cfg.seed)

    # 2. Pruning with retraining
    log()
    log(f"== pruning: {cfg.prune_steps} rounds to {cfg.sparsity}, {cfg.prune_epochs} epochs of retraining "
        f"after each (SGD momentum 0.9, wd {cfg.prune_wd}, lr {cfg.prune_lr} cosine to 0 each round)")
    names = list(cfg.sparsity)
    pruner = Pruner(model, names)
    schedules = {n: iterative_schedule(s, cfg.prune_steps) for n, s in cfg.sparsity.items()}
    prune_log = []
    for step in range(cfg.prune_steps):
        target = {n: schedules[n][step] for n in names}
        pruner.prune(sparsity=target)
        before = accuracy(model, data)
        # the same sparsity applied to the reference without any retraining
        plain = make_model(cfg.model)
        load_weights(plain, ref_state)
        Pruner(plain, names).prune(sparsity=target)
        plain_acc = accuracy(plain, data)
        plain_ratio = total_bytes / file_size(plain, raw_sparse=True)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.prune_lr, momentum=0.9, weight_decay=cfg.prune_wd)
        pruner.attach(opt)
        train(model, opt, data, cfg.prune_epochs, cfg.batch, gen, log, f"round {step + 1}")
        pruner.detach()
        after = accuracy(model, data)
        kept, n_all = pruner.kept()
        ratio = total_bytes / file_size(model, raw_sparse=True)
        label = f"{100 * kept / n_all:.1f}%"
        series["pruning, no retraining"].append((plain_ratio, plain_acc))
        series["pruning + retraining"].append((ratio, after, label))
        prune_log.append(dict(target=target, kept_fraction=kept / n_all, accuracy_pruned=before,
                              accuracy_retrained=after, accuracy_without_any_retraining=plain_acc,
                              ratio_fp32_sparse=ratio))
        log(f"round {step + 1}: sparsity {', '.join(f'{n} {100 * s:.1f} %' for n, s in target.items())}; "
            f"{100 * kept / n_all:.1f} % of the weights kept; test acc {100 * before:.2f} % pruned -> "
            f"{100 * after:.2f} % retrained (never retrained: {100 * plain_acc:.2f} %); stored sparse fp32: "
            f"{ratio:.1f}x {elapsed()}")
    figures["pruning"] = prune_log
    pruned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    masks = pruner.state_dict()

    # 3. Trained quantization
    def quantize(bits, init, epochs, lr=cfg.quant_lr, verbose=False):
        m = make_model(cfg.model)
        m.load_state_dict(pruned_state)
        q = WeightSharing(m, bits=bits, masks=masks, init=init, seed=cfg.seed)
        acc0 = accuracy(m, data)
        if epochs:
            opt = torch.optim.SGD([{"params": q.codebooks()}, {"params": q.other_parameters()}],
                                  lr=lr, momentum=0.9)
            train(m, opt, data, epochs, cfg.batch, torch.Generator().manual_seed(cfg.seed + 1),
                  log if verbose else None, "quantized")
        return m, q, acc0, accuracy(m, data)

    log()
    log(f"== trained quantization: bits {cfg.bits}, {cfg.init} initialisation, k-means, then {cfg.quant_epochs} "
        f"epochs training the centroids (summed gradients) and biases: SGD lr {cfg.quant_lr} momentum 0.9 cosine")
    qmodel, q, q_acc0, q_acc = quantize(cfg.bits, cfg.init, cfg.quant_epochs, verbose=True)
    log(f"quantized: test acc {100 * q_acc0:.2f} % before fine-tuning, {100 * q_acc:.2f} % after "
        f"(gap widths chosen: {({n: l.gap_bits for n, l in q.layers.items()})}) {elapsed()}")

    # 4. Export: the trained codebooks and codes, Huffman-coded (the committed file) and packed
    dcf_path = out_dir / f"{cfg.model}.dcf"
    metadata = {"model": paper["name"], "dataset": "MNIST", "produced_by": "benchmarks/paper_mnist.py",
                "method": "pruning + retraining, trained quantization, Huffman coding"}
    export_dcf(qmodel, dcf_path, metadata, overwrite=True, alignment=ALIGNMENT)
    with tempfile.TemporaryDirectory() as tmp:
        packed_path = Path(tmp) / "packed.dcf"
        export_dcf(qmodel, packed_path, metadata, huffman=False, alignment=ALIGNMENT)
        kept_counts = {n: int(m.sum()) for n, m in masks.items()}
        table, rows = paper_table(list(ref_state), packed_path, dcf_path, kept_counts)
        size_packed = packed_path.stat().st_size
    size = dcf_path.stat().st_size

    # 5. Decode the file and evaluate it in numpy
    decoded = dcformat.load_file(dcf_path)
    effective = {k: v.numpy() for k, v in effective_state_dict(qmodel).items()}
    exact = sorted(decoded) == sorted(effective) and all(
        decoded[k].dtype == effective[k].dtype and decoded[k].tobytes() == effective[k].tobytes() for k in effective)
    dcf_acc = numpy_evaluate(cfg.model, decoded, data.test_images, data.test_labels)
    ratio = total_bytes / size
    log()
    log(f"== {dcf_path.relative_to(ROOT) if dcf_path.is_relative_to(ROOT) else dcf_path}: {size:,} bytes")
    log(table)
    log()
    log(f"decoded weights equal the trained model's, bit for bit: {exact}")
    log(f"test error: reference {100 * (1 - ref_acc):.2f} %, decoded .dcf {100 * (1 - dcf_acc):.2f} % "
        f"(numpy on dcformat.load_file; torch on the trained model: {100 * (1 - q_acc):.2f} %)")
    log(f"size: {total_bytes / 1000:.0f} KB -> {size / 1000:.1f} KB, {ratio:.1f}x")
    log(f"paper: {paper['kb_before']} KB -> {paper['kb_after']} KB, {paper['ratio']}x, error {paper['error']:.2f} % "
        f"(reference {paper['ref_error']:.2f} %)")
    ok = ratio >= 45 and 100 * (1 - dcf_acc) <= 100 * (1 - ref_acc) + 0.1 + 1e-9
    log(f"target (>= 45x, error <= reference + 0.1 = {100 * (1 - ref_acc) + 0.1:.2f} %): "
        f"{'MET' if ok else 'NOT MET'} {elapsed()}")
    figures["result"] = dict(file=str(dcf_path.name), bytes=size, bytes_packed_streams=size_packed, ratio=ratio,
                             ratio_packed_streams=total_bytes / size_packed, accuracy=dcf_acc,
                             error=100 * (1 - dcf_acc), torch_accuracy=q_acc, accuracy_before_finetune=q_acc0,
                             bit_exact=exact, target_met=ok, layers=rows)
    figures["paper"] = paper
    chosen = (ratio, dcf_acc)
    series["+ trained quantization (all layers b bits)"] = []

    if not args.no_extras:
        # 6. The three initialisations (paper Fig. 4 and 5)
        log()
        log(f"== centroid initialisation ({cfg.bits} bits, {cfg.init_epochs} fine-tuning epoch(s) each)")
        inits = {}
        for init in ("linear", "density", "random"):
            _, _, a0, a1 = quantize(cfg.bits, init, cfg.init_epochs)
            inits[init] = dict(before_finetune=a0, after_finetune=a1)
            log(f"  {init:8s} test acc {100 * a0:.2f} % after k-means" +
                (f", {100 * a1:.2f} % after fine-tuning" if cfg.init_epochs else "") + f" {elapsed()}")
        figures["inits"] = inits
        layer = cfg.fig4_layer
        w = pruned_state[layer].numpy()[masks[layer].numpy()]
        k = (1 << cfg.bits[layer]) - (1 if q.layers[layer].fillers else 0)
        png = out_dir / f"{cfg.model}_centroid_inits.png"
        if plot_inits(png, f"{paper['name']} {layer} after pruning ({w.size:,} weights): "
                           f"starting centroids, k = {k}", w, k, log):
            log(f"  wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")

        # 7. Accuracy versus compression: every layer at b bits
        log()
        log(f"== accuracy vs compression: every pruned layer at b bits, {cfg.init} init, "
            f"{cfg.sweep_epochs} fine-tuning epoch(s)")
        sweep = []
        for b in cfg.sweep_bits:
            bits = {n: b for n in cfg.bits}
            m, _, a0, a1 = quantize(bits, cfg.init, cfg.sweep_epochs)
            r = total_bytes / file_size(m)
            sweep.append(dict(bits=b, ratio=r, before_finetune=a0, after_finetune=a1))
            series["+ quantization, no fine-tuning"].append((r, a0))
            if cfg.sweep_epochs:
                series["+ trained quantization (all layers b bits)"].append((r, a1, f"{b}b"))
            else:
                series["+ quantization, no fine-tuning"][-1] = (r, a0, f"{b}b")
            log(f"  {b} bits: {r:.1f}x, test acc {100 * a0:.2f} %" +
                (f" -> {100 * a1:.2f} % fine-tuned" if cfg.sweep_epochs else "") + f" {elapsed()}")
        figures["sweep"] = sweep
        png = out_dir / f"{cfg.model}_accuracy_vs_compression.png"
        plot_accuracy(png, f"{paper['name']} on MNIST: test accuracy vs compression", series, ref_acc, chosen,
                      paper)
        if _pyplot() is not None:
            log(f"  wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    figures["series"] = {k: [list(p) for p in v] for k, v in series.items()}

    # 8. DSD
    if cfg.dsd_epochs != (0, 0, 0) and not args.no_dsd:
        log()
        log(f"== DSD on {paper['name']} from scratch: epochs (dense, sparse, re-dense) = {cfg.dsd_epochs}, "
            f"sparsity {cfg.dsd_sparsity} of every weight matrix, peak lr {cfg.dsd_lr} (SGD momentum 0.9, wd 1e-4, "
            f"cosine per phase); baseline: the same phases and learning rates, nothing pruned")
        runs = run_dsd(cfg, data, log)
        d = np.array([r["dsd"] for r in runs])
        b = np.array([r["baseline"] for r in runs])
        log(f"  mean over {len(runs)} seeds: DSD {100 * d.mean():.2f} % (error {100 * (1 - d.mean()):.2f} %), "
            f"dense baseline {100 * b.mean():.2f} % (error {100 * (1 - b.mean()):.2f} %); "
            f"DSD - baseline per seed: {', '.join(f'{100 * x:+.2f}' for x in d - b)} points {elapsed()}")
        figures["dsd"] = dict(runs=runs, mean_dsd=float(d.mean()), mean_baseline=float(b.mean()))
        if not args.no_extras:
            png = out_dir / f"{cfg.model}_dsd.png"
            plot_dsd(png, runs, cfg.dsd_epochs)
            if _pyplot() is not None:
                log(f"  wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")

    log()
    log(f"total time {time.perf_counter() - t_start:.0f} s")
    (out_dir / f"{cfg.model}.txt").write_text("\n".join(lines) + "\n")
    (out_dir / f"{cfg.model}.json").write_text(json.dumps(figures, indent=1, default=float) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
