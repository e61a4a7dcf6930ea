"""A scanner for a header's tensor records, into columns (format.records.RecordTable).

The header parser in ``container/reader.py`` reads a record a field at a time in Python
(about 6 us a record); a file may hold a million records. This kernel reads the same
fields in the same order into arrays, and checks each rule of FORMAT.md's Appendix B that
a record's own fields decide. It never raises: at the first record it cannot vouch for
(a broken rule, or a value it does not handle, such as an Offset of 2**62 or more) it
stops and returns that record's index, and the caller lets the Python parser read the
header and name the error. Names (UTF-8, duplicates) are the caller's.
"""

from __future__ import annotations

import numpy as np

from .config import kernel

#: Indices into the ``limits`` argument.
LIMIT_NAME_BYTES, LIMIT_RANK, LIMIT_ELEMENTS, LIMIT_CODEBOOK, LIMIT_GAP_MIN, LIMIT_GAP_MAX, LIMIT_GROUP_TABLE = range(7)

#: Values of u64 fields at or above this are left to the Python parser (int64 columns).
_BIG = 0x40  # top byte: 2**62


@kernel
def _u32(buf, pos):
    return (np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8) | (np.int64(buf[pos + 2]) << 16)
            | (np.int64(buf[pos + 3]) << 24))


@kernel
def _u64(buf, pos):
    """The u64 at ``pos``, or -1 if it is 2**62 or more."""
    if buf[pos + 7] >= _BIG:
        return np.int64(-1)
    value = np.int64(0)
    for k in range(7, -1, -1):
        value = (value << 8) | np.int64(buf[pos + k])
    return value


