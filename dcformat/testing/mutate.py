"""Mutated copies of a valid container, aimed at the fields a reader trusts.

:func:`field_offsets` walks a valid file with the header parser and names the byte
range of every field: preamble fields, counts, string lengths, shapes, record fields,
segment references, the first and last bytes of each payload, padding, inside
Huffman segments the table, the chunk entries and the start of each chunk's bits, and
an AFFINE codebook's Base and Step.
:func:`mutations` draws copies of the file with a few edits each: bit flips,
interesting integers written over fields, random byte overwrites, truncation,
extension, splices with another file, duplicated, deleted or inserted regions. With
``fix_checksums`` the CRC-32s are recomputed afterwards (:func:`refresh_checksums`), so
the edit reaches the checks behind them even when the reader verifies checksums.

Every mutated file must either decode or be refused with a
:class:`~dcformat.errors.DCFormatError`; no other exception, and no crash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from hypothesis import note
from hypothesis import strategies as st

from ..format import constants as C
from ..container.checksum import crc32
from ..container.reader import parse_header
from ..errors import DCFormatError

__all__ = ["Field", "field_offsets", "refresh_checksums", "future_version", "mutations"]


@dataclass(frozen=True)
class Field:
    """A named byte range ``[offset, offset + size)`` of a file.

    ``section`` is ``"preamble"``, ``"header"``, ``"padding"``, ``"payload"`` (a
    segment's bytes) or ``"stream"`` (inside a Huffman segment: the table, the chunk
    entries, the first bits of chunks).

    Examples
    --------
    >>> import numpy as np, dcformat
    >>> data = dcformat.save({"w": np.zeros((2, 3), dtype=np.float32)})
    >>> shape = [f for f in field_offsets(data) if f.name == "tensor[0] Shape[1]"][0]
    >>> shape
    Field(name='tensor[0] Shape[1]', offset=63, size=8, section='header')
    >>> int.from_bytes(data[shape.offset:shape.offset + shape.size], "little")
    3
    """

    name: str
    offset: int
    size: int
    section: str = "header"


_PREAMBLE_FIELDS = (("Magic", 0, 8), ("Version_Major", 8, 2), ("Version_Minor", 10, 2),
                    ("Required_Features", 12, 4), ("Optional_Features", 16, 4),
                    ("Header_Size", 20, 8), ("Header_Checksum", 28, 4))
#: At most this many chunk entries per Huffman segment are named (the first ones and the last).
_CHUNKS_NAMED = 4


def _walk(header) -> tuple[list[Field], list[tuple[int, object]]]:
    """The header's fields, and (offset of its Checksum field, ref) for every segment."""
    fields = [Field(*f, "preamble") for f in _PREAMBLE_FIELDS]
    slots: list[tuple[int, object]] = []
    pos = C.PREAMBLE_SIZE

    def add(name: str, size: int) -> int:
        nonlocal pos
        if size:
            fields.append(Field(name, pos, size))
        pos += size
        return pos - size

    add("Alignment", 4)
    add("Metadata_Count", 4)
    for i, (key, value) in enumerate(header.metadata.items()):
        add(f"metadata[{i}] key length", 4)
        add(f"metadata[{i}] key", len(key.encode("utf-8")))
        add(f"metadata[{i}] value length", 4)
        add(f"metadata[{i}] value", len(value.encode("utf-8")))
    for kind, records in (("bank", header.banks), ("tensor", header.tensors)):
        add(f"{kind.capitalize()}_Count", 4)
        for i, record in enumerate(records):
            label = f"{kind}[{i}]"
            add(f"{label} name length", 4)
            add(f"{label} name", len(record.name.encode("utf-8")))
            add(f"{label} DType", 1)
            add(f"{label} Rank", 1)
            for d in range(len(record.shape)):
                add(f"{label} Shape[{d}]", 8)
            add(f"{label} Layout", 1)
            add(f"{label} Value_Kind", 1)
            if record.layout == C.Layout.SPARSE:
                add(f"{label} Gap_Bits", 1)
                add(f"{label} Entry_Count", 8)
            if record.value_kind == C.ValueKind.CODEBOOK:
                add(f"{label} Codebook_Size", 4)
            elif record.value_kind == C.ValueKind.BANK:
                add(f"{label} Bank_Index", 4)
            elif record.value_kind == C.ValueKind.GROUPED:
                add(f"{label} Codebook_Size", 4)
                add(f"{label} Group_Size", 8)
                add(f"{label} Scale_Count", 4)
                add(f"{label} Offset_Count", 4)
            elif record.value_kind == C.ValueKind.PLANES:  # its segments, "exponent[0]", ..., follow
                add(f"{label} Block_Size", 8)
            for role, ref in record.segments.items():
                add(f"{label} {role} Codec", 1)
                add(f"{label} {role} Offset", 8)
                add(f"{label} {role} Length", 8)
                slots.append((add(f"{label} {role} Checksum", 4), ref))
    return fields, slots


