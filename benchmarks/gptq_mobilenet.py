"""MobileNetV2 at 3-6 bits per parameter: ecq codes by nearest cell against GPTQ assignment.

    python benchmarks/gptq_mobilenet.py [--threads 2] [--out FILE]

The model, photos, crops, the tuning / held-out split and the quality measures are
``posttraining_mobilenet.py``'s (imported from it): top-1 agreement and mean logit cosine
against the dense model on the 284 held-out crops, batch norms folded. Calibration is the
176 tuning crops and nothing else: they give the rd weights
(:func:`dcformat.training.calibrate.calibrated_rd_weights`, as ``--model --calibration``
measures them) and, for GPTQ, each layer's input second moment
(:func:`dcformat.training.gptq.layer_hessians`). Per budget, with the same settings
(``--bits-per-param B`` with those rd weights; ecq, code_bits 12):

- nearest: the codes of each value's own cell (what ``dcformat compress`` writes);
- GPTQ: the same codebooks, codes chosen by :mod:`dcformat.training.gptq`
  (dampening 1 % of the mean diagonal, blocks of 128), in column order, and with act-order.

Nothing is chosen here: every figure is printed, the held-out ones are the results, the
tuning-crop ones are the calibration data's own (not a quality measure). Ratio = dense
bytes of every tensor (14,156,352) / bytes of the ``.dcf`` file (``dcformat.save``).
Writes ``benchmarks/results/gptq_mobilenet.txt``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import mobilenet_v2 as mv2  # noqa: E402
import posttraining_mobilenet as mobilenet  # noqa: E402

BUDGETS = (3.0, 4.0, 5.0, 6.0)
#: Nearest-cell codes on a finer grid of budgets: its curve gives its quality at GPTQ's ratios.
NEAREST_BUDGETS = tuple(3.0 + 0.25 * i for i in range(17))
BATCH = 16


def main(argv=None) -> int:
    import dcformat
    from dcformat.compress import CompressionSettings, compress_tensors
    from dcformat.training import calibrate, gptq

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "gptq_mobilenet.txt"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    state = mobilenet.load_state(mobilenet.ensure_weights())
    dense_bytes = sum(v.nbytes for v in state.values())
    sets = {split: mobilenet.crop_set(photos, mobilenet.SCALES)[0]
            for split, photos in (("tuning", mobilenet.TUNING_PHOTOS), ("held_out", mobilenet.HELD_OUT_PHOTOS))}
    ev = mobilenet.Evaluator(state, sets)
    module = mv2.MobileNetV2()
    module.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}, strict=True)
    module.eval()
    batches = list(sets["tuning"].split(BATCH))
    lines = []

    def say(text):
        print(text, flush=True)
        lines.append(text)

    t0 = time.perf_counter()
    weights = calibrate.calibrated_rd_weights(module, batches)
    t_rd = time.perf_counter() - t0
    t0 = time.perf_counter()
    hessians = gptq.layer_hessians(module, batches, progress=True)
    t_h = time.perf_counter() - t0
    base = CompressionSettings.preset("default").with_overrides(quantizer="ecq", code_bits=12)
    base = replace(base, rd_weights=weights)
    handled = {k: h for k, h in hessians.items() if k in state}
    rows = []
    for b in sorted(set(BUDGETS) | set(NEAREST_BUDGETS)):
        settings = replace(base, bits_per_param=b)
        kept = gptq._ecq_only(handled, state, settings)
        runs = [("nearest", None)]
        if b in BUDGETS:
            runs += [("GPTQ", gptq.assigners(kept)), ("GPTQ act-order", gptq.assigners(kept, act_order=True))]
        for label, assign in runs:
            t0 = time.perf_counter()
            out, _ = compress_tensors(state, settings, assign=assign)
            blob = dcformat.save(out)
            enc = time.perf_counter() - t0
            q = ev.score(dcformat.load(blob))
            rows.append((b, label, len(blob), dense_bytes / len(blob), q, enc))
            h, t = q["held_out"], q["tuning"]
            print(f"B={b:g} {label}: {dense_bytes / len(blob):.2f}x top-1 {h['top1']:.3f} cos {h['cos']:.5f} "
                  f"({enc:.0f} s)", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "dcformat", "benchmarks/gptq_mobilenet.py"],
                           capture_output=True, text=True, cwd=HERE).stdout.strip()
    say("MobileNetV2: ecq codes by nearest cell vs GPTQ assignment (dcformat.training.gptq), same codebooks/budget")
    say(f"command: python benchmarks/gptq_mobilenet.py{f' --threads {args.threads}' if args.threads != 2 else ''}")
    say(f"commit: {commit}{' (with uncommitted changes)' if dirty else ''}; torch {torch.__version__}, "
        f"{args.threads} threads")
    say(f"calibration: the {len(sets['tuning'])} tuning crops ({', '.join(mobilenet.TUNING_PHOTOS)}): rd weights "
        f"{t_rd:.0f} s, layer input second moments of {len(handled)} layers {t_h:.0f} s; quality on the "
        f"{len(sets['held_out'])} held-out crops; nothing chosen on either")
    say(f"total wall {time.perf_counter() - t_start:.0f} s")
    say("")
    say("| bits/param | codes | bytes | ratio | top-1 held-out | cosine held-out | worst crop cos held-out "
        "| cosine tuning (calibration) | encode s |")
    say("|---|---|---|---|---|---|---|---|---|")
    for b, label, size, ratio, q, enc in rows:
        h, t = q["held_out"], q["tuning"]
        say(f"| {b:g} | {label} | {size:,} | {ratio:.2f} | {h['top1']:.3f} | {h['cos']:.5f} | {h['cos_min']:.4f} "
            f"| {t['cos']:.5f} | {enc:.0f} |")
    say("")
    say("At matched size: nearest-cell codes' held-out quality at each GPTQ file's ratio, interpolated along the "
        f"nearest curve (budgets {NEAREST_BUDGETS[0]:g} to {NEAREST_BUDGETS[-1]:g} by 0.25; linear in log ratio)")
    near = sorted((r[3], r[4]["held_out"]) for r in rows if r[1] == "nearest")
    lr = np.log([r for r, _ in near])
    for b, label, size, ratio, q, enc in rows:
        if label == "nearest" or not lr[0] <= np.log(ratio) <= lr[-1]:
            continue
        top1, cos = (float(np.interp(np.log(ratio), lr, [h[m] for _, h in near])) for m in ("top1", "cos"))
        say(f"- B={b:g} {label}: {ratio:.2f}x, top-1 {q['held_out']['top1']:.3f} vs nearest {top1:.3f}, "
            f"cosine {q['held_out']['cos']:.5f} vs nearest {cos:.5f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
