"""What to do with each tensor: per-tensor settings, the rules that pick them, presets.

A :class:`TensorSettings` says how one tensor is compressed (pruning, code and gap
widths, k-means initialisation, stream codec). A :class:`CompressionSettings` maps
tensor names and shapes to them: a tensor is compressed only if it is floating (F16,
BF16, F32, F64), has at least ``min_rank`` dimensions (2) and at least ``min_elements`` elements,
and no ``keep`` pattern names it; then the first matching :class:`Rule` gives its
settings, else ``default``. ``None`` settings mean "keep exact".

Every object round-trips through a JSON-safe dict (``to_dict`` / ``from_dict``), which
is how the CLI loads settings files.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass, field, fields, replace

from ..encodings.lossless import EXACT_ENCODINGS
from ..errors import InvalidSettings

INITS = ("linear", "density", "random")
GROUPS = ("tensor", "rows")
QUANTIZERS = ("kmeans", "ecq")
KINDS = ("conv", "fc")
MIN_BITS = 1
MAX_BITS = 16


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidSettings(f"{name} must be an integer from {lo} to {hi}, got {value!r}")


def _check_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidSettings(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_rd_weights(weights) -> tuple[tuple[str, float], ...]:
    pairs = weights.items() if hasattr(weights, "items") else weights
    try:
        pairs = [(name, _check_float(f"rd_weights[{name!r}]", w)) for name, w in pairs]
    except (TypeError, ValueError):
        raise InvalidSettings("rd_weights must map tensor names to positive numbers") from None
    for name, w in pairs:
        if not isinstance(name, str):
            raise InvalidSettings(f"rd_weights keys must be tensor names, got {name!r}")
        if w <= 0.0:
            raise InvalidSettings(f"rd_weights[{name!r}] must be > 0, got {w!r}")
    if len({name for name, _ in pairs}) != len(pairs):
        raise InvalidSettings("rd_weights names a tensor twice")
    return tuple(sorted(pairs))


def _from_dict(cls, data, what: str):
    if not isinstance(data, dict):
        raise InvalidSettings(f"{what} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidSettings(f"unknown {what} field(s) {unknown}; known: {sorted(known)}")
    return data


@dataclass(frozen=True)
class TensorSettings:
    """How one tensor is compressed.

    Parameters
    ----------
    sparsity : float or None
        Prune exactly ``round(sparsity * n)`` weights of smallest magnitude; in [0, 1).
    quality : float or None
        Prune every weight with ``|w| < quality * std(w)`` (the paper's quality
        factor); at least 0. At most one of ``sparsity`` and ``quality`` may be set;
        with neither the tensor is not pruned and is stored dense.
    code_bits : int
        Codebook of at most ``2**code_bits`` entries (1 to 16).
    gap_bits : int
        Width of the relative indices of a pruned tensor (1 to 16); ignored unpruned.
    init : {"linear", "density", "random"}
        k-means initialisation: evenly spaced in [min, max], evenly spaced in the CDF,
        or Forgy (random distinct values, seeded).
    huffman : bool
        Huffman-code the code and gap streams (else pack them at fixed width).
    seed : int
        Seed of the random initialisation.
    kmeans_iterations : int
        Most Lloyd iterations (0: use the initial centroids as they are).
    quantizer : {"kmeans", "ecq"}
        ``kmeans``: k-means with ``2**code_bits`` clusters (the paper). ``ecq``:
        entropy-constrained scalar quantization (:mod:`dcformat.compress.ecq`): a
        uniform step refined by Lloyd iterations that charge each code its Huffman
        length; the step comes from ``max_rel_error`` / ``min_sqnr_db`` or from the
        global ``CompressionSettings.bits_per_param`` budget, and ``code_bits`` caps
        the codebook (up to 16).
    ecq_kappa : float
        ECQ's rate weight in units of step**2 (0: plain Lloyd from the uniform grid).
    max_rel_error : float or None
        Most relative RMS error ``||w - r|| / ||w||`` of this tensor (> 0).
    min_sqnr_db : float or None
        Least signal-to-quantization-noise ratio in dB (the same bound, in dB). With
        ``kmeans`` either bound raises the codebook size until it holds (to 16 bits);
        with ``ecq`` it caps the step.
    rd_weight : float
        Weight of this tensor's relative squared error in the global bit allocation
        (> 0; 4 spends about one bit more per weight than 1).
    groups : {"tensor", "rows"}
        ``ecq`` only. ``tensor``: one codebook for the tensor. ``rows``: one codebook
        shared by the rows (output channels) of a tensor of two or more dimensions, each
        row scaled by its own RMS (GROUPED values, format v1.1;
        :mod:`dcformat.compress.grouped`); tensors without such rows keep one codebook.
    keep_row_sums : bool
        ``ecq`` only. Move a few codes of each row (output channel) of a tensor of two or
        more dimensions to a neighbouring codebook entry so that the row's quantization
        error sums to about zero (:mod:`dcformat.compress.rowsums`): a data-free
        correction of the bias the error adds to the layer's output. On in the ``rd``
        preset. Not with an ``assign`` function (GPTQ compensates with data instead).

    Examples
    --------
    >>> TensorSettings(sparsity=0.9, code_bits=5, gap_bits=5).pruned
    True
    >>> TensorSettings.from_dict(TensorSettings(quality=1.0).to_dict()) == TensorSettings(quality=1.0)
    True
    """

    sparsity: float | None = None
    quality: float | None = None
    code_bits: int = 8
    gap_bits: int = 8
    init: str = "linear"
    huffman: bool = True
    seed: int = 0
    kmeans_iterations: int = 1000
    quantizer: str = "kmeans"
    ecq_kappa: float = 0.0
    max_rel_error: float | None = None
    min_sqnr_db: float | None = None
    rd_weight: float = 1.0
    groups: str = "tensor"
    keep_row_sums: bool = False

    def __post_init__(self):
        if self.sparsity is not None and self.quality is not None:
            raise InvalidSettings("set at most one of sparsity and quality")
        if self.sparsity is not None:
            s = _check_float("sparsity", self.sparsity)
            if not 0.0 <= s < 1.0:
                raise InvalidSettings(f"sparsity must be in [0, 1), got {s!r}")
            object.__setattr__(self, "sparsity", s)
        if self.quality is not None:
            q = _check_float("quality", self.quality)
            if q < 0.0:
                raise InvalidSettings(f"quality must be >= 0, got {q!r}")
            object.__setattr__(self, "quality", q)
        _check_int("code_bits", self.code_bits, MIN_BITS, MAX_BITS)
        _check_int("gap_bits", self.gap_bits, MIN_BITS, MAX_BITS)
        if self.init not in INITS:
            raise InvalidSettings(f"init must be one of {list(INITS)}, got {self.init!r}")
        if not isinstance(self.huffman, bool):
            raise InvalidSettings(f"huffman must be true or false, got {self.huffman!r}")
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("kmeans_iterations", self.kmeans_iterations, 0, 1_000_000)
        if self.quantizer not in QUANTIZERS:
            raise InvalidSettings(f"quantizer must be one of {list(QUANTIZERS)}, got {self.quantizer!r}")
        k = _check_float("ecq_kappa", self.ecq_kappa)
        if k < 0.0:
            raise InvalidSettings(f"ecq_kappa must be >= 0, got {k!r}")
        object.__setattr__(self, "ecq_kappa", k)
        if self.max_rel_error is not None:
            r = _check_float("max_rel_error", self.max_rel_error)
            if r <= 0.0:
                raise InvalidSettings(f"max_rel_error must be > 0, got {r!r}")
            object.__setattr__(self, "max_rel_error", r)
        if self.min_sqnr_db is not None:
            object.__setattr__(self, "min_sqnr_db", _check_float("min_sqnr_db", self.min_sqnr_db))
        w = _check_float("rd_weight", self.rd_weight)
        if w <= 0.0:
            raise InvalidSettings(f"rd_weight must be > 0, got {w!r}")
        object.__setattr__(self, "rd_weight", w)
        if self.groups not in GROUPS:
            raise InvalidSettings(f"groups must be one of {list(GROUPS)}, got {self.groups!r}")
        if not isinstance(self.keep_row_sums, bool):
            raise InvalidSettings(f"keep_row_sums must be true or false, got {self.keep_row_sums!r}")

    @property
    def max_relative_error(self) -> float | None:
        """The tighter of ``max_rel_error`` and ``min_sqnr_db`` as a relative RMS error, or None."""
        bounds = [b for b in (self.max_rel_error,
                              None if self.min_sqnr_db is None else 10.0 ** (-self.min_sqnr_db / 20.0))
                  if b is not None]
        return min(bounds) if bounds else None

    @property
    def pruned(self) -> bool:
        """Whether this tensor is pruned (and so stored sparse)."""
        return self.sparsity is not None or self.quality is not None

    def to_dict(self) -> dict:
        """A JSON-safe dict; :meth:`from_dict` inverts it."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "TensorSettings":
        """Build from a dict; missing fields take their defaults, unknown ones are refused."""
        return cls(**_from_dict(cls, data, "tensor settings"))


