"""Limits on what a hostile capture can make the analysis keep (issue 15).

Each limit has a default that real traffic never reaches; a capture that reaches one is
cut there, and the cut is reported once as a problem (codes ``LIMIT-*``) that says what was
cut. Set them with ``--limit NAME=VALUE`` on ``analyze`` and ``check``, or in
``trace-analyzer.toml``::

    [limits]
    inflated-bytes = 16777216

Names may be written with ``-`` or ``_``. Values are whole numbers of at least 1; byte
limits also take a ``K``, ``M`` or ``G`` suffix (powers of 1024).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .rules.engine import ConfigError

CONFIG_FILE = "trace-analyzer.toml"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one analysis keeps at most."""

    #: Bytes inflated per deflated data set (an identifier is a few hundred bytes; a
    #: deflate bomb is gigabytes): the rest is not inflated (LIMIT-INFLATED).
    inflated_bytes: int = 4 * 1024 * 1024
    #: Characters of one value shown in a table cell; a longer one is shown cut, with its
    #: length and SHA-256 digest (LIMIT-CELL).
    cell_chars: int = 65536
    #: Problem rows of one code per association; the rest are counted in one summarising
    #: row per code (LIMIT-PROBLEMS).
    problems_per_code: int = 1000
    #: Messages per association that carry no information (a command set without a Command
    #: Field: empty, or undecodable) kept for the tables; the rest are counted (LIMIT-MESSAGES).
    empty_messages: int = 1000


DEFAULT = Limits()
#: Names as flags and the config file write them, and the fields they set.
NAMES = {f.name.replace("_", "-"): f.name for f in fields(Limits)}
_BYTE_LIMITS = frozenset({"inflated_bytes"})
_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _value(name: str, raw: Any, field: str) -> int:
    if isinstance(raw, bool):
        raise ConfigError(f"limit {name}: {raw!r} is not a whole number")
    if isinstance(raw, str):
        text = raw.strip().upper().replace("_", "")
        factor = 1
        if text[-1:] in _SUFFIXES and field in _BYTE_LIMITS:
            factor, text = _SUFFIXES[text[-1]], text[:-1]
        try:
            raw = int(text) * factor
        except ValueError:
            raise ConfigError(f"limit {name}: {raw!r} is not a whole number") from None
    if not isinstance(raw, int):
        raise ConfigError(f"limit {name}: {raw!r} is not a whole number")
    if raw < 1:
        raise ConfigError(f"limit {name}: {raw} is less than 1")
    return raw


def parse_limits(mapping: Mapping[str, Any], base: Limits = DEFAULT) -> Limits:
    """``base`` with the limits ``mapping`` names (``{"cell-chars": 1000}``) changed.

    Raises :class:`~trace_analyzer.rules.ConfigError` for an unknown name or a value that
    is not a whole number of at least 1."""
    changes = {}
    for key, raw in mapping.items():
        name = NAMES.get(str(key).replace("_", "-"))
        if name is None:
            raise ConfigError(f"unknown limit {key!r}; known: {', '.join(NAMES)}")
        changes[name] = _value(str(key), raw, name)
    return replace(base, **changes)


def parse_limit_flags(flags: list[str] | None, base: Limits = DEFAULT) -> Limits:
    """``--limit NAME=VALUE`` flags (repeatable) on top of ``base``."""
    mapping = {}
    for flag in flags or ():
        name, separator, value = flag.partition("=")
        if not separator or not name.strip():
            raise ConfigError(f"--limit {flag!r}: expected NAME=VALUE, e.g. cell-chars=4096")
        mapping[name.strip()] = value
    return parse_limits(mapping, base)


def load_limits(path: str | None = None) -> Limits:
    """The ``[limits]`` of a configuration file (default: ``trace-analyzer.toml`` in the
    working directory, if there is one), read as the rest of the configuration is."""
    from .config_file import load_config

    return parse_limits(load_config(path).limits)


# -- the limits in force in this process ------------------------------------------------

_active = DEFAULT


def use(limits: Limits) -> None:
    """Set the limits for decoding done outside an analyzer's reach (an identifier is inflated
    when first asked for, by the rules or the tables): process-wide, as config.py's switches."""
    global _active
    _active = limits


def active() -> Limits:
    return _active


#: In the problem a data set not wholly inflated gets (primitives.py), found by the pipeline.
INFLATION_CUT = "inflates to more than"


# -- shown cut ------------------------------------------------------------------------


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, then its full length and digest."""
    return f"{text[:limit]}… [cut: {len(text)} characters, sha256 {digest(text)}]"


__all__ = ["DEFAULT", "INFLATION_CUT", "Limits", "NAMES", "active", "cut_text", "load_limits",
           "parse_limit_flags", "parse_limits", "use"]
