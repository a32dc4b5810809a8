"""Words for people that every part of the backend and its fronts write the same way."""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """ "1 image", "2 images", "1,000 rows"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
