"""Vector makers: a valid base file changed in one place (two for the ``order-*`` vectors).

Each helper returns a ``make()`` (or a change that a maker applies); nothing runs until the
generator asks for the vector's bytes.
"""

from __future__ import annotations

from typing import Callable

from dcformat.format import constants as C

from .bases import base_raw
from .model import Model, Patch, Rec, parse, serialize


def patched(base: Callable[[], bytes], change: Callable[[Patch], object], **done) -> Callable[[], bytes]:
    """A vector maker: patch bytes of ``base()`` in place, then fix checksums (unless told not to)."""
    def make() -> bytes:
        p = Patch(base())
        change(p)
        return p.done(**done)
    return make


def edited(base: Callable[[], bytes], change: Callable[[Model], object]) -> Callable[[], bytes]:
    """A vector maker: edit the model of ``base()`` and write it back (layout and checksums derived)."""
    def make() -> bytes:
        m = parse(base())
        change(m)
        return serialize(m)[0]
    return make


def put_byte(where: Callable[[Patch], int], update: Callable[[int], int]) -> Callable[[Patch], None]:
    def change(p: Patch) -> None:
        at = where(p)
        p.data[at] = update(p.data[at])
    return change


def seg_byte(kind: str, name: str, role: str, index: int) -> Callable[[Patch], int]:
    """The absolute offset of byte ``index`` (negative: from the end) of a segment's payload."""
    def where(p: Patch) -> int:
        _, start, length = p.segment(kind, name, role)
        return start + (index % length)
    return where


def shape_at(name: str, dim: int) -> Callable[[Patch], int]:
    return lambda p: p.field("tensor", name, "shape") + 8 * dim


#: Offset and struct format of each preamble field after the magic.
PRE = {"major": (8, "H"), "minor": (10, "H"), "required": (12, "I"), "optional": (16, "I"),
       "header_size": (20, "Q"), "header_checksum": (28, "I")}


def preamble(field: str, value, *, fix_checksum: bool = True, base=base_raw) -> Callable[[], bytes]:
    at, fmt = PRE[field]
    return patched(base, lambda p: p.put(at, fmt, value(p) if callable(value) else value),
                   header_checksum=fix_checksum)


def header_size(p: Patch) -> int:
    return p.at["header_end"] - C.PREAMBLE_SIZE


def cut(base: Callable[[], bytes], where: Callable[[dict, bytes], int]) -> Callable[[], bytes]:
    """A vector maker: ``base()`` cut short at an offset computed from its field offsets."""
    def make() -> bytes:
        data = base()
        at = serialize(parse(data))[1]
        return data[:where(at, data)]
    return make


def rename(kind: str, index: int, name: bytes) -> Callable[[Model], None]:
    def change(m: Model) -> None:
        (m.banks if kind == "bank" else m.tensors)[index].name = name
    return change


def set_attr(getter: Callable[[Model], object], **values) -> Callable[[Model], None]:
    def change(m: Model) -> None:
        obj = getter(m)
        for key, value in values.items():
            setattr(obj, key, value)
    return change


def extra_bank(rec: Rec) -> Callable[[Model], None]:
    return lambda m: m.banks.append(rec)


def to_front(name: str) -> Callable[[Model], None]:
    """Move tensor record ``name`` to the front of the tensor records."""
    def change(m: Model) -> None:
        rec = m.tensor(name)
        m.tensors.remove(rec)
        m.tensors.insert(0, rec)
    return change


def set_payload(name: str, role: str, change: Callable[[bytes], bytes]) -> Callable[[Model], None]:
    """Tensor ``name``'s ``role`` payload changed (its Length, offsets and checksums follow)."""
    def edit(m: Model) -> None:
        seg = m.tensor(name).seg(role)
        seg.payload = change(seg.payload)
    return edit


def as_bank(name: str) -> Callable[[Model], None]:
    """Move tensor record ``name`` to the end of the bank records, as it is."""
    def change(m: Model) -> None:
        rec = m.tensor(name)
        m.tensors.remove(rec)
        m.banks.append(rec)
    return change


def packed_symbol(kind: str, name: str, role: str, alphabet: int, index: int, value: int):
    """Patch symbol ``index`` of a PACKED stream to ``value`` (checksums recomputed)."""
    def change(p: Patch) -> None:
        _, start, length = p.segment(kind, name, role)
        width = C.symbol_width(alphabet)
        bits = int.from_bytes(p.data[start:start + length], "little")
        bits &= ~(((1 << width) - 1) << (index * width))
        bits |= value << (index * width)
        p.data[start:start + length] = bits.to_bytes(length, "little")
    return change


def break_checksum(kind: str, name: str, role: str) -> Callable[[Patch], None]:
    return put_byte(lambda p: p.segment(kind, name, role)[0] + 17, lambda b: b ^ 0x01)


def both(*changes: Callable) -> Callable:
    def change(x) -> None:
        for c in changes:
            c(x)
    return change


def cut_after(make: Callable[[], bytes], count: int) -> Callable[[], bytes]:
    return lambda: make()[:len(make()) - count]


def append_after(make: Callable[[], bytes], extra: bytes) -> Callable[[], bytes]:
    return lambda: make() + extra
