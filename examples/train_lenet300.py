#!/usr/bin/env python3
"""Train LeNet-300-100 on MNIST (PyTorch, CPU) and save it as safetensors.

    python examples/train_lenet300.py                 # defaults reproduce the shipped file
    python examples/train_lenet300.py --epochs 3 --out /tmp/quick.safetensors

The data come from examples/mnist.py (``$DCFORMAT_MNIST_DIR`` or ``--mnist-dir``
override the default ``<repo>/../shared/datasets/mnist``). Training is seeded and
runs single-process with deterministic algorithms; the test accuracy written into
the file's metadata is the one :func:`lenet300.evaluate` (numpy) gives on the
saved weights, so any later code that decodes the weights exactly can compare
against it exactly.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

if __package__:
    from .lenet300 import PREPROCESSING, WEIGHTS_PATH, LeNet300, evaluate, load_state_dict, preprocess
    from .mnist import load_mnist
else:  # run as a script: make the sibling modules importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lenet300 import PREPROCESSING, WEIGHTS_PATH, LeNet300, evaluate, load_state_dict, preprocess
    from mnist import load_mnist

DEFAULTS = dict(epochs=12, seed=0, batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="peak SGD learning rate")
    p.add_argument("--momentum", type=float, default=DEFAULTS["momentum"])
    p.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    p.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="output .safetensors path")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    train_images, train_labels = load_mnist("train", args.mnist_dir)
    test_images, test_labels = load_mnist("test", args.mnist_dir)
    x_train = torch.from_numpy(preprocess(train_images))
    y_train = torch.from_numpy(train_labels.astype(np.int64))
    x_test = torch.from_numpy(preprocess(test_images))

    model = LeNet300()
    opt = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
    )
    n = x_train.shape[0]
    steps_per_epoch = math.ceil(n / args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    # cosine decay from lr to 0 over the whole run, stepped per batch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    )
    gen = torch.Generator().manual_seed(args.seed)
    loss_fn = torch.nn.CrossEntropyLoss()

    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total_loss = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * idx.numel()
        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(1).numpy() == test_labels).mean()
        print(
            f"epoch {epoch:2d}/{args.epochs}  loss {total_loss / n:.4f}  "
            f"test acc {acc * 100:.2f} %  ({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    train_seconds = time.perf_counter() - t0

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    numpy_state = {k: v.numpy() for k, v in state.items()}
    test_acc = evaluate(numpy_state, test_images, test_labels)
    metadata = {
        "model": "LeNet-300-100",
        "architecture": "fc 784-300-100-10, ReLU after ip1 and ip2; weight [out, in], y = x @ W.T + b",
        "dataset": "MNIST",
        "test_accuracy": f"{test_acc:.4f}",
        "test_errors": str(int(round((1.0 - test_acc) * len(test_labels)))),
        "preprocessing": PREPROCESSING,
        "trained_by": "examples/train_lenet300.py",
        "epochs": str(args.epochs),
        "seed": str(args.seed),
        "optimizer": (
            f"SGD lr={args.lr} momentum={args.momentum} weight_decay={args.weight_decay}, "
            f"cosine decay per step, batch_size={args.batch_size}, cross-entropy"
        ),
        "framework": f"torch {torch.__version__}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=metadata)

    # Round-trip check: the saved file evaluates to exactly the recorded accuracy.
    loaded, _ = load_state_dict(args.out)
    assert all(np.array_equal(loaded[k], numpy_state[k]) for k in numpy_state)
    assert evaluate(loaded, test_images, test_labels) == test_acc

    print(f"test accuracy {test_acc * 100:.2f} % (numpy evaluate on the saved weights)")
    print(f"trained in {train_seconds:.1f} s; saved {args.out} ({args.out.stat().st_size} bytes)")
    return test_acc


if __name__ == "__main__":
    main()