def _huffman_fields(data: bytes, label: str, start: int, end: int) -> list[Field]:
    """Fields inside one Huffman segment ``data[start:end]`` (spec, "Huffman streams")."""
    out: list[Field] = []

    def u32(at: int) -> int | None:
        return struct.unpack_from("<I", data, at)[0] if at + 4 <= end else None

    table_size = u32(start)
    if table_size is None:
        return out
    out.append(Field(f"{label} Table_Size", start, 4, "stream"))
    n_lengths = (table_size + 1) // 2
    if n_lengths and start + 4 + n_lengths <= end:
        out.append(Field(f"{label} Code_Lengths", start + 4, n_lengths, "stream"))
        out.append(Field(f"{label} Code_Lengths last byte", start + 3 + n_lengths, 1, "stream"))
    at = start + 4 + n_lengths
    chunk_count = u32(at)
    if chunk_count is None:
        return out
    out.append(Field(f"{label} Chunk_Count", at, 4, "stream"))
    entries = at + 4
    bits = entries + C.CHUNK_ENTRY_SIZE * chunk_count
    if bits > end:
        return out
    named = sorted({*range(min(chunk_count, _CHUNKS_NAMED)), chunk_count - 1} - {-1})
    for c in named:
        e = entries + C.CHUNK_ENTRY_SIZE * c
        mode, offset, _, _ = struct.unpack_from(C.CHUNK_ENTRY_FORMAT, data, e)
        out += [Field(f"{label} chunk[{c}] Mode", e, 1, "stream"),
                Field(f"{label} chunk[{c}] Byte_Offset", e + 1, 8, "stream"),
                Field(f"{label} chunk[{c}] First_Symbol", e + 9, 8, "stream"),
                Field(f"{label} chunk[{c}] Start_Position", e + 17, 8, "stream")]
        if bits + offset < end:
            out.append(Field(f"{label} chunk[{c}] bits", bits + offset, min(4, end - bits - offset), "stream"))
    return out


def field_offsets(data: bytes) -> tuple[Field, ...]:
    """Name the byte range of every field of a valid container.

    Raises a :class:`~dcformat.errors.DCFormatError` when ``data``'s header does not
    parse (checksums are not verified).

    Examples
    --------
    >>> import numpy as np, dcformat
    >>> data = dcformat.save({"w": np.zeros(3, dtype=np.float32)})
    >>> [(f.name, f.offset, f.size) for f in field_offsets(data)][7:11]
    [('Alignment', 32, 4), ('Metadata_Count', 36, 4), ('Bank_Count', 40, 4), ('Tensor_Count', 44, 4)]
    >>> [f.name for f in field_offsets(data)][-2:]
    ['tensor[0] values payload', 'tensor[0] values payload last byte']
    """
    data = bytes(data)
    header = parse_header(data, verify=False)
    fields, _ = _walk(header)
    header_end = C.PREAMBLE_SIZE + header.header_size
    data_offset = header.data_offset
    if data_offset > header_end:
        fields.append(Field("header padding", header_end, data_offset - header_end, "padding"))
    end = 0
    segments = [(f"{kind}[{i}] {role}", ref)
                for kind, records in (("bank", header.banks), ("tensor", header.tensors))
                for i, record in enumerate(records) for role, ref in record.segments.items()]
    for label, ref in segments:
        if ref.offset > end:
            fields.append(Field(f"padding before {label}", data_offset + end, ref.offset - end, "padding"))
        start = data_offset + ref.offset
        stop = min(start + ref.length, len(data))
        if stop > start:
            fields.append(Field(f"{label} payload", start, stop - start, "payload"))
            fields.append(Field(f"{label} payload last byte", stop - 1, 1, "payload"))
            if ref.codec == C.SegmentCodec.HUFFMAN:
                fields += _huffman_fields(data, label, start, stop)
            elif ref.codec == C.SegmentCodec.AFFINE:  # two float32: a reader must refuse NaN and inf
                fields += [Field(f"{label} Base", start, 4, "payload"), Field(f"{label} Step", start + 4, 4, "payload")]
        end = ref.offset + ref.length
    return tuple(f for f in fields if f.offset + f.size <= len(data))


