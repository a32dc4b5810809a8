"""Text from users and model files as the dashboard and the CLI show it: bidirectional-control
characters written out, so none can reorder the text around it."""

from __future__ import annotations

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_ESCAPED = {ord(c): f"\\u{ord(c):04x}" for c in BIDI_CONTROLS}


def shown(text: str) -> str:
    """`text` with every bidirectional-control character (U+202E RIGHT-TO-LEFT OVERRIDE and its kin)
    written as its escape, `\\u202e`: left in, one reverses what follows it ("19 times" reads "semit 91")."""
    return text.translate(_ESCAPED)
