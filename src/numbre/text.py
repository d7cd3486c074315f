"""How text that comes from outside (a model file's metadata, a file name) is shown: cut short,
on one line, and as valid UTF-8. Core: imports nothing of numbre, so every stage and front end can
use it."""

from __future__ import annotations

MAX_SHOWN = 200  # characters of a model's own text (a name, a class) an error message repeats


def clip_text(text: object, limit: int = MAX_SHOWN) -> str:
    """`text` as shown inside a message: at most `limit` characters, cut with an ellipsis.

    A model file's metadata is the file author's text; a 10 MB architecture name
    must not become a 10 MB error line.
    """
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_text(text: str) -> str:
    """`text` (a class name from a model file, a file name) safe on one line of a terminal or of
    tab-separated output: a backslash, tab, newline or carriage return becomes its backslash escape,
    any other control character (an ANSI escape's ESC, DEL, C1 codes, line separators) \\xHH or
    \\uHHHH, and a byte of a file name that is not UTF-8 (a lone surrogate from os.fsdecode) \\xHH.
    Backslashes are doubled, so the text maps back to the original."""
    out = []
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code < 0xE000 or code in (0x2028, 0x2029):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def utf8_text(text: str) -> str:
    """`text` as valid UTF-8 (JSON, Arrow strings): bytes of a file name that are not UTF-8 (kept
    by os.fsdecode as lone surrogates, which no UTF-8 reader accepts) become the text \\xHH."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
