"""Hypothesis strategies for fuzzing dcformat files and the loaders that read them.

Valid inputs, with the oracle that says what they decode to:

- :func:`arrays`: numpy arrays of every dtype dcformat stores, special floats included;
- :func:`stream_codecs`, :func:`symbol_streams`, :func:`codebook_sizes`;
- :func:`encoded_tensors`: every layout x value-kind combination of
  :class:`~dcformat.EncodedTensor`; :func:`banks`: kernel banks;
- :func:`containers`: a :class:`ContainerSpec` (tensors, the banks they select from,
  metadata) ready for ``dcformat.save(spec.tensors, spec.metadata, banks=spec.banks)``;
- :func:`expected_tensors`, :func:`expected_banks`, :func:`expected_array`: the plain
  numpy decode of what was written, independent of dcformat's decoders
  (:func:`affine_entries`: an AFFINE codebook's float32 entries).

Invalid inputs: :func:`mutations` of a valid file (aimed with :func:`field_offsets`),
and :func:`refresh_checksums` to carry an edit past the CRC checks. Forward
compatibility: :func:`future_version` rewrites a valid file as a later minor version
(header extension, optional feature bits) that must decode the same.

Modules: :mod:`.elements` (dtypes, special values, arrays), :mod:`.strategies`
(codecs, encoded tensors, containers), :mod:`.expected` (the oracle), :mod:`.mutate`
(mutations). Needs ``hypothesis`` (``pip install dcformat[test]``). See ``README.md``
beside this file for a guide.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover
    raise ImportError("dcformat.testing needs hypothesis: pip install 'dcformat[test]'") from exc

from .elements import DTYPE_NAMES, WIRE_NUMPY_DTYPES, arrays, special_bit_patterns
from .expected import affine_entries, expected_array, expected_banks, expected_tensors
from .mutate import Field, field_offsets, future_version, mutations, refresh_checksums
from .strategies import (
    LAYOUTS,
    VALUE_KINDS,
    ContainerSpec,
    banks,
    codebook_sizes,
    containers,
    encoded_tensors,
    stream_codecs,
    symbol_streams,
)

__all__ = [
    "DTYPE_NAMES", "LAYOUTS", "VALUE_KINDS", "WIRE_NUMPY_DTYPES", "ContainerSpec",
    "arrays", "banks", "codebook_sizes", "containers", "encoded_tensors", "special_bit_patterns",
    "stream_codecs", "symbol_streams",
    "affine_entries", "expected_array", "expected_banks", "expected_tensors",
    "Field", "field_offsets", "future_version", "mutations", "refresh_checksums",
]
