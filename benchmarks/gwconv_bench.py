"""Global Weight (one kernel bank for the whole network) on Fashion-MNIST with a narrow ResNet-20.

    apt-get install dataset-fashion-mnist          # the data: /usr/share/datasets/fashion-mnist/
    python benchmarks/gwconv_bench.py              # 27 minutes on one CPU thread (2 shared cores, load 2)
    python benchmarks/gwconv_bench.py --dataset mnist    # MNIST from ../shared/datasets/mnist/

A ResNet-20-style network (3 stages of 3 basic blocks, 8/16/32 channels, 1x1 projection
shortcuts, BN) is trained on the 60,000 training images; every accuracy is top-1 on the
full 10,000-image test set. For each bank size L a copy is then

1. converted post-hoc (:func:`dcformat.training.gwconv.convert_to_gwconv`: network-wide
   k-means of all 3x3 kernels),
2. fine-tuned for ``--tune-steps`` (bank, selectors by the straight-through rule, BN, fc,
   1x1 convs),
3. quantized: bank values to ``--bank-bits`` bits (then fixed), the fc layer and the 1x1
   convs to ``--other-bits``-bit per-tensor codebooks (trained quantization,
   :class:`dcformat.training.quantize.WeightSharing`), then fine-tuned ``--quant-steps``,
4. BN running statistics recomputed on ``--bn-batches`` training batches
   (:func:`~dcformat.training.gwconv.recalibrate_batchnorm_`), and written with
   :func:`~dcformat.training.gwconv.save_gw` (selectors and codes Huffman-coded or packed,
   whichever is smaller; BN parameters, statistics and the fc bias raw float32).

The decoded file is checked bit-equal to the module's weights, and the plain ``nn.Conv2d``
network loaded from it gives the module's logits exactly.

Fair comparison: the GW copies train ``--tune-steps + --quant-steps`` steps beyond the
baseline, so the baseline is trained on for the same steps with the same optimizer and
schedules (all weights, float32): 'drop' is that continued baseline minus the GW network.
BN recalibration is measured at three points (after conversion, after quantization, at
the end): the columns without it are the same networks with the running statistics
training left them.

Scale: the narrow net has H = sum(I*O) = 7,432 channel pairs against 29,744 for the slides'
ResNet-20 (16/32/64 on CIFAR-10), so the slides' L in {10000, ..., 500} are scaled by
H / 29,744 (L / H is what sets the parameter ratio). Parameter ratio is counted as the
slides do: whole-network parameters with K*H conv weights vs with K*L + H (fc, 1x1 convs
and BN at their float32 count on both sides). Byte ratio: the continued baseline's raw
float32 .dcf (written the same way, alignment 8) over the GW .dcf.

A first short run compares the training rules for the rounding at one L (bank only /
straight-through / periodic reassignment), same steps and learning rates.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcformat.inspect import describe  # noqa: E402
from dcformat.numpy import load_file  # noqa: E402
from dcformat.training.export import export_dcf  # noqa: E402
from dcformat.training.gwconv import (  # noqa: E402
    clamp_selectors_, convert_to_gwconv, freeze_selectors, gw_layers, parameter_counts, quantize_bank_,
    reassign_, recalibrate_batchnorm_, save_gw)
from dcformat.training.quantize import WeightSharing  # noqa: E402
from examples.mnist import FASHION_MNIST_DIR, load_mnist  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SCRIPT = "benchmarks/gwconv_bench.py"
SLIDES_H = 29_744
NARROW_H = 7_432  # sum(I*O) over the 3x3 convs of ResNet20() below
SLIDES = {10000: (2.18, 85.64), 7500: (2.66, 85.73), 5000: (3.41, 85.46), 2500: (4.75, 84.36),
          1000: (6.22, 80.96), 500: (6.93, 78.30)}
#: name -> (label, IDX directory (None: examples/mnist.py's default), pixel mean, pixel std)
DATASETS = {"fashion": ("Fashion-MNIST", FASHION_MNIST_DIR, 0.2860, 0.3530),
            "mnist": ("MNIST", None, 0.1307, 0.3081)}
BATCH = 64


class Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.short = None
        if stride != 1 or i != o:
            self.short = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNet20(nn.Module):
    def __init__(self, widths=(8, 16, 32)):
        super().__init__()
        self.conv = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        layers, i = [], widths[0]
        for s, w in enumerate(widths):
            for b in range(3):
                layers.append(Block(i, w, 2 if (s > 0 and b == 0) else 1))
                i = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(i, 10)

    def forward(self, x):
        x = self.layers(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


# -- data, training, evaluation ---------------------------------------------------------

def load_split(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    _, root, mean, std = DATASETS[dataset]
    images, labels = load_mnist(split, root)
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - mean) / std
    return x[:, None], torch.from_numpy(labels.astype(np.int64))


def batches(x, y, rng):
    order = rng.permutation(len(x))
    for s in range(0, len(x) - BATCH + 1, BATCH):
        j = order[s:s + BATCH]
        yield x[j], y[j]


def evaluate(model, x, y, bs=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(x), bs):
            correct += int((model(x[s:s + bs]).argmax(1) == y[s:s + bs]).sum())
    return 100.0 * correct / len(x)


def cosine(opt, steps):
    """Learning rates decaying from their set values to 0 over ``steps`` (one per step)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1.0 + math.cos(math.pi * min(i, steps) / steps)))


