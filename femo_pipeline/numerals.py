"""Reading whole numbers from text that may be hostile (HTTP headers, run tags, command lines, cursors).

`str.isdigit()` is true for characters `int()` cannot read ('²', '①'), so a check with it followed by `int()`
can still raise; `whole_number` accepts ASCII decimal digits only and answers None for anything else.
"""

from __future__ import annotations

MAX_DIGITS = 18


def whole_number(value: object) -> int | None:
    """The int an ASCII string of decimal digits spells ('007' -> 7); None for anything else (signs, spaces,
    superscripts, other scripts' digits, the empty string, non-strings) and for more than MAX_DIGITS significant
    digits, which no header, tag or count here needs (int() refuses over 4,300 digits, and a 64-bit column 19)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value.lstrip("0")) <= MAX_DIGITS:
        return int(value)
    return None
