"""Global Weight (one kernel bank for the whole network) on MNIST with a narrow ResNet-20.

    python benchmarks/gwconv_mnist.py            # about 15 minutes on one shared CPU thread

A ResNet-20-style network (3 stages of 3 basic blocks, 8/16/32 channels, 1x1 projection
shortcuts, BN) is trained briefly on a subset of MNIST. Then, for each bank size L, a copy is
converted post-hoc (:func:`dcformat.torch.gwconv.convert_to_gwconv`: network-wide k-means
of all 3x3 kernels), fine-tuned (bank, selectors by the straight-through rule, BN and fc),
its bank quantized to ``--bank-bits`` bits (and the rest briefly re-tuned with the bank
values fixed), and written with :func:`~dcformat.torch.gwconv.save_gw` (selectors
Huffman-coded; everything else raw float32). The decoded file is checked bit-equal to the
module's weights and evaluated as a plain ``nn.Conv2d`` network.

The narrow net has H = sum(I*O) = 7,432 channel pairs against 29,744 for the slides'
ResNet-20 (16/32/64 on CIFAR-10), so the slides' L in {10000, ..., 500} are scaled by
H / 29,744 (L / H is what sets the parameter ratio). Parameter ratio is counted as the
slides do: whole-network parameters with K*H conv weights vs with K*L + H. Byte ratio:
the raw float32 .dcf of the baseline network vs the GW .dcf.

A first short run compares the training rules for the rounding at one L (bank only /
straight-through / periodic reassignment), same steps and learning rates.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dcformat  # noqa: E402
from dcformat.torch.gwconv import (  # noqa: E402
    clamp_selectors_, convert_to_gwconv, freeze_selectors, gw_layers, parameter_counts, quantize_bank_,
    reassign_, save_gw)
from examples.mnist import load_mnist  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SLIDES_H = 29_744
SLIDES = {10000: (2.18, 85.64), 7500: (2.66, 85.73), 5000: (3.41, 85.46), 2500: (4.75, 84.36),
          1000: (6.22, 80.96), 500: (6.93, 78.30)}


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


def log(msg, lines):
    print(msg, flush=True)
    lines.append(msg)


def batches(x, y, bs, rng):
    order = rng.permutation(len(x))
    for s in range(0, len(x) - bs + 1, bs):
        j = order[s:s + bs]
        yield x[j], y[j]


def evaluate(model, x, y, bs=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(x), bs):
            correct += int((model(x[s:s + bs]).argmax(1) == y[s:s + bs]).sum())
    return 100.0 * correct / len(x)


def train(model, x, y, steps, opt, rng, bs=64, after_step=None, every=None, hook=None):
    model.train()
    done = 0
    while done < steps:
        for xb, yb in batches(x, y, bs, rng):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            if after_step:
                after_step()
            done += 1
            if hook and every and done % every == 0:
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-images", type=int, default=12000)
    ap.add_argument("--test-images", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=250, help="fine-tuning steps per L")
    ap.add_argument("--rule-steps", type=int, default=150)
    ap.add_argument("--bank-bits", type=int, default=6)
    ap.add_argument("--L", type=int, nargs="*", default=[10000, 7500, 5000, 2500, 1000, 500],
                    help="slides' L values (scaled by H / 29,744)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    lines: list[str] = []
    t0 = time.time()

    xtr, ytr = load_mnist("train")
    xte, yte = load_mnist("test")
    sel = rng.permutation(len(xtr))[: args.train_images]
    def prep(a):
        return ((torch.from_numpy(a.astype(np.float32)) / 255.0 - 0.1307) / 0.3081)[:, None]
    xtr, ytr = prep(xtr[sel]), torch.from_numpy(ytr[sel].astype(np.int64))
    xte, yte = prep(xte[: args.test_images]), torch.from_numpy(yte[: args.test_images].astype(np.int64))

    base = ResNet20()
    steps = args.epochs * (len(xtr) // 64)
    opt = torch.optim.Adam(base.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    train(base, xtr, ytr, steps, opt, rng, after_step=sched.step)
    base_acc = evaluate(base, xte, yte)
    RESULTS.mkdir(parents=True, exist_ok=True)
    dense_path = RESULTS / "gwconv_mnist_dense.dcf"
    dcformat.save_file({k: v.detach().numpy() for k, v in base.state_dict().items()}, dense_path,
                       {"model": "resnet20-narrow-8-16-32", "dataset": "MNIST", "produced_by": "benchmarks/gwconv_mnist.py"},
                       overwrite=True)
    dense_bytes = dense_path.stat().st_size
    log(f"Global Weight on MNIST, ResNet-20 narrow (8/16/32), {args.train_images} training images x "
        f"{args.epochs} epochs, test on {args.test_images}; 1 CPU thread", lines)
    log(f"baseline: {base_acc:.2f} % top-1, {sum(p.numel() for p in base.parameters()):,} params, "
        f"raw .dcf {dense_bytes:,} bytes ({time.time() - t0:.0f} s)", lines)

    # -- rules for the rounding, at one L -------------------------------------------------
    L_rule = round(1000 * 7432 / SLIDES_H)
    log(f"\ntraining rule for the selectors' rounding (L = {L_rule}, {args.rule_steps} Adam steps, batch 64):", lines)
    for rule in ("bank only (selectors fixed)", "ste", "reassign"):
        m = copy.deepcopy(base)
        torch.manual_seed(args.seed)
        convert_to_gwconv(m, L_rule, rule="reassign" if rule == "reassign" else "ste", seed=args.seed)
        post = evaluate(m, xte, yte)
        if rule != "ste":
            freeze_selectors(m)
        L = next(l.bank.size for _, l in gw_layers(m))
        opt = gw_optimizer(m, 1e-3, 0.02 / (L - 1), 1e-3)
        moved = []
        train(m, xtr, ytr, args.rule_steps, opt, np.random.default_rng(1), after_step=lambda: clamp_selectors_(m),
              every=10 if rule == "reassign" else None, hook=lambda: moved.append(reassign_(m, 1.0)))
        extra = f", pairs moved per reassignment {np.mean(moved) * 100:.2f} %" if moved else ""
        log(f"  {rule:<28} post-hoc {post:6.2f} % -> tuned {evaluate(m, xte, yte):6.2f} %{extra}", lines)

    # -- the table ------------------------------------------------------------------------
    h = 7432
    head = (f"{'slides L':>8} {'L':>5} {'L/H':>6} {'post-hoc':>8} {'tuned':>7} {f'bank {args.bank_bits}b':>8} "
            f"{'drop':>6} {'param x':>7} {'conv x':>7} {'bytes':>8} {'byte x':>7} {'slides x/acc':>13}")
    log(f"\nper L: post-hoc bank, {args.steps} steps STE fine-tuning (bank, selectors, BN, fc), "
        f"bank quantized to {args.bank_bits} bits + {args.steps // 3} steps with it fixed, saved with save_gw", lines)
    log(head, lines)
    log("-" * len(head), lines)
    for slides_L in args.L:
        L_req = max(2, round(slides_L * h / SLIDES_H))
        m = copy.deepcopy(base)
        torch.manual_seed(args.seed)
        bank = convert_to_gwconv(m, L_req, rule="ste", seed=args.seed)
        post = evaluate(m, xte, yte)
        L = bank.size
        opt = gw_optimizer(m, 1e-3, 0.02 / (L - 1), 1e-3)
        train(m, xtr, ytr, args.steps, opt, np.random.default_rng(2), after_step=lambda: clamp_selectors_(m))
        tuned = evaluate(m, xte, yte)
        quantize_bank_(bank, args.bank_bits)
        bank.weight.requires_grad_(False)
        opt = gw_optimizer(m, 5e-4, 0.01 / (L - 1), 0.0)
        train(m, xtr, ytr, args.steps // 3, opt, np.random.default_rng(3), after_step=lambda: clamp_selectors_(m))
        m.eval()
        q_acc = evaluate(m, xte, yte)
        path = RESULTS / f"gwconv_mnist_L{slides_L}.dcf"
        save_gw(m, path, {"model": "resnet20-narrow-8-16-32 GWConv", "bank_size": str(L),
                          "slides_L": str(slides_L), "top1": f"{q_acc:.2f}",
                          "produced_by": "benchmarks/gwconv_mnist.py"}, overwrite=True, bank_bits=args.bank_bits)
        out = dcformat.load_file(path)
        for name, layer in gw_layers(m):
            w = layer.effective_weight().detach().numpy()
            assert np.array_equal(out[f"{name}.weight"].view(np.uint32), w.view(np.uint32)), name
        plain = ResNet20()
        plain.load_state_dict({k: torch.from_numpy(v) for k, v in out.items()})
        dec_acc = evaluate(plain, xte, yte)
        assert abs(dec_acc - q_acc) < 1e-9, (dec_acc, q_acc)
        c = parameter_counts(m)
        nbytes = path.stat().st_size
        sx, sa = SLIDES[slides_L] if slides_L in SLIDES else (float("nan"), float("nan"))
        log(f"{slides_L:>8} {L:>5} {L / h:>6.3f} {post:>7.2f}% {tuned:>6.2f}% {q_acc:>7.2f}% "
            f"{base_acc - q_acc:>+6.2f} {c['dense_total'] / c['gw_total']:>6.2f}x "
            f"{c['dense_conv'] / c['gw_conv']:>6.2f}x {nbytes:>8,} {dense_bytes / nbytes:>6.2f}x "
            f"{sx:>5.2f}x/{sa:5.2f}%  ({time.time() - t0:.0f} s)", lines)
    log(f"\n'drop' = baseline - final (bank {args.bank_bits}b) accuracy, points; decoded files checked bit-equal "
        "to the modules and re-evaluated as plain Conv2d nets. Slides: ResNet-20 / CIFAR-10, 92.02 % baseline.", lines)
    log(f"total {time.time() - t0:.0f} s", lines)
    (RESULTS / "gwconv_mnist.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
