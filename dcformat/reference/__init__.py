"""The reference decoder: spec/FORMAT.md made executable (see :mod:`.decoder`).

Plain Python, written to be read next to the spec and to settle what a file means; it
is slow on purpose. Use :func:`dcformat.load_file` for real work.

>>> from dcformat.reference import decode_file
"""

from .decoder import DecodedFile, decode_file

__all__ = ["decode_file", "DecodedFile"]
