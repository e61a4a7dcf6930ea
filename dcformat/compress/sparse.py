"""Relative indices (Deep Compression stage 1, storage): positions <-> gaps with fillers.

The layout and its builder live in :mod:`dcformat.encodings.sparse`, below every writer
that needs them (the pipeline, the converters, the training export); the names are
kept here for the pipeline's users.
"""

from __future__ import annotations

from ..encodings.sparse import GapStream, gaps_to_positions, positions_to_gaps

__all__ = ["GapStream", "positions_to_gaps", "gaps_to_positions"]