def train(model, data, steps, opt, seed, *, sched=None, after_step=None, every=None, hook=None):
    """``steps`` Adam steps over shuffled epochs of ``data``; ``sched`` defaults to :func:`cosine`."""
    x, y = data
    sched = sched or cosine(opt, steps)
    rng = np.random.default_rng(seed)
    model.train()
    done = 0
    while done < steps:
        for xb, yb in batches(x, y, rng):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            sched.step()
            if after_step:
                after_step()
            done += 1
            if hook and done % every == 0:
                hook()
            if done >= steps:
                break


def gw_optimizer(model, lr, sel_lr, bank_lr):
    bank = next(m.bank for _, m in gw_layers(model))
    sels = [m.selectors for _, m in gw_layers(model) if m.selectors.requires_grad]
    ids = {id(p) for p in sels} | {id(bank.weight)}
    rest = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    groups = [{"params": rest, "lr": lr}]
    if bank.weight.requires_grad:
        groups.append({"params": [bank.weight], "lr": bank_lr})
    if sels:
        groups.append({"params": sels, "lr": sel_lr})
    return torch.optim.Adam(groups)


def log(msg, lines):
    print(msg, flush=True)
    lines.append(msg)


class Bench:
    """The data, the settings and the phases every network of the run goes through."""

    TUNE_LR, QUANT_LR = 1e-3, 5e-4

    def __init__(self, args):
        self.args = args
        x, y = load_split(args.dataset, "train")
        rng = np.random.default_rng(1234)
        keep = np.sort(rng.permutation(len(x))[: args.train_images])
        self.train_data = x[keep], y[keep]
        self.test_data = load_split(args.dataset, "test")
        pick = rng.permutation(len(self.train_data[0]))[: args.bn_batches * 128]
        self.bn_batches = list(self.train_data[0][pick].split(128))

    def accuracy(self, model):
        return evaluate(model, *self.test_data)

    def recalibrated_accuracy(self, model):
        recalibrate_batchnorm_(model, self.bn_batches)
        return self.accuracy(model)

    def train_baseline(self, seed):
        torch.manual_seed(seed)
        model = ResNet20()
        steps = self.args.epochs * (len(self.train_data[0]) // BATCH)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
        train(model, self.train_data, steps, opt, seed, sched=sched)
        return model

    def continue_baseline(self, base, seed):
        """The baseline trained on for the GW networks' extra steps, same optimizer and schedules."""
        model = copy.deepcopy(base)
        train(model, self.train_data, self.args.tune_steps, torch.optim.Adam(model.parameters(), self.TUNE_LR),
              seed + 2)
        train(model, self.train_data, self.args.quant_steps, torch.optim.Adam(model.parameters(), self.QUANT_LR),
              seed + 3)
        return model

    def tune(self, model, seed):
        """Phase 2: bank, selectors (straight-through), BN, fc and 1x1 convs."""
        L = next(layer.bank.size for _, layer in gw_layers(model))
        opt = gw_optimizer(model, self.TUNE_LR, 0.02 / max(L - 1, 1), self.TUNE_LR)
        train(model, self.train_data, self.args.tune_steps, opt, seed + 2, after_step=lambda: clamp_selectors_(model))

    def quantize(self, model, bank):
        """Phase 3a: bank values onto a codebook (then fixed), fc and 1x1 convs weight-shared."""
        quantize_bank_(bank, self.args.bank_bits)
        bank.weight.requires_grad_(False)
        plain = [f"{name}.weight" for name, m in model.named_modules() if type(m) in (nn.Conv2d, nn.Linear)]
        WeightSharing(model, bits={name: self.args.other_bits for name in plain})

    def tune_quantized(self, model, seed):
        """Phase 3b: selectors, BN and the fc / 1x1 codebooks, the bank fixed."""
        L = next(layer.bank.size for _, layer in gw_layers(model))
        opt = gw_optimizer(model, self.QUANT_LR, 0.01 / max(L - 1, 1), 0.0)
        train(model, self.train_data, self.args.quant_steps, opt, seed + 3, after_step=lambda: clamp_selectors_(model))


# -- the parts of the run ---------------------------------------------------------------

def compare_rules(bench, base, seed, lines):
    args = bench.args
    L_rule = round(1000 * NARROW_H / SLIDES_H)
    log(f"\ntraining rule for the selectors' rounding (L = {L_rule}, {args.rule_steps} Adam steps, batch {BATCH}; "
        "+BN: after BN recalibration, which a reassignment just before evaluation needs):", lines)
    for rule in ("bank only (selectors fixed)", "ste", "reassign"):
        m = copy.deepcopy(base)
        torch.manual_seed(seed)
        convert_to_gwconv(m, L_rule, rule="reassign" if rule == "reassign" else "ste", seed=seed)
        post = bench.accuracy(m)
        if rule != "ste":
            freeze_selectors(m)
        L = next(layer.bank.size for _, layer in gw_layers(m))
        opt = gw_optimizer(m, 1e-3, 0.02 / (L - 1), 1e-3)
        moved = []
        train(m, bench.train_data, args.rule_steps, opt, seed + 1, after_step=lambda: clamp_selectors_(m),
              every=10, hook=(lambda: moved.append(reassign_(m, 1.0))) if rule == "reassign" else None)
        extra = f", pairs moved per reassignment {np.mean(moved) * 100:.2f} %" if moved else ""
        log(f"  {rule:<28} post-hoc {post:6.2f} % -> tuned {bench.accuracy(m):6.2f} %, "
            f"+BN {bench.recalibrated_accuracy(m):6.2f} %{extra}", lines)


def check_decoded(model, path, bench):
    """The file decodes to the module's GW weights bit for bit and, as a plain net, to its logits."""
    out = load_file(path)
    for name, layer in gw_layers(model):
        w = layer.effective_weight().detach().numpy()
        assert np.array_equal(out[f"{name}.weight"].view(np.uint32), w.view(np.uint32)), name
    plain = ResNet20()
    plain.load_state_dict({k: torch.from_numpy(v) for k, v in out.items()})
    plain.eval()
    model.eval()
    x = bench.test_data[0][:1000]
    with torch.no_grad():
        assert torch.equal(plain(x), model(x)), path


def byte_parts(path) -> dict:
    """Bytes of the file by kind: bank, selectors, codebook-coded tensors, raw tensors, framing."""
    rows, bank_rows, size = describe(path)
    parts = {"bank": sum(r.payload_bytes for r in bank_rows)}
    for kind, encoding in (("selectors", "bank"), ("codebook", "codebook"), ("raw", "raw")):
        parts[kind] = sum(r.payload_bytes for r in rows if r.encoding == encoding)
    parts["framing"] = size - sum(parts.values())
    parts["total"] = size
    return parts


def gw_row(bench, base, slides_L, seed, dataset_label):
    """One row of the table: convert, tune, quantize, tune, recalibrate, save, check."""
    args = bench.args
    t0 = time.time()
    m = copy.deepcopy(base)
    torch.manual_seed(seed)
    bank = convert_to_gwconv(m, max(2, round(slides_L * NARROW_H / SLIDES_H)), rule="ste", seed=seed)
    counts = parameter_counts(m)  # before weight sharing adds its codebooks as parameters
    assert counts["H"] == NARROW_H, counts
    acc = {"post": bench.accuracy(m), "post_bn": bench.recalibrated_accuracy(m)}
    bench.tune(m, seed)
    acc["tuned"] = bench.accuracy(m)
    bench.quantize(m, bank)
    acc["quant"] = bench.accuracy(m)
    acc["quant_bn"] = bench.recalibrated_accuracy(m)
    bench.tune_quantized(m, seed)
    acc["final_nobn"] = bench.accuracy(m)
    acc["final"] = bench.recalibrated_accuracy(m)
    path = RESULTS / f"gwconv_bench_L{slides_L}.dcf"
    save_gw(m, path, {"model": "resnet20-narrow-8-16-32 GWConv", "dataset": dataset_label,
                      "bank_size": str(bank.size), "slides_L": str(slides_L), "top1": f"{acc['final']:.2f}",
                      "produced_by": SCRIPT}, overwrite=True, bank_bits=args.bank_bits,
            alignment=8)  # as published (writers default to 64)
    check_decoded(m, path, bench)
    return {"slides_L": slides_L, "L": bank.size, "acc": acc, "counts": counts, "bytes": byte_parts(path),
            "seconds": time.time() - t0}


ROW_HEAD = (f"{'slides L':>8} {'L':>5} {'L/H':>6} {'post':>6} {'+BN':>6} {'tuned':>6} {'quant':>6} {'+BN':>6} "
            f"{'final':>6} {'-BN':>6} {'drop':>6} {'param x':>7} {'bytes':>7} {'byte x':>7} {'slides x/acc':>13}")


def log_row(r, base_acc, dense_bytes, lines):
    a, c = r["acc"], r["counts"]
    sx, sa = SLIDES.get(r["slides_L"], (float("nan"), float("nan")))
    log(f"{r['slides_L']:>8} {r['L']:>5} {r['L'] / c['H']:>6.3f} {a['post']:>6.2f} {a['post_bn']:>6.2f} "
        f"{a['tuned']:>6.2f} {a['quant']:>6.2f} {a['quant_bn']:>6.2f} {a['final']:>6.2f} {a['final_nobn']:>6.2f} "
        f"{base_acc - a['final']:>+6.2f} {c['dense_total'] / c['gw_total']:>6.2f}x {r['bytes']['total']:>7,} "
        f"{dense_bytes / r['bytes']['total']:>6.2f}x {sx:>5.2f}x/{sa:5.2f}%", lines)


def log_bytes(rows, lines):
    head = (f"{'slides L':>8} {'L':>5} {'bank':>6} {'selectors':>9} {'bits/pair':>9} {'codebook':>8} {'raw':>6} "
            f"{'framing':>7} {'total':>7} {'seconds':>7}")
    log(head, lines)
    log("-" * len(head), lines)
    for r in rows:
        b = r["bytes"]
        log(f"{r['slides_L']:>8} {r['L']:>5} {b['bank']:>6,} {b['selectors']:>9,} "
            f"{8 * b['selectors'] / r['counts']['H']:>9.2f} {b['codebook']:>8,} {b['raw']:>6,} {b['framing']:>7,} "
            f"{b['total']:>7,} {r['seconds']:>7.0f}", lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="fashion")
    ap.add_argument("--train-images", type=int, default=60000, help="training images used (a seeded subset)")
    ap.add_argument("--epochs", type=int, default=2, help="baseline epochs over the training images")
    ap.add_argument("--tune-steps", type=int, default=600, help="GW fine-tuning steps per L (phase 2)")
    ap.add_argument("--quant-steps", type=int, default=200, help="steps with the bank quantized (phase 3)")
    ap.add_argument("--rule-steps", type=int, default=150, help="steps per rule in the comparison (0: skip it)")
    ap.add_argument("--bank-bits", type=int, default=6)
    ap.add_argument("--other-bits", type=int, default=5,
                    help="codebook bits of the fc layer and 1x1 convs (5 as the paper's fc; at 8 bits the "
                         "1 KB codebook outweighs these small tensors)")
    ap.add_argument("--bn-batches", type=int, default=20, help="training batches of 128 for BN recalibration")
    ap.add_argument("--L", type=int, nargs="*", default=[10000, 7500, 5000, 2500, 1000, 500],
                    help="slides' L values (scaled by H / 29,744)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                    help="baselines for every seed (their spread); the GW table for the first")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    lines: list[str] = []
    label = DATASETS[args.dataset][0]
    bench = Bench(args)
    extra = args.tune_steps + args.quant_steps

    log(f"Global Weight on {label}, ResNet-20 narrow (8/16/32), {len(bench.train_data[0]):,} training images, baseline "
        f"{args.epochs} epochs (batch {BATCH}), test on all {len(bench.test_data[0]):,}; "
        f"{args.threads} CPU thread(s)", lines)
    bases = {}
    for seed in args.seeds:
        base = bench.train_baseline(seed)
        cont = bench.continue_baseline(base, seed)
        bases[seed] = (base, bench.accuracy(base), bench.accuracy(cont), cont)
        log(f"baseline seed {seed}: {bases[seed][1]:.2f} % after {args.epochs} epochs, {bases[seed][2]:.2f} % "
            f"after {extra} more steps ({time.time() - t0:.0f} s)", lines)
    if len(args.seeds) > 1:
        conts = [b[2] for b in bases.values()]
        log(f"continued baselines over seeds {args.seeds}: mean {np.mean(conts):.2f} %, "
            f"spread {max(conts) - min(conts):.2f} points", lines)
    seed = args.seeds[0]
    base, _, base_acc, cont = bases[seed]
    RESULTS.mkdir(parents=True, exist_ok=True)
    dense_path = RESULTS / "gwconv_bench_dense.dcf"
    export_dcf(cont, dense_path, {"model": "resnet20-narrow-8-16-32", "dataset": label, "top1": f"{base_acc:.2f}",
                                  "produced_by": SCRIPT}, overwrite=True, alignment=8)
    dense_bytes = dense_path.stat().st_size
    log(f"continued baseline seed {seed}: {sum(p.numel() for p in cont.parameters()):,} params, "
        f"raw float32 .dcf {dense_bytes:,} bytes", lines)

    if args.rule_steps:
        compare_rules(bench, base, seed, lines)

    log(f"\nper L (seed {seed}): post-hoc bank (post), {args.tune_steps} steps STE fine-tuning (tuned), bank "
        f"quantized to {args.bank_bits} bits and fc + 1x1 convs to {args.other_bits}-bit codebooks (quant), "
        f"{args.quant_steps} steps with the bank fixed, BN recalibrated on {args.bn_batches} x 128 training "
        "images (final); +BN / -BN: the same network with / without recalibration", lines)
    log(ROW_HEAD, lines)
    log("-" * len(ROW_HEAD), lines)
    rows = []
    for slides_L in args.L:
        rows.append(gw_row(bench, base, slides_L, seed, label))
        log_row(rows[-1], base_acc, dense_bytes, lines)
    log(f"\n'drop' = continued baseline ({base_acc:.2f} %) - final, points. 'param x' as the slides count "
        f"parameters; 'byte x' = {dense_bytes:,} (continued baseline, raw float32 .dcf) / GW .dcf bytes. Decoded "
        "files checked bit-equal to the modules, and as plain Conv2d nets to their logits. Slides: ResNet-20 / "
        "CIFAR-10, 92.02 % baseline, parameter ratios.", lines)
    log("\nbytes of each GW .dcf by part (raw: BN parameters and statistics, fc bias; framing: headers, "
        "records, checksums, alignment)", lines)
    log_bytes(rows, lines)
    log(f"\ntotal {time.time() - t0:.0f} s", lines)
    (RESULTS / "gwconv_bench.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
