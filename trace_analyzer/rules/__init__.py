"""Conformance rules for C-GET traffic: the catalog, the engine and the rule families.

Each family module (``cmd``, ``get_rq``, ``get_id``, ``get_rsp``, ``get_cnt``,
``get_sub``, ``get_can``, ``get_role``; the UL family in ``ul``, ``ul_associate``
and ``ul_pdv``) registers its checks with :func:`~trace_analyzer.rules.engine.rule`
when imported.
"""

from __future__ import annotations

import importlib

from .catalog import CATALOG, NOT_CHECKABLE, RuleInfo
from .engine import (
    IMPLEMENTED,
    LEVELS,
    ConfigError,
    Finding,
    RulesEngine,
    check_levels,
    judge_retrieves,
    not_checkable,
    parse_levels,
    retrieve_rule,
    rule,
)

FAMILIES = ("ul", "cmd", "get_rq", "get_id", "get_rsp", "get_cnt", "get_sub", "get_can", "get_role",
            "move_rq", "move_rsp", "move_cnt", "move_sub", "find")
#: The modules that register checks: one per family, the UL family in three.
MODULES = ("ul", "ul_associate", "ul_pdv", *FAMILIES[1:])
CONFIG_FILE = "trace-analyzer.toml"  # also config_file.CONFIG_FILE
_loaded = False


def load_families() -> None:
    """Import every family module once, so that its checks are registered."""
    global _loaded
    if _loaded:
        return
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    _loaded = True


def retrieve_findings(analysis, levels: dict[str, str]) -> list[Finding]:
    """The findings of the retrieve-level checks (C-MOVE with its linked sub-operations)."""
    load_families()
    return judge_retrieves(analysis.retrieves, analysis, levels)


def load_config(path: str | None = None) -> dict[str, str]:
    """Rule levels from a TOML file (``[rules]`` with ``"GET-RSP-008" = "warning"``); without
    ``path``, ``trace-analyzer.toml`` in the working directory if there is one. The whole
    configuration (path, changes, limits) is :func:`trace_analyzer.config_file.load_config`."""
    from ..config_file import load_config as load

    return load(path).levels


__all__ = ["CATALOG", "ConfigError", "FAMILIES", "Finding", "IMPLEMENTED", "LEVELS", "NOT_CHECKABLE",
           "RuleInfo", "RulesEngine", "check_levels", "load_config", "load_families", "not_checkable",
           "parse_levels", "retrieve_findings", "retrieve_rule", "rule"]
