"""Kernels that split float bits into PLANES symbols and merge them back (FORMAT.md,
"PLANES values").

Values travel as unsigned integers of their element width (``dtypes.storage_view``). A
value of ``W`` bits has its exponent (``E`` bits above the ``M`` mantissa bits) as plane
0, and its sign and mantissa as ``t = sign << M | mantissa``, ``W - E`` bits cut into the
planes that follow from the top (``widths[1:]``). The decoder puts the exponent in place
through a value table and merges each mantissa plane in (:func:`merge`). Both directions
are bit-exact for every pattern: NaN payloads, -0.0, subnormals and infinities are just bits.
"""

from __future__ import annotations

import numpy as np

from .config import kernel


@kernel
def split(bits, total, exponent_bits, widths, out):
    """``out[k, i]`` = plane k's symbol of value ``bits[i]`` (``out`` is uint16, one row a plane)."""
    mantissa_bits = total - exponent_bits
    mantissa_bits -= 1  # M: the sign is t's top bit
    exponent_mask = np.uint64((1 << exponent_bits) - 1)
    mantissa_mask = np.uint64((1 << mantissa_bits) - 1)
    planes = widths.shape[0]
    shifts = np.zeros(8, np.uint64)  # each mantissa plane's lowest bit in t
    masks = np.zeros(8, np.uint64)
    shift = total - exponent_bits
    for k in range(1, planes):
        shift -= widths[k]
        shifts[k] = shift
        masks[k] = (1 << widths[k]) - 1
    for i in range(bits.shape[0]):
        x = np.uint64(bits[i])
        out[0, i] = np.uint16((x >> np.uint64(mantissa_bits)) & exponent_mask)
        t = ((x >> np.uint64(total - 1)) << np.uint64(mantissa_bits)) | (x & mantissa_mask)
        out[1, i] = np.uint16((t >> shifts[1]) & masks[1])
        if planes > 2:  # fixed for the whole call: the branch predicts
            out[2, i] = np.uint16((t >> shifts[2]) & masks[2])
            if planes > 3:
                for k in range(3, planes):
                    out[k, i] = np.uint16((t >> shifts[k]) & masks[k])


@kernel
def merge(out, symbols, shift, mantissa_bits, total):
    """``out[i] |=`` a mantissa plane's symbol ``symbols[i]``, the plane being bits
    ``[shift, shift + width)`` of ``t``: its bits below M go to the mantissa, t's top bit
    (the sign, in the first mantissa plane) to the element's top bit."""
    mask = np.uint64((1 << mantissa_bits) - 1)
    for i in range(out.shape[0]):
        z = np.uint64(symbols[i]) << np.uint64(shift)
        out[i] |= ((z >> np.uint64(mantissa_bits)) << np.uint64(total - 1)) | (z & mask)
