"""Text from outside (backup files, Vault's answers) made safe to show in a terminal or a log.

A backup file or a Vault server can hold any text: escape sequences that repaint a
terminal, a carriage return that hides the start of a line, a right-to-left override,
or a megabyte of it. :func:`safe_text` escapes every control and format character the
way Python's ``repr`` would (``\\x1b``, ``\\n``, ``\\u202e``) and cuts the text to a bound,
so what an operator reads is what the text is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

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


def closest(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate most like ``word`` (difflib's ratio at least ``cutoff``), or None; never ``word`` itself.

    For names only (secret names, field names, setting keys): a value is never a candidate.
    """
    if not isinstance(word, str):
        return None
    import difflib  # only a message that is already being written needs it

    options = [c for c in candidates if isinstance(c, str) and c != word]
    found = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'flask'?`` (with its leading space) for the closest candidate, or ``""``."""
    found = closest(word, candidates)
    return f" Did you mean {safe_repr(found)}?" if found is not None else ""