def refresh_checksums(data: bytes) -> bytes:
    """Recompute the segment and header CRC-32s of a (possibly mutated) file.

    Best effort: segment checksums are rewritten only when the header still parses,
    the header checksum whenever the preamble's Header_Size fits the file. A file so
    repaired is refused, if at all, by a rule other than R7 and R21.

    Examples
    --------
    >>> import numpy as np, dcformat
    >>> data = bytearray(dcformat.save({"w": np.zeros(3, dtype=np.uint8)}))
    >>> data[-1] = 1                       # breaks the segment checksum
    >>> dcformat.load(bytes(data))
    Traceback (most recent call last):
    ...
    dcformat.errors.ChecksumMismatch: checksum mismatch in values segment of 'w': stored 0xff41d912, computed 0x8846e984
    >>> dcformat.load(refresh_checksums(data))["w"]
    array([0, 0, 1], dtype=uint8)
    """
    buf = bytearray(data)
    if len(buf) < C.PREAMBLE_SIZE or bytes(buf[:8]) != C.MAGIC:
        return bytes(buf)
    header_size = int.from_bytes(buf[20:28], "little")
    header_end = C.PREAMBLE_SIZE + header_size
    if header_end > len(buf):
        return bytes(buf)
    try:
        header = parse_header(bytes(buf), verify=False)
    except DCFormatError:
        header = None
    if header is not None:
        _, slots = _walk(header)
        for at, ref in slots:
            start = header.data_offset + ref.offset
            if start + ref.length <= len(buf):
                buf[at:at + 4] = struct.pack("<I", crc32(buf[start:start + ref.length]))
    crc = crc32(buf[:C.PREAMBLE_CHECKED_SIZE], buf[C.PREAMBLE_SIZE:header_end])
    buf[28:32] = struct.pack("<I", crc)
    return bytes(buf)


def future_version(data: bytes, *, minor: int = 1, optional_features: int = 0, extension: bytes = b"") -> bytes:
    """A valid file as a later minor version could write it: same tensors, new extras.

    Sets Version_Minor and Optional_Features, and appends ``extension`` to the header
    (spec/FORMAT.md, "Extension"; the data section moves to the next aligned offset, its
    segments keep their offsets from Data_Offset). A reader must decode the result to the
    same tensors as ``data`` when ``minor`` is above its own, and refuse extension bytes
    with InvalidHeader when ``minor`` is 0.

    Examples
    --------
    >>> import numpy as np, dcformat
    >>> data = dcformat.save({"w": np.arange(3, dtype=np.uint16)})
    >>> later = future_version(data, minor=7, optional_features=0x80000001, extension=b"new field")
    >>> dcformat.load(later)["w"]
    array([0, 1, 2], dtype=uint16)
    >>> dcformat.load(future_version(data, minor=0, extension=b"x"))
    Traceback (most recent call last):
    ...
    dcformat.errors.InvalidHeader: invalid header: 1 bytes after the last record
    """
    data = bytes(data)
    header = parse_header(data, verify=False)
    old_end = C.PREAMBLE_SIZE + header.header_size
    body = data[C.PREAMBLE_SIZE:old_end] + bytes(extension)
    preamble = struct.pack(C.PREAMBLE_FORMAT[:-1], C.MAGIC, header.version[0], minor,
                           header.required_features, optional_features, len(body))
    checksum = crc32(preamble, body)
    data_offset = C.align_up(C.PREAMBLE_SIZE + len(body), header.alignment)
    padding = bytes(data_offset - C.PREAMBLE_SIZE - len(body))
    return preamble + struct.pack("<I", checksum) + body + padding + data[header.data_offset:]


