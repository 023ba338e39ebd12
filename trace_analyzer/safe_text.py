"""Untrusted text made safe for the sink it goes to: terminal, HTML, CSV, plot labels.

Layer: presentation. Every string decoded from a capture (AE titles, UIDs,
implementation versions, error comments, identifier values) and every file
name is untrusted: a capture sent by another site can hold escape sequences
that drive the reader's terminal, markup that runs in a browser, or formulas
that a spreadsheet runs. This module is the one place that neutralises them;
every writer calls it. JSON and Parquet keep the exact values (programs read
them), except that bytes that were not valid text are given as hex (below).

Wire strings are decoded with ``surrogateescape``, so a byte that is not
ASCII survives as a lone surrogate (U+DC80-U+DCFF) and no byte is lost.
:func:`clean_row` turns those into text every sink can carry: a value that is
one wire string becomes its hex form (``0x4142ff``, the bytes as they were on
the wire, as bytes values already are); free text that quotes one (a finding's
detail, a file name) gets ``\\xff`` in place of the byte.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable
from typing import Any

from .limits import cut_text

# -- visible escapes ----------------------------------------------------------


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not text (surrogateescape): the byte itself
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str) -> str:
    """``text`` with every character that is not printable shown as an escape (``\\x1b``,
    ``\\u202e``): C0 and C1 controls, DEL, newline, tab, bidi overrides and other format
    characters, line separators, lone surrogates, unassigned code points, and spaces other
    than the ASCII one. What Python's :meth:`str.isprintable` accepts is left alone."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


# -- terminal -----------------------------------------------------------------


def for_terminal(value: Any) -> str:
    """One value for a terminal line: nothing in it can move the cursor, recolour or retitle
    the terminal, plant a hyperlink, break the line or reorder what is shown."""
    return visible(str(value))


def terminal_text(text: str) -> str:
    """Whole lines for a terminal: each line made safe, the line breaks kept."""
    if text.isprintable():
        return text
    return "\n".join(visible(line) for line in text.split("\n"))


def for_packet_comment(value: Any) -> str:
    """A pcapng packet comment (Wireshark's packet list and detail pane): one line, nothing
    that reorders or hides text, bytes that were not text shown as ``\\xNN``."""
    return visible(str(value))


# -- HTML ---------------------------------------------------------------------


def for_html(value: Any) -> str:
    """One value for HTML text or a quoted attribute: escaped (``& < > " '``), and what is
    not printable shown as an escape, so no bidi override or control reaches the page."""
    return html.escape(visible(str(value)), quote=True)


_CSS_CLASS = re.compile(r"[^a-z0-9-]+")


def css_class(value: Any) -> str:
    """A value as one CSS class name: lower case letters, digits and hyphens only."""
    return _CSS_CLASS.sub("-", str(value).lower())


def content_security_policy(style: str) -> str:
    """The report's policy: nothing is fetched, no script runs (inline or not, nor event
    handler attributes), images only from data: URIs, and only the report's own style
    sheet (``style``, allowed by its hash) applies."""
    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; script-src 'none'; object-src 'none'; img-src data:; "
            f"style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


# -- CSV ----------------------------------------------------------------------

#: What a spreadsheet takes as the start of a formula (also the full-width forms some accept).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def for_csv(value: Any) -> Any:
    """One CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``,
    which spreadsheets take as "this is text"; numbers (and text that is a plain number,
    such as ``-5``) are left alone, and so is everything else."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


# -- plots ----------------------------------------------------------------------


def for_plot(value: Any) -> str:
    """A value for a matplotlib title, label or legend entry: escaped as for a terminal,
    ``$`` escaped so it is never parsed as mathtext, and never starting with ``_`` (a label
    matplotlib would leave out of the legend)."""
    text = visible(str(value)).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


# -- values that were not valid text ----------------------------------------------

_SURROGATES = re.compile("[\ud800-\udfff]")


def has_raw_bytes(text: str) -> bool:
    """True when ``text`` holds a byte that was not valid text (or any lone surrogate)."""
    return not text.isascii() and _SURROGATES.search(text) is not None


def wire_value(text: str) -> str:
    """A wire string as text any sink can carry: itself when it was valid text, else the
    hex of the bytes it was decoded from (``0x4142ff``)."""
    if text.isascii() or not _SURROGATES.search(text):
        return text
    try:
        return "0x" + text.encode("utf-8", "surrogateescape").hex()
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("ascii")


def free_text(text: str) -> str:
    """Free text (a file name, a finding's detail) with each byte that was not valid text
    shown as ``\\xNN``, the rest kept as it is."""
    if text.isascii() or not _SURROGATES.search(text):
        return text
    return _SURROGATES.sub(lambda m: _escape_char(m.group()), text)


def display_path(path: str) -> str:
    """A file name as given on the command line, for any output: bytes that are not UTF-8
    shown as ``\\xNN`` (backslashreplace), never an encoding error."""
    return free_text(path)


#: Columns holding text around wire values, not one wire value: bytes shown as ``\xNN``.
FREE_TEXT_COLUMNS = frozenset({
    "capture", "capture_set", "error", "detail", "identifier", "title", "section", "reject", "abort", "roles",
    "proposed_transfer_syntaxes", "elements", "meaning", "status_meaning", "rules_broken",
    "candidate_get_message_ids", "linking", "sender", "client", "server", "address",
})


def clean_value(column: str, value: str) -> str:
    """One table cell's text made valid (see the module docstring)."""
    if column in FREE_TEXT_COLUMNS:
        return free_text(value)
    if column == "peer":  # "AE @ address": the AE title as in the peers table
        ae, separator, rest = value.rpartition(" @ ")
        if separator:
            return wire_value(ae) + separator + free_text(rest)
    return wire_value(value)


def clean_row(row: dict[str, Any], columns: Iterable[str] | None = None,
              cell_chars: int | None = None) -> dict[str, Any]:
    """A table row whose every text value is valid Unicode; cheap when it already is.
    ``columns``: the only columns that can hold text (all of them when not given).
    ``cell_chars``: a longer text is cut there, its length and digest said after it."""
    for column in row if columns is None else columns:
        value = row[column]
        if type(value) is str:
            if not value.isascii() and _SURROGATES.search(value):
                value = row[column] = clean_value(column, value)
            if cell_chars is not None and len(value) > cell_chars:
                row[column] = cut_text(value, cell_chars)
    return row


__all__ = ["FORMULA_STARTS", "clean_row", "clean_value", "content_security_policy", "css_class",
           "display_path", "for_csv", "for_html", "for_packet_comment", "for_plot", "for_terminal",
           "free_text",
           "has_raw_bytes", "terminal_text", "visible", "wire_value"]
