"""File sizes of the bundled LeNet-300-100 under each preset, with decode time and error.

    python benchmarks/file_sizes.py            # prints the table, writes results/file_sizes.txt

Side by side in one run: the safetensors file it comes from, dcformat lossless, the
default post-training preset (8-bit codebooks, no pruning), and the paper preset (fc:
90 % pruned, 5-bit codes and gaps; no retraining, so accuracy drops: issue 4 retrains).
The accuracy is measured on the real MNIST test set from the decoded file.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dcformat  # noqa: E402
from dcformat.compress import CompressionSettings, compress_tensors  # noqa: E402
from dcformat.convert import read_checkpoint  # noqa: E402
from examples.lenet300 import evaluate  # noqa: E402
from examples.mnist import load_mnist  # noqa: E402

MODEL = ROOT / "examples" / "lenet300" / "lenet-300-100.safetensors"


def main() -> None:
    checkpoint = read_checkpoint(MODEL)
    images, labels = load_mnist("test")
    dense = sum(v.nbytes for v in checkpoint.tensors.values())
    lines = [f"# LeNet-300-100 ({dense:,} bytes of fp32 parameters), MNIST test set (10,000 images)",
             f"{'format':<34} {'bytes':>10} {'ratio':>7} {'encode s':>9} {'decode ms':>10} {'test acc':>9}"]
    size = MODEL.stat().st_size
    lines.append(f"{'safetensors (source)':<34} {size:>10,} {dense / size:>6.1f}x {'-':>9} {'-':>10} "
                 f"{evaluate(checkpoint.tensors, images, labels):>8.2%}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("lossless", "default", "paper"):
            start = time.perf_counter()
            encoded, _ = compress_tensors(checkpoint.tensors, CompressionSettings.preset(preset))
            path = Path(tmp) / f"{preset}.dcf"
            dcformat.save_file(encoded, path, checkpoint.metadata)
            encode = time.perf_counter() - start
            dcformat.load_file(path)  # warm: Numba kernels compiled and cached
            start = time.perf_counter()
            decoded = dcformat.load_file(path)
            decode = time.perf_counter() - start
            size = path.stat().st_size
            lines.append(f"{'dcformat --preset ' + preset:<34} {size:>10,} {dense / size:>6.1f}x {encode:>9.2f} "
                         f"{1000 * decode:>10.2f} {evaluate(decoded, images, labels):>8.2%}")
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "results" / "file_sizes.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