# --- the strategy -----------------------------------------------------------------


def _interesting(size: int, original: int) -> list[int]:
    """Integers worth writing over a ``size``-byte field that held ``original``."""
    top = 1 << (8 * size)
    values = {0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 25, 31, 32, 63, 64, 65, 127, 128, 255, 256, 4095, 4096,
              4097, 65535, 65536, 65537, 1 << 24, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32,
              1 << 48, (1 << 48) + 1, 1 << 63, top - 1, top - 2,
              original + 1, original - 1, original + 8, original - 8, original + 64, original * 2,
              original // 2, original << 8, original ^ (top >> 1),
              # float32 NaN, +inf, -inf, the largest finite, a signalling NaN (AFFINE Base and Step)
              0x7FC00000, 0x7F800000, 0xFF800000, 0x7F7FFFFF, 0xFF800001}
    return sorted({v % top for v in values})


def mutations(data: bytes, *, donors: Sequence[bytes] = (), max_edits: int = 3,
              fix_checksums: bool | None = None) -> st.SearchStrategy[bytes]:
    """Mutated copies of the valid container ``data``.

    Parameters
    ----------
    data : bytes
        A valid container (its header must parse).
    donors : sequence of bytes
        Other files to splice with; ``data`` itself is always a donor.
    max_edits : int
        Each copy gets 1 to this many edits.
    fix_checksums : bool or None
        Recompute the CRC-32s after editing (True), never (False), or draw it (None).

    Returns
    -------
    SearchStrategy[bytes]

    Notes
    -----
    Each edit is noted with :func:`hypothesis.note`, so a failing example says what
    was done to the file. Edits aim at the fields :func:`field_offsets` names about
    half of the time, and at any byte otherwise.

    Examples
    --------
    >>> import numpy as np, dcformat
    >>> from hypothesis import given, settings
    >>> data = dcformat.save({"w": np.arange(6, dtype=np.float32)})
    >>> @settings(max_examples=50, deadline=None)
    ... @given(mutations(data))
    ... def check(mutated):
    ...     try:
    ...         dcformat.load(mutated)
    ...     except dcformat.DCFormatError:
    ...         pass
    >>> check()
    """
    data = bytes(data)
    fields = field_offsets(data)
    # Sections by weight: the payload and the header hold most of what a reader checks;
    # the preamble is a few fields, and an edit of the magic only ever tests BadMagic.
    sections = {name: [f for f in fields if f.section == name and f.name != "Magic"]
                for name in ("payload", "stream", "header", "preamble", "padding")}
    sections["preamble"] += [f for f in fields if f.name == "Magic"]
    weighted = [name for name, weight in (("header", 4), ("payload", 3), ("stream", 3), ("preamble", 1),
                                          ("padding", 1))
                for _ in range(weight) if sections[name]]
    original = {f: int.from_bytes(data[f.offset:f.offset + min(f.size, 8)], "little") for f in fields}
    boundaries = sorted({0, len(data), *(f.offset for f in fields), *(f.offset + f.size for f in fields)})
    pool = [data, *(bytes(d) for d in donors)]

    def lowest(draw, size: int) -> int:
        """Where untargeted edits start: past the preamble, but at 0 one time in eight.

        Hypothesis favours small integers; without this, most splices, insertions and
        deletions would land in the magic or the version and test nothing else.
        """
        return min(C.PREAMBLE_SIZE, size) if draw(st.sampled_from([True] * 7 + [False])) else 0

    def pick_field(draw) -> Field:
        return draw(st.sampled_from(sections[draw(st.sampled_from(weighted))]))

    def offset(draw, buf) -> int:
        """A byte of ``buf``: often in a named field (its first bytes favoured), else anywhere."""
        if fields and not draw(st.booleans()):
            f = pick_field(draw)
            at = f.offset + draw(st.one_of(st.integers(0, min(f.size, 8) - 1), st.integers(0, f.size - 1)))
            if at < len(buf):
                return at
        return draw(st.integers(lowest(draw, len(buf) - 1), len(buf) - 1))

    def position(draw, buf) -> int:
        """A cut point in ``buf`` (0 to len): often a field boundary."""
        low = lowest(draw, len(buf))
        cuts = [b for b in boundaries if low <= b <= len(buf)] or [len(buf)]
        return draw(st.one_of(st.sampled_from(cuts), st.integers(low, len(buf))))

    def flip(draw, buf):
        at, bit = offset(draw, buf), draw(st.integers(0, 7))
        buf[at] ^= 1 << bit
        return buf, f"flip bit {bit} of byte {at}"

    def set_field(draw, buf):
        f = pick_field(draw)
        size = min(f.size, 8)
        value = draw(st.one_of(st.sampled_from(_interesting(size, original[f])),
                               st.integers(0, (1 << (8 * size)) - 1)))
        raw = value.to_bytes(size, "little")[:max(0, len(buf) - f.offset)]
        buf[f.offset:f.offset + len(raw)] = raw
        return buf, f"set {f.name} (offset {f.offset}, {size} bytes) to {value}"

    def overwrite(draw, buf):
        at = offset(draw, buf)
        raw = draw(st.one_of(st.binary(min_size=1, max_size=8),
                             st.sampled_from([b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff" * 8, b"\x00" * 8])))
        raw = raw[:len(buf) - at]
        buf[at:at + len(raw)] = raw
        return buf, f"overwrite {len(raw)} bytes at {at} with {raw.hex()}"

    def truncate(draw, buf):
        low = lowest(draw, len(buf) - 1)
        size = draw(st.one_of(st.sampled_from([b for b in boundaries if low <= b < len(buf)] or [low]),
                              st.integers(low, len(buf) - 1)))
        return buf[:size], f"truncate to {size} bytes"

    def extend(draw, buf):
        tail = draw(st.one_of(st.binary(min_size=1, max_size=64), st.integers(1, 128).map(bytes),
                              st.sampled_from(pool)))
        return buf + tail, f"append {len(tail)} bytes"

    def splice(draw, buf):
        other = draw(st.sampled_from(pool))
        i, j = position(draw, buf), draw(st.integers(0, len(other)))
        return buf[:i] + other[j:], f"splice: first {i} bytes, then donor from byte {j}"

    def duplicate(draw, buf):
        j = offset(draw, buf)
        k = min(len(buf), j + draw(st.integers(1, 64)))
        i = position(draw, buf)
        if draw(st.booleans()):
            return buf[:i] + buf[j:k] + buf[i:], f"insert a copy of bytes [{j}, {k}) at {i}"
        piece = buf[j:k][:len(buf) - i]
        buf[i:i + len(piece)] = piece
        return buf, f"copy bytes [{j}, {k}) over offset {i}"

    def delete(draw, buf):
        i = position(draw, buf)
        j = min(len(buf), i + draw(st.integers(1, 64)))
        return buf[:i] + buf[j:], f"delete bytes [{i}, {j})"

    def insert(draw, buf):
        i = position(draw, buf)
        raw = draw(st.one_of(st.binary(min_size=1, max_size=16), st.integers(1, 64).map(bytes)))
        return buf[:i] + raw + buf[i:], f"insert {raw.hex()} at {i}"

    # In-place edits twice as likely as the others. Hypothesis favours the first and the
    # last choice of a list, so both ends are in-place edits that keep the file's length.
    in_place = [set_field, flip, overwrite, duplicate] if fields else [flip, overwrite, duplicate]
    ops = [*in_place, truncate, extend, splice, delete, insert, *reversed(in_place)]

    @st.composite
    def _mutations(draw):
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, max_edits))):
            op = draw(st.sampled_from(ops if buf else [extend, splice, insert]))
            buf, what = op(draw, bytearray(buf))
            note(f"mutation: {what}")
        fix = draw(st.booleans()) if fix_checksums is None else fix_checksums
        if fix:
            buf = bytearray(refresh_checksums(bytes(buf)))
            note("mutation: checksums recomputed")
        return bytes(buf)

    return _mutations()
