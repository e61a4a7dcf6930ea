"""MobileNetV2 from the .pth alone, ``dcformat compress --bits-per-param B``, on the held-out crops.

    python benchmarks/posttraining_mobilenet_rd.py

A short rerun of ``posttraining_mobilenet.py``'s ``dcformat --bits-per-param B`` curve: v1.3
(AFFINE codebooks), the rd preset's coverage and balance (every float tensor of 64 values or
more coded, distortion weighed by ``(n_max / n) ** 1.25``; both chosen on the 176 tuning crops
only) and each row's sum kept (``--row-sums keep``, the CLI's default with a budget). Same checkpoint, network, folding and held-out crops (284, of the
held-out photos) as that benchmark, whose functions it uses; quality against the dense fp32
model. The peers are not rerun here: their held-out figures are in
``results/posttraining_mobilenet.txt`` (same crops, same evaluation).
"""

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import posttraining_mobilenet as pm  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    state = pm.load_state(pm.ensure_weights())
    dense = sum(v.nbytes for v in state.values())
    held_out, _ = pm.crop_set(pm.HELD_OUT_PHOTOS, pm.SCALES)
    ev = pm.Evaluator(state, {"held_out": held_out})
    print(f"command: python benchmarks/posttraining_mobilenet_rd.py; {len(held_out)} held-out crops; "
          f"dense {dense:,} bytes", flush=True)
    for bits in (5, 6, 7, 8):
        size, arrays, _ = pm.dcformat_cli(["--bits-per-param", str(bits)], Path("/tmp/posttraining_mobilenet_rd.dcf"))
        q = ev.score(arrays, which=("held_out",))["held_out"]
        print(f"B={bits} bytes {size:,} ratio {dense / size:.3f} top1 {q['top1']:.3f} cos {q['cos']:.6f} "
              f"cos_min {q['cos_min']:.5f}", flush=True)


if __name__ == "__main__":
    main()
