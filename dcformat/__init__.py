"""dcformat: a storage format and codec for Deep-Compression-style compressed networks.

The public API and nothing else: ``save``/``save_file``/``load``/``load_file`` for dicts
of numpy arrays, ``safe_open`` for lazy per-tensor access, the encoded-tensor types the
compression pipeline produces, and the error hierarchy.
"""

from . import errors
from .encodings.model import (
    AffineCodebook,
    BankValues,
    CodebookValues,
    Dense,
    EncodedTensor,
    GroupedValues,
    PlaneValues,
    RawValues,
    Sparse,
)
from .errors import DCFormatError, FormatError, UsageError
from .numpy import load, load_file, load_metadata, save, save_file
from .safe_open import safe_open

__version__ = "0.1.0"

# from_pretrained of a compressed model directory: registered with transformers when it loads
# its models (now, if it has), without importing it here
from .hf import install as _install_hf  # noqa: E402

_install_hf()

__all__ = [
    "save", "save_file", "load", "load_file", "load_metadata", "safe_open",
    "EncodedTensor", "Dense", "Sparse", "RawValues", "CodebookValues", "BankValues",
    "GroupedValues", "PlaneValues", "AffineCodebook",
    "errors", "DCFormatError", "FormatError", "UsageError", "__version__",
]
