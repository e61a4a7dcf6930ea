"""The list of vectors: each family module registers its own when imported.

A valid vector's ``make()`` returns (file bytes, expected tensors, metadata); an invalid
one's returns the file bytes, which must be refused with ``error`` (a class of
``dcformat/errors.py``) for ``rule`` (FORMAT.md, Appendix B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Vector:
    name: str
    kind: str  # "valid" or "invalid"
    description: str
    make: Callable
    error: str = ""
    rule: str = ""


VECTORS: list[Vector] = []


def valid(name: str, description: str):
    """Register a valid vector: ``make()`` returns (file bytes, expected tensors, metadata)."""
    def register(make):
        VECTORS.append(Vector(name, "valid", description, make))
        return make
    return register


def invalid(name: str, rule: str, error: str, description: str, make: Callable) -> None:
    """Register an invalid vector: ``make()`` returns the file bytes."""
    VECTORS.append(Vector(name, "invalid", description, make, error, rule))


def order(name: str, rule: str, error: str, also: str, description: str, make: Callable[[], bytes]) -> None:
    """Register an ``order-*`` vector: it breaks ``rule`` and ``also``; Appendix B's "Order of
    checks" says ``rule`` is the one reported."""
    invalid(f"order-{name}", rule, error, f"{description} Also breaks {also}; {rule} comes first.", make)
