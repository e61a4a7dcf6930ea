"""Per-tensor summaries of a file, as ``dcformat info`` and ``compress`` print them.

The figures follow the paper's Table 2: how much of each tensor is stored, how many
bits a code and a gap cost after entropy coding (tables and chunk entries included), the
bytes on disk and the compression rate against the dense tensor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .format.constants import Layout, ValueKind
from .format.records import Record
from .safe_open import safe_open


@dataclass(frozen=True)
class TensorSummary:
    name: str
    dtype: str
    shape: tuple[int, ...]
    encoding: str
    elements: int
    stored: int
    stored_percent: float
    codebook_size: int
    bits_per_code: float | None
    bits_per_gap: float | None
    payload_bytes: int
    dense_bytes: int

    @property
    def ratio(self) -> float:
        return self.dense_bytes / self.payload_bytes if self.payload_bytes else float("inf")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def encoding_name(record: Record) -> str:
    values = {ValueKind.RAW: "raw", ValueKind.CODEBOOK: "codebook", ValueKind.BANK: "bank",
              ValueKind.GROUPED: f"grouped/{record.group_size}", ValueKind.PLANES: "planes"}[record.value_kind]
    if record.layout == Layout.SPARSE:
        return f"sparse+{values}"
    return values


def summarize(record: Record) -> TensorSummary:
    """The Table-2 figures of one record, from its header fields alone."""
    stored = record.stored_count
    segs = record.segments
    stream = segs.get("codes") or segs.get("selectors")
    bits_code = 8 * stream.length / stored if stream is not None and stored else None
    bits_gap = 8 * segs["gaps"].length / stored if "gaps" in segs and stored else None
    units = record.units
    return TensorSummary(
        name=record.name, dtype=record.dtype.name, shape=record.shape, encoding=encoding_name(record),
        elements=record.size, stored=stored * record.unit_size,
        stored_percent=100.0 * stored / units if units else 100.0,
        codebook_size=record.codebook_size, bits_per_code=bits_code, bits_per_gap=bits_gap,
        payload_bytes=record.payload_bytes, dense_bytes=record.nbytes)


def describe(path) -> tuple[list[TensorSummary], list[TensorSummary], int]:
    """(tensor summaries, bank summaries, file size) of a file; no tensor is decoded."""
    with safe_open(path) as f:
        return [summarize(r) for r in f.records()], [summarize(r) for r in f.bank_records()], f.file_size


def format_table(rows: list[TensorSummary], file_size: int, banks: list[TensorSummary] = (),
                 errors: dict[str, tuple[float, float]] | None = None) -> str:
    """A fixed-width table with a totals line; the ratio counts the whole file.

    ``errors`` maps tensor names to (kept %, relative RMS error) from the compression
    pipeline; with it, "kept %" counts true non-zeros (fillers excluded) and an error
    column is added. Without it the table shows stored entries, as the file alone tells.
    """
    kept = "kept %" if errors else "stored %"
    head = (f"{'tensor':<32} {'encoding':<16} {'shape':<18} {kept:>8} {'bits/code':>9} {'bits/gap':>8} "
            f"{'bytes':>10} {'ratio':>7}" + (f" {'rel.err':>8}" if errors else ""))
    lines = [head, "-" * len(head)]
    for row in [*banks, *rows]:
        name = row.name if len(row.name) <= 32 else "..." + row.name[-29:]
        percent, error = (errors or {}).get(row.name, (row.stored_percent, None))
        lines.append(
            f"{name:<32} {row.encoding:<16} {'x'.join(map(str, row.shape)) or 'scalar':<18} "
            f"{percent:>7.1f}% {_bits(row.bits_per_code):>9} {_bits(row.bits_per_gap):>8} "
            f"{row.payload_bytes:>10,} {row.ratio:>6.1f}x" + (f" {_error(error):>8}" if errors else ""))
    dense = sum(r.dense_bytes for r in rows)
    lines.append("-" * len(head))
    lines.append(f"{'total (whole file, headers included)':<69} {'':>8} {'':>9} {'':>8} {file_size:>10,} "
                 f"{dense / file_size if file_size else 0:>6.1f}x")
    lines.append(f"dense tensors: {dense:,} bytes; file: {file_size:,} bytes")
    return "\n".join(lines)


def _bits(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _error(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