@dataclass(frozen=True)
class Rule:
    """Give ``settings`` (``None``: keep exact) to the tensors this rule matches.

    A tensor matches when its name matches ``glob`` (:func:`fnmatch.fnmatchcase`:
    case-sensitive, ``*`` also crosses dots) or ``regex`` (:func:`re.search`; anchor
    with ``^...$``), whichever is set, its kind is ``kind`` when that is set
    ("conv": three or more dimensions, "fc": two), and it has at least ``min_values``
    elements.

    Examples
    --------
    >>> Rule(TensorSettings(code_bits=4), glob="*.weight", kind="fc").matches("fc1.weight", (300, 784))
    True
    """

    settings: TensorSettings | None
    glob: str | None = None
    regex: str | None = None
    kind: str | None = None
    min_values: int = 0

    def __post_init__(self):
        if isinstance(self.min_values, bool) or not isinstance(self.min_values, int) or self.min_values < 0:
            raise InvalidSettings(f"min_values must be a non-negative integer, got {self.min_values!r}")
        if self.settings is not None and not isinstance(self.settings, TensorSettings):
            raise InvalidSettings(f"rule settings must be TensorSettings or None, got {self.settings!r}")
        if self.glob is not None and self.regex is not None:
            raise InvalidSettings("a rule takes glob or regex, not both")
        if self.glob is not None and not isinstance(self.glob, str):
            raise InvalidSettings(f"glob must be a string, got {self.glob!r}")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except (re.error, TypeError) as e:
                raise InvalidSettings(f"bad regex {self.regex!r}: {e}") from None
        if self.kind is not None and self.kind not in KINDS:
            raise InvalidSettings(f"kind must be one of {list(KINDS)} or null, got {self.kind!r}")

    def matches(self, name: str, shape: tuple[int, ...]) -> bool:
        """Whether the tensor ``name`` of ``shape`` matches this rule."""
        if self.kind is not None and layer_kind(shape) != self.kind:
            return False
        if self.min_values and math.prod(shape) < self.min_values:
            return False
        if self.glob is not None:
            return fnmatch.fnmatchcase(name, self.glob)
        if self.regex is not None:
            return re.search(self.regex, name) is not None
        return True

    def to_dict(self) -> dict:
        """A JSON-safe dict; :meth:`from_dict` inverts it."""
        return {"glob": self.glob, "regex": self.regex, "kind": self.kind, "min_values": self.min_values,
                "settings": None if self.settings is None else self.settings.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "Rule":
        """Build from a dict (``settings`` is required; ``null`` means keep exact)."""
        data = dict(_from_dict(cls, data, "rule"))
        if "settings" not in data:
            raise InvalidSettings("a rule needs 'settings' (an object, or null to keep exact)")
        s = data.pop("settings")
        return cls(settings=None if s is None else TensorSettings.from_dict(s), **data)


def layer_kind(shape: tuple[int, ...]) -> str | None:
    """"conv" for three or more dimensions, "fc" for two, None otherwise."""
    if len(shape) >= 3:
        return "conv"
    if len(shape) == 2:
        return "fc"
    return None


@dataclass(frozen=True)
class CompressionSettings:
    """Which tensors are compressed, and how.

    Parameters
    ----------
    default : TensorSettings or None
        Settings of a compressible tensor no rule matches; ``None`` keeps it exact.
    rules : tuple of Rule
        Tried in order; the first match wins.
    keep : tuple of str
        Glob patterns of tensors always kept exact (checked before the rules).
    min_elements : int
        Tensors with fewer elements are kept exact.
    min_rank : int
        Tensors with fewer dimensions are kept exact: 2 (the default) keeps biases and
        norms exact; 1 codes them too, which pays with the ecq quantizer, whose codebook
        on a uniform grid costs 8 bytes (an AFFINE codebook) rather than a table.
    bits_per_param : float or None
        A size budget for the whole file: its bytes x 8 over its parameters (every
        element of every tensor, exact ones included), counting everything stored
        (exact tensors, codebooks, streams with their Huffman tables, the header and
        its metadata, the alignment padding: :mod:`dcformat.compress.budget`). The
        ``ecq`` tensors share what the exact and ``kmeans`` tensors leave, allocated by
        equal slope (:mod:`dcformat.compress.ratedistortion`); the file lands within
        1 % of the budget or 0.02 bits per parameter, whichever is larger. A budget the
        model cannot meet (every ``ecq`` tensor at its coarsest) or these settings
        cannot spend is refused with :class:`~dcformat.errors.InvalidSettings`.
    rd_weights : mapping of str to float
        Per-tensor factors on ``rd_weight`` (by exact tensor name), for instance the
        output sensitivities :func:`dcformat.training.sensitivity.rd_weights` measures.
        They steer the ``bits_per_param`` allocation: a tensor weighted ``w`` ends at
        ``10 log10 w`` dB more SQNR than one weighted 1. Stored as sorted
        ``(name, factor)`` pairs so settings stay hashable and comparable.
    tensor_balance : float
        How a ``bits_per_param`` budget weighs a tensor's size: its distortion is its
        squared error relative to its mean square, times ``(n_max / n) ** tensor_balance``
        for a tensor of ``n`` values (``n_max``: the largest ``ecq`` tensor's). 0 weighs
        every value alike: every tensor at the same SQNR. 1 weighs every tensor alike,
        whatever its size, as a chain of layers does (each layer's relative error reaches
        the output about as it is): a tensor ten times smaller gets 10 dB more SQNR, for
        few bytes. The ``rd`` preset (what ``--bits-per-param`` starts from) uses
        :data:`RD_TENSOR_BALANCE`.
    exact : {"planes", "raw"}
        How tensors kept exact are stored: "planes" (default) stores each float tensor
        as entropy-coded bit planes where that is smaller than its raw bytes, bit-exact
        (a v1.2 file); "raw" stores every exact tensor as it is (a file v1.0 readers
        decode, unless other settings need a later version).

    Examples
    --------
    >>> s = CompressionSettings.preset("paper")
    >>> s.settings_for("fc1.weight", (300, 784), "F32").code_bits
    5
    >>> s.settings_for("fc1.bias", (300,), "F32") is None
    True
    >>> CompressionSettings.from_dict(s.to_dict()) == s
    True
    """

    default: TensorSettings | None = field(default_factory=TensorSettings)
    rules: tuple[Rule, ...] = ()
    keep: tuple[str, ...] = ()
    min_elements: int = 4096
    min_rank: int = 2
    bits_per_param: float | None = None
    rd_weights: tuple[tuple[str, float], ...] = ()
    tensor_balance: float = 0.0
    exact: str = "planes"

    def __post_init__(self):
        if self.default is not None and not isinstance(self.default, TensorSettings):
            raise InvalidSettings(f"default must be TensorSettings or None, got {self.default!r}")
        rules = tuple(self.rules)
        if not all(isinstance(r, Rule) for r in rules):
            raise InvalidSettings("rules must be Rule objects")
        object.__setattr__(self, "rules", rules)
        if isinstance(self.keep, str):
            raise InvalidSettings("keep must be a list of glob patterns, not one string")
        keep = tuple(self.keep)
        if not all(isinstance(k, str) for k in keep):
            raise InvalidSettings("keep patterns must be strings")
        object.__setattr__(self, "keep", keep)
        _check_int("min_elements", self.min_elements, 0, 2**63 - 1)
        _check_int("min_rank", self.min_rank, 0, 8)
        if self.bits_per_param is not None:
            b = _check_float("bits_per_param", self.bits_per_param)
            if b <= 0.0:
                raise InvalidSettings(f"bits_per_param must be > 0, got {b!r}")
            object.__setattr__(self, "bits_per_param", b)
        object.__setattr__(self, "rd_weights", _check_rd_weights(self.rd_weights))
        balance = _check_float("tensor_balance", self.tensor_balance)
        if not 0.0 <= balance <= MAX_TENSOR_BALANCE:
            raise InvalidSettings(f"tensor_balance must be in [0, {MAX_TENSOR_BALANCE:g}], got {balance!r}")
        object.__setattr__(self, "tensor_balance", balance)
        if self.exact not in EXACT_ENCODINGS:
            raise InvalidSettings(f"exact must be one of {list(EXACT_ENCODINGS)}, got {self.exact!r}")

    def exact_reason(self, name: str, shape: tuple[int, ...], dtype: str | None) -> str | None:
        """Why the tensor is kept exact, or None when it is compressed.

        ``dtype`` is the wire name (None for a dtype the format does not know).
        """
        from ._dtypes import COMPRESSIBLE

        if dtype not in COMPRESSIBLE:
            return "not floating"
        if len(shape) < self.min_rank:
            return f"fewer than {self.min_rank} dimensions"
        n = math.prod(int(d) for d in shape)
        if n < max(self.min_elements, 1):
            return f"fewer than {self.min_elements} elements"
        if any(fnmatch.fnmatchcase(name, k) for k in self.keep):
            return "keep pattern"
        for rule in self.rules:
            if rule.matches(name, shape):
                return "rule keeps exact" if rule.settings is None else None
        return "no settings" if self.default is None else None

    def settings_for(self, name: str, shape: tuple[int, ...], dtype: str | None) -> TensorSettings | None:
        """The settings of one tensor, or None to keep it exact."""
        if self.exact_reason(name, shape, dtype) is not None:
            return None
        chosen = self.default
        for rule in self.rules:
            if rule.matches(name, shape):
                chosen = rule.settings
                break
        factor = dict(self.rd_weights).get(name)
        return chosen if factor is None else replace(chosen, rd_weight=chosen.rd_weight * factor)

    def to_dict(self) -> dict:
        """A JSON-safe dict; :meth:`from_dict` inverts it."""
        return {"default": None if self.default is None else self.default.to_dict(),
                "rules": [r.to_dict() for r in self.rules],
                "keep": list(self.keep), "min_elements": self.min_elements, "min_rank": self.min_rank,
                "bits_per_param": self.bits_per_param, "rd_weights": dict(self.rd_weights),
                "tensor_balance": self.tensor_balance, "exact": self.exact}

    @classmethod
    def from_dict(cls, data: dict) -> "CompressionSettings":
        """Build from a dict; missing fields take their defaults, unknown ones are refused."""
        data = dict(_from_dict(cls, data, "compression settings"))
        if "default" in data and data["default"] is not None:
            data["default"] = TensorSettings.from_dict(data["default"])
        if "rules" in data:
            if not isinstance(data["rules"], list):
                raise InvalidSettings("rules must be a list")
            data["rules"] = tuple(Rule.from_dict(r) for r in data["rules"])
        if "keep" in data and not isinstance(data["keep"], list):
            raise InvalidSettings("keep must be a list of glob patterns")
        if "rd_weights" in data and not isinstance(data["rd_weights"], dict):
            raise InvalidSettings("rd_weights must be an object mapping tensor names to factors")
        return cls(**data)

    def with_overrides(self, **changes) -> "CompressionSettings":
        """These settings with ``changes`` applied to the default and to every rule.

        A rule that keeps tensors exact stays exact; a missing default becomes
        ``TensorSettings(**changes)``, so flags also reach tensors no rule matches.
        Setting ``sparsity`` or ``quality`` clears the other.

        Examples
        --------
        >>> s = CompressionSettings.preset("paper").with_overrides(code_bits=4)
        >>> s.settings_for("fc1.weight", (300, 784), "F32").code_bits
        4
        """
        if not changes:
            return self

        def apply(settings: TensorSettings | None) -> TensorSettings:
            data = (settings or TensorSettings()).to_dict()
            if "sparsity" in changes or "quality" in changes:
                data["sparsity"] = data["quality"] = None
            return TensorSettings.from_dict({**data, **changes})

        rules = tuple(Rule(None if r.settings is None else apply(r.settings), r.glob, r.regex, r.kind)
                      for r in self.rules)
        return replace(self, default=apply(self.default), rules=rules)

    def to_json(self, **kwargs) -> str:
        """``to_dict`` as JSON text."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "CompressionSettings":
        """Parse JSON text written by :meth:`to_json` (or by hand)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidSettings(f"settings are not valid JSON: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def preset(cls, name: str) -> "CompressionSettings":
        """A named preset: one of :data:`PRESETS`."""
        try:
            return _PRESETS[name]()
        except KeyError:
            raise InvalidSettings(f"unknown preset {name!r}; known: {sorted(_PRESETS)}") from None


def _paper() -> CompressionSettings:
    # Han et al. 2016: 8-bit codes and gaps for conv, 5-bit for fc. Sparsities follow
    # AlexNet's Table 4 (conv about 35-40 % kept, fc about 10 %); the paper retrains
    # after pruning, which this preset does not do.
    return CompressionSettings(
        default=None,
        rules=(Rule(kind="conv", settings=TensorSettings(sparsity=0.6, code_bits=8, gap_bits=8)),
               Rule(kind="fc", settings=TensorSettings(sparsity=0.9, code_bits=5, gap_bits=5))),
    )


#: The ``rd`` preset's tensor balance, and the smallest tensor it codes. Chosen on
#: MobileNetV2's tuning crops (benchmarks/posttraining_mobilenet.py; the held-out crops
#: carry every reported figure) among balances 0, 0.5, 0.75, 1 and 1.25, with tensors of
#: at least 4,096 values and 2 dimensions coded, or every float tensor of at least 64
#: values: every tensor from 64 values at 1.25 had the highest tuning ratio at logit
#: cosine 0.999 and 0.99 (1.25 and 1 within the crops' noise of each other).
RD_TENSOR_BALANCE = 1.25
RD_MIN_ELEMENTS = 64
#: The largest tensor_balance accepted: beyond it the smallest tensors would be asked for
#: more SQNR than any codebook can give.
MAX_TENSOR_BALANCE = 4.0


def _rd() -> CompressionSettings:
    # Post-training, no data: entropy-constrained quantization of every float tensor of at
    # least 64 values (biases and norms too: on AFFINE codebooks they cost a few bits a
    # value) under a global budget of 4 bits per parameter, each tensor weighted as a layer,
    # each row's sum kept (compress/rowsums.py).
    return CompressionSettings(default=TensorSettings(quantizer="ecq", code_bits=12, keep_row_sums=True),
                               bits_per_param=4.0,
                               min_elements=RD_MIN_ELEMENTS, min_rank=1, tensor_balance=RD_TENSOR_BALANCE)


#: Tensors of at least this many values take :func:`_default`'s 9-bit codebooks.
LARGE_TENSOR = 1 << 26


def _default() -> CompressionSettings:
    # No pruning, 8-bit linear-initialised codebooks; 9 bits for a tensor of 64 Mi values
    # or more (an LLM's token embedding, often tied to its output layer). Chosen on the
    # tune files of benchmarks/gemma.py, judged on its other files: Gemma-3-270M at 8 bits
    # everywhere +1.30 % perplexity; its embedding at 9 bits +0.74 % (6.9 bits/param), at
    # 10 +0.60 % (7.9), kept exact +0.68 % (9.0); density or random init: worse.
    return CompressionSettings(rules=(Rule(TensorSettings(code_bits=9), min_values=LARGE_TENSOR),))


_PRESETS = {
    "default": _default,
    "paper": _paper,
    "lossless": lambda: CompressionSettings(default=None),
    "rd": _rd,
}
#: Names accepted by :meth:`CompressionSettings.preset`.
PRESETS = tuple(_PRESETS)
