"""Text from outside (backup files, Vault's answers) made safe to show in a terminal or a log.

A backup file or a Vault server can hold any text: escape sequences that repaint a
terminal, a carriage return that hides the start of a line, a right-to-left override,
or a megabyte of it. :func:`safe_text` escapes every control and format character the
way Python's ``repr`` would (``\\x1b``, ``\\n``, ``\\u202e``) and cuts the text to a bound,
so what an operator reads is what the text is.
"""

from __future__ import annotations

import unicodedata

#: Longest text shown from a file or an answer (characters, before escaping).
DEFAULT_LIMIT = 200

#: Control (Cc), format (Cf: bidi overrides, zero-width), separators that break lines, surrogates.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_text(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` as one printable line: control characters escaped, at most ``limit`` characters kept.

    A longer text ends with ``…(+N more)``. Non-strings are shown with ``str``.
    """
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - limit if len(text) > limit else 0
    if cut:
        text = text[:limit]
    shown = "".join(map(_escape, text)) if not text.isprintable() else text
    return f"{shown}…(+{cut} more)" if cut else shown


def safe_repr(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """Like :func:`safe_text`, in quotes, for a name inside a sentence: ``'flask'``."""
    return f"'{safe_text(value, limit)}'"
