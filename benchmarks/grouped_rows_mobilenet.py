"""Does a codebook shared by rows, each row scaled (GROUPED values, ``--groups rows``), pay on MobileNetV2?

    python benchmarks/grouped_rows_mobilenet.py [--bits 4,5,6,8]

The model, photos, crops and tuning / held-out split are those of ``posttraining_mobilenet.py``
(its loaders and evaluator, imported from it; batch norms folded as runtimes do). Each row is
``dcformat compress mobilenet_v2.pth --bits-per-param B`` through the command line, in-process,
with one of:

- ``tensor``: one codebook per tensor (what ``--bits-per-param`` does by default);
- ``rows``: ``--groups rows``: every conv and linear weight's rows (output channels) share one
  codebook, each row divided by its RMS before quantizing and scaled back on decoding;
- ``rows, depthwise only``: the same for the 17 depthwise convs only (a ``--settings`` rule),
  where channel ranges differ the most.

Same budget, same file size (the planner meets the budget within its tolerance); the quality
is the top-1 agreement and the mean logit cosine against the dense model, on the tuning crops
and on the held-out crops. Nothing here is chosen on the held-out crops.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import posttraining_mobilenet as mobilenet  # noqa: E402

#: The depthwise convs of torchvision's MobileNetV2 (block 1 has no expansion conv).
DEPTHWISE = r"features\.1\.conv\.0\.0\.weight|features\.\d+\.conv\.1\.0\.weight"


def depthwise_settings(folder: Path) -> Path:
    from dcformat.compress import CompressionSettings

    settings = json.loads(CompressionSettings.preset("default").to_json())
    rows = dict(settings["default"], quantizer="ecq", code_bits=12, groups="rows")
    settings["rules"] = [{"regex": DEPTHWISE, "settings": rows}]
    path = folder / "depthwise-rows.json"
    path.write_text(json.dumps(settings))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="4,5,6,8", help="bits per parameter, comma-separated")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    state = mobilenet.load_state(mobilenet.ensure_weights())
    mobilenet.WEIGHTS_OF.update(mobilenet.weight_names(state))
    dense = sum(v.nbytes for v in state.values())
    sets = {split: mobilenet.crop_set(photos, mobilenet.SCALES)[0]
            for split, photos in (("tuning", mobilenet.TUNING_PHOTOS), ("held_out", mobilenet.HELD_OUT_PHOTOS))}
    evaluator = mobilenet.Evaluator(state, sets)
    print(f"{len(sets['tuning'])} tuning crops, {len(sets['held_out'])} held-out crops\n")
    print("| bits/param | variant | ratio | top-1 tuning | cosine tuning | top-1 held-out | cosine held-out |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        variants = {"tensor": [], "rows": ["--groups", "rows"],
                    "rows, depthwise only": ["--settings", str(depthwise_settings(folder))]}
        for bits in args.bits.split(","):
            for label, flags in variants.items():
                size, decoded, _ = mobilenet.dcformat_cli(["--bits-per-param", bits, *flags], folder / "out.dcf")
                q = evaluator.score(decoded)
                print(f"| {bits} | {label} | {dense / size:.2f}x | {q['tuning']['top1']:.3f} | {q['tuning']['cos']:.5f} "
                      f"| {q['held_out']['top1']:.3f} | {q['held_out']['cos']:.5f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