@kernel
def scan_tensor_records(buf, pos, count, limits, dtype_sizes, codec_roles, features, grouped_dtypes,
                        plane_counts, bank_dtypes, bank_kernel_ranks, bank_kernels, bank_units,
                        name_start, name_length, dtype, rank, dim_start, dims, layout, value_kind,
                        gap_bits, entry_count, codebook_size, bank_index, unit_size, group_size, scale_count,
                        offset_count, block_size, segment_start,
                        segment_count, segment_codec, segment_offset, segment_length, segment_checksum):
    """Scan ``count`` tensor records from ``buf[pos:]``.

    ``dtype_sizes[code]`` is a DType's size, 0 for an unknown code; ``codec_roles[code]``
    has bit 0 set if the codec may code a bytes segment (codebook, values), bit 1 a
    stream (gaps, codes, selectors), bit 2 if it is the AFFINE codec of a codebook, 8
    bytes, which needs bit 2 of ``features`` and, for CODEBOOK values, a dtype
    ``grouped_dtypes`` marks. Layout 0/1 is DENSE/SPARSE; Value_Kind 0/1/2 is
    RAW/CODEBOOK/BANK/GROUPED/PLANES (any later kind is left to the caller); GROUPED needs
    bit 0 of ``features`` (the file's Required_Features) and a dtype ``grouped_dtypes``
    marks, PLANES bit 1 and a dtype with ``plane_counts[code]`` planes (0: not a float).
    Segments go to the flat ``segment_*`` arrays in file order, record i's from
    ``segment_start[i]``; the caller sizes them for every segment the header can hold.
    Returns (records scanned, position after the last, segments written): fewer than
    ``count`` records means record number ``records scanned`` is left to the caller.
    """
    end = buf.shape[0]
    next_dim = np.int64(0)
    next_segment = np.int64(0)
    # a record's segment roles in order: 1 a bytes segment, 2 a stream; the Length it must
    # have (-1: a stream's, any)
    wants = np.empty(8, np.int64)
    expects = np.empty(8, np.int64)
    for i in range(count):
        if end - pos < 4:
            return i, pos, next_segment
        length = _u32(buf, pos)
        pos += 4
        if length > limits[LIMIT_NAME_BYTES] or end - pos < length:
            return i, pos, next_segment
        name_start[i] = pos
        name_length[i] = length
        pos += length

        if end - pos < 2:
            return i, pos, next_segment
        code = buf[pos]
        r = buf[pos + 1]
        pos += 2
        if code >= dtype_sizes.shape[0] or dtype_sizes[code] == 0 or r > limits[LIMIT_RANK] or end - pos < 8 * r:
            return i, pos, next_segment
        itemsize = dtype_sizes[code]
        dtype[i] = code
        rank[i] = r
        dim_start[i] = next_dim
        product = np.int64(1)
        zero = False
        for d in range(r):
            v = _u64(buf, pos)
            pos += 8
            if v < 0 or v > limits[LIMIT_ELEMENTS]:
                return i, pos, next_segment
            dims[next_dim + d] = v
            if v == 0:
                zero = True
            elif product > limits[LIMIT_ELEMENTS] // v:
                return i, pos, next_segment
            else:
                product *= v
        next_dim += r
        size = np.int64(0) if zero else product

        if end - pos < 2:
            return i, pos, next_segment
        lay = buf[pos]
        kind = buf[pos + 1]
        pos += 2
        if lay > 1 or kind > 4:
            return i, pos, next_segment
        layout[i] = lay
        value_kind[i] = kind
        gap_bits[i] = 0
        entry_count[i] = 0
        codebook_size[i] = 0
        bank_index[i] = 0
        group_size[i] = 0
        scale_count[i] = 0
        offset_count[i] = 0
        block_size[i] = 0
        unit = np.int64(1)
        if lay == 1:
            if end - pos < 9:
                return i, pos, next_segment
            g = buf[pos]
            entries = _u64(buf, pos + 1)
            pos += 9
            if g < limits[LIMIT_GAP_MIN] or g > limits[LIMIT_GAP_MAX] or entries < 0:
                return i, pos, next_segment
            gap_bits[i] = g
            entry_count[i] = entries
        if kind == 1:
            if end - pos < 4:
                return i, pos, next_segment
            k = _u32(buf, pos)
            pos += 4
            if k < 1 or k > limits[LIMIT_CODEBOOK]:
                return i, pos, next_segment
            codebook_size[i] = k
        elif kind == 2:
            if end - pos < 4:
                return i, pos, next_segment
            b = _u32(buf, pos)
            pos += 4
            if b >= bank_dtypes.shape[0] or bank_dtypes[b] != code:
                return i, pos, next_segment
            kr = bank_kernel_ranks[b]
            if r < kr:
                return i, pos, next_segment
            for d in range(kr):
                if dims[next_dim - kr + d] != bank_kernels[b, d]:
                    return i, pos, next_segment
            bank_index[i] = b
            unit = bank_units[b]
        elif kind == 3:
            if not (features & 1) or not grouped_dtypes[code] or end - pos < 20:
                return i, pos, next_segment
            k = _u32(buf, pos)
            groups = _u64(buf, pos + 4)
            ks = _u32(buf, pos + 12)
            ko = _u32(buf, pos + 16)
            pos += 20
            if k < 1 or k > limits[LIMIT_CODEBOOK] or groups < 1 or groups > limits[LIMIT_ELEMENTS]:
                return i, pos, next_segment
            if ks < 1 or ks > limits[LIMIT_GROUP_TABLE] or ko > limits[LIMIT_GROUP_TABLE] or (ko > 0 and lay == 1):
                return i, pos, next_segment
            codebook_size[i] = k
            group_size[i] = groups
            scale_count[i] = ks
            offset_count[i] = ko
        elif kind == 4:
            if not (features & 2) or plane_counts[code] == 0 or end - pos < 8:
                return i, pos, next_segment
            bs = _u64(buf, pos)
            pos += 8
            if bs < 1 or bs > limits[LIMIT_ELEMENTS]:
                return i, pos, next_segment
            block_size[i] = bs
        unit_size[i] = unit
        units = size // unit
        if lay == 1 and entry_count[i] > units:
            return i, pos, next_segment
        stored = units if lay == 0 else entry_count[i]

        if kind == 4:  # [gaps], then every plane of every block: streams of any length
            total = np.int64(lay) + (stored + block_size[i] - 1) // block_size[i] * plane_counts[code]
            if (end - pos) // 21 < total or next_segment + total > segment_codec.shape[0]:
                return i, pos, next_segment
            segment_start[i] = next_segment
            for n in range(next_segment, next_segment + total):
                codec = buf[pos]
                offset = _u64(buf, pos + 1)
                seg_length = _u64(buf, pos + 9)
                pos += 21
                if codec >= codec_roles.shape[0] or not (codec_roles[codec] & 2) or offset < 0 or seg_length < 0:
                    return i, pos, next_segment
                segment_codec[n] = codec
                segment_offset[n] = offset
                segment_length[n] = seg_length
                segment_checksum[n] = _u32(buf, pos - 4)
            segment_count[i] = total
            next_segment += total
            continue
        roles = 0
        # an AFFINE codebook (v1.3): the file's feature bit, a float32-rounded dtype
        affine = 4 if (features & 4) and (kind == 3 or grouped_dtypes[code]) else 0
        if kind == 1:  # codebook
            wants[0], expects[0], roles = 1 | affine, codebook_size[i] * itemsize, 1
        elif kind == 3:  # codebook, scales, scale codes, offsets, offset codes (tables in F32)
            wants[0], expects[0] = 1 | affine, 4 * codebook_size[i]
            wants[1], expects[1] = 1, 4 * np.int64(scale_count[i])
            wants[2], expects[2] = 2, -1
            wants[3], expects[3] = 1, 4 * np.int64(offset_count[i])
            wants[4], expects[4] = 2, -1 if offset_count[i] > 0 else 0
            roles = 5
        if lay == 1:  # gaps
            wants[roles], expects[roles] = 2, -1
            roles += 1
        if kind == 0:  # values
            wants[roles], expects[roles] = 1, stored * itemsize
        else:  # codes or selectors
            wants[roles], expects[roles] = 2, -1
        roles += 1
        segment_start[i] = next_segment
        n = next_segment
        for role in range(roles):
            if end - pos < 21 or n >= segment_codec.shape[0]:
                return i, pos, next_segment
            codec = buf[pos]
            offset = _u64(buf, pos + 1)
            seg_length = _u64(buf, pos + 9)
            checksum = _u32(buf, pos + 17)
            pos += 21
            if codec >= codec_roles.shape[0] or not (codec_roles[codec] & wants[role]) or offset < 0 or seg_length < 0:
                return i, pos, next_segment
            if codec_roles[codec] & 4:
                if seg_length != 8:
                    return i, pos, next_segment
            elif expects[role] >= 0 and seg_length != expects[role]:
                return i, pos, next_segment
            segment_codec[n] = codec
            segment_offset[n] = offset
            segment_length[n] = seg_length
            segment_checksum[n] = checksum
            n += 1
        segment_count[i] = n - next_segment
        next_segment = n
    return count, pos, next_segment
