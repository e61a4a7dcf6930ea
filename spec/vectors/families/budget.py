"""The decode budget (R33): the default, max(256 MiB, 1024 x file size), shared by every record."""

from __future__ import annotations

import numpy as np

from .bases import base_huge_sparse, empty_sparse, reshaped
from .common import write_file
from .registry import invalid


invalid("decode-budget-huge-sparse", "R33", "DecodeLimitExceeded",
        "A SPARSE F32 tensor of 2^40 elements (4 TiB decoded) with no entries, in a file of a few hundred "
        "bytes: refused before allocating.", lambda: base_huge_sparse((1 << 40,), "F32"))
invalid("decode-budget-2-48-elements", "R33", "DecodeLimitExceeded",
        "A SPARSE U8 tensor of shape (2^24, 2^24): N = 2^48 exactly, within the element limit, "
        "far over the decode budget.", lambda: base_huge_sparse((1 << 24, 1 << 24)))
invalid("decode-budget-cumulative", "R33", "DecodeLimitExceeded",
        "Two SPARSE U8 tensors without entries, of 160 MiB and 100 MiB: each within the 256 MiB default "
        "budget, together over it (the budget is per file).",
        lambda: reshaped(write_file({"first": empty_sparse("U8", 1), "second": empty_sparse("U8", 1)}),
                         tensors={"first": (160 << 20,), "second": (100 << 20,)}))
invalid("decode-budget-unused-bank", "R33", "DecodeLimitExceeded",
        "A bank of 65536 kernels of 2^24 U8 elements (1 TiB decoded), SPARSE without entries, that no "
        "tensor selects: reading the whole file decodes every bank, within the budget.",
        lambda: reshaped(write_file({"t": np.array([1], np.uint8)}, banks={"huge": empty_sparse("U8", 2)}),
                         banks={"huge": (65536, 1 << 24)}))
