"""The configuration file ``trace-analyzer.toml``: read safely, validated, and said aloud.

A file in the working directory may come with a folder someone else delivered, so it is never
taken in silence: :meth:`Config.announcement` says which file was read and which rules it
changed, and the command line prints that on stderr, in ``check``'s output, in the JSON and in
the report. Only a regular file of at most :data:`MAX_BYTES` is read (a FIFO would block, a link
to ``/dev/zero`` would never end). ``--no-config`` or :data:`NO_CONFIG_ENV` set to a non-empty
value other than ``0`` ignores the working directory's file.

Exactly two tables are known: ``[rules]`` (rule ID = level, IDs and levels in any case) and
``[limits]``, passed through as a plain dict for the limits module to judge.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .limits import parse_limits
from .rules.engine import ConfigError, check_levels

CONFIG_FILE = "trace-analyzer.toml"
NO_CONFIG_ENV = "TRACE_ANALYZER_NO_CONFIG"
#: A configuration is a few lines; anything larger is not one.
MAX_BYTES = 1 << 20
TABLES = ("rules", "limits")


@dataclass
class Config:
    """What a configuration file said. ``path`` is None when no file was read."""

    path: str | None = None
    levels: dict[str, str] = field(default_factory=dict)
    #: Rule ID -> (catalog severity, level set here), for the rules whose level it changed.
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: The ``[limits]`` table as written (judged by the limits module).
    limits: dict[str, Any] = field(default_factory=dict)
    #: True when read from the working directory without being asked for.
    implicit: bool = False

    def changes_text(self) -> str:
        if not self.changed:
            return "changes no rule"
        return "changes " + ", ".join(f"{rule_id} {default} -> {level}"
                                      for rule_id, (default, level) in sorted(self.changed.items()))

    def announcement(self) -> str | None:
        """One line naming the file and what it changed, or None when none was read."""
        if self.path is None:
            return None
        where = " (from the working directory; --no-config ignores it)" if self.implicit else ""
        return f"configuration {self.path}{where}: {self.changes_text()}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "implicit": self.implicit,
                "rules_changed": {rule_id: {"default": default, "level": level}
                                  for rule_id, (default, level) in sorted(self.changed.items())},
                "limits": dict(self.limits)}


def ignored_by_environment() -> bool:
    return os.environ.get(NO_CONFIG_ENV, "").strip() not in ("", "0")


def _read(path: str) -> bytes:
    """A regular file's bytes, at most MAX_BYTES; never blocks on a FIFO or reads a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file; not read (--no-config ignores it)")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{path}: {info.st_size} bytes, more than a configuration "
                              f"({MAX_BYTES} at most); not read")
        data = os.read(fd, MAX_BYTES + 1)
        if len(data) > MAX_BYTES:  # grew while being read
            raise ConfigError(f"{path}: more than {MAX_BYTES} bytes; not read")
        return data
    finally:
        os.close(fd)


def parse_config(data: dict[str, Any], where: str = "configuration") -> tuple[dict[str, str], dict]:
    """The rule levels and the raw limits of a parsed TOML document. Raises ConfigError."""
    unknown = [key for key in data if key not in TABLES]
    if unknown:
        raise ConfigError(f"{where}: unknown table or key {unknown[0]!r} "
                          f"(a configuration has [rules] and [limits])")
    for name in TABLES:
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(f"{where}: {name!r} must be a table ([{name}])")
    levels = data.get("rules", {})
    bad = next((k for k, v in levels.items() if not isinstance(v, str)), None)
    if bad is not None:
        raise ConfigError(f"{where}: [rules] {bad}: a level must be a string "
                          f"(error, warning, info or off)")
    try:
        levels = check_levels(levels)
    except ConfigError as exc:
        raise ConfigError(f"{where}: [rules] {exc}") from None
    limits = dict(data.get("limits", {}))
    try:
        parse_limits(limits)  # judged here, so a bad limit is refused with the file's name
    except ConfigError as exc:
        raise ConfigError(f"{where}: [limits] {exc}") from None
    return levels, limits


def load_config(path: str | None = None, use_default: bool = True) -> Config:
    """The configuration in ``path``, or, without one, ``trace-analyzer.toml`` in the working
    directory if there is one (unless ``use_default`` is False or the environment says not to).
    Raises ConfigError with a one-line message."""
    from .rules import CATALOG

    implicit = path is None
    if implicit:
        if not use_default or ignored_by_environment() or not os.path.lexists(CONFIG_FILE):
            return Config()
        path = os.path.join(".", CONFIG_FILE)
    raw = _read(path)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    levels, limits = parse_config(data, path)
    changed = {rule_id: (CATALOG[rule_id].severity, level) for rule_id, level in levels.items()
               if level != CATALOG[rule_id].severity}
    return Config(path, levels, changed, limits, implicit)
