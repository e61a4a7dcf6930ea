"""Files of very many small records: time and peak memory to open and to load (issue 13, item 11).

    python benchmarks/many_records.py [--count 1048576]

A file of ``--count`` empty F32 tensors (1,048,576 is the spec's MAX_TENSORS; 46 MB),
written once to a temporary folder, is read in a fresh process per row; each row gives
the wall time of the call and the process's peak RSS (``VmHWM``), besides the RSS the
process had after importing (so the difference is what the file cost). Beside it,
safetensors (``safetensors.numpy.load_file`` and ``safe_open`` with one tensor read)
reads a file of the same tensors, as the peer users compare with.

The tensor records are scanned into columns by a kernel (dcformat.kernels.records), a
Record object made only for a record asked for, and empty records decoded at once.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "dcformat.load_file": "import dcformat; f = lambda p: dcformat.load_file(p)",
    "dcformat.load_file, 1 thread": "import dcformat; f = lambda p: dcformat.load_file(p, threads=1)",
    "dcformat.safe_open, 1 tensor": ("import dcformat\n"
                                     "def f(p):\n"
                                     "    with dcformat.safe_open(p) as g:\n"
                                     "        return g.get_tensor(g.keys()[-1])"),
    "safetensors.numpy.load_file": "import safetensors.numpy; f = lambda p: safetensors.numpy.load_file(p)",
    "safetensors safe_open, 1 tensor": ("import safetensors\n"
                                        "def f(p):\n"
                                        "    with safetensors.safe_open(p, 'numpy') as g:\n"
                                        "        return g.get_tensor(list(g.keys())[-1])"),
}

RUN = """
import time
{setup}
def rss(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) // 1024
before = rss('VmRSS')
start = time.perf_counter()
result = f({path!r})
print(time.perf_counter() - start, before, rss('VmHWM'))
"""


def write_files(folder: Path, count: int) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_many_records import empty_records_file  # the bytes ContainerWriter writes, built at once

    import numpy as np
    from safetensors.numpy import save_file

    dcf = folder / "many.dcf"
    dcf.write_bytes(empty_records_file(count))
    st = folder / "many.safetensors"
    empty = np.zeros(0, np.float32)
    save_file({f"t{i:07d}": empty for i in range(count)}, str(st))
    return dcf, st


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1 << 20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        dcf, st = write_files(Path(folder), args.count)
        print(f"{args.count:,} empty F32 tensors: {dcf.stat().st_size / 1e6:.1f} MB .dcf, "
              f"{st.stat().st_size / 1e6:.1f} MB .safetensors\n")
        print("| reader | time | peak RSS | after import | cost |")
        print("|---|---|---|---|---|")
        for label, setup in CASES.items():
            path = st if label.startswith("safetensors") else dcf
            # a first call on a small file loads the kernels, as a loader's first file would
            warm = "" if path is st else "f(" + repr(str(path)) + ".replace('many.dcf', 'small.dcf'))\n"
            if warm:
                (Path(folder) / "small.dcf").write_bytes(_small())
            out = subprocess.run([sys.executable, "-c", RUN.format(setup=setup + "\n" + warm, path=str(path))],
                                 capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
            seconds, before, peak = float(out[0]), int(out[1]), int(out[2])
            print(f"| {label} | {seconds:.2f} s | {peak} MiB | {before} MiB | {peak - before} MiB |")


def _small() -> bytes:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_many_records import empty_records_file

    return empty_records_file(1024)


if __name__ == "__main__":
    main()
