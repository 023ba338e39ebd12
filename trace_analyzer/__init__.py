"""trace_analyzer: rebuild and check DICOM C-GET exchanges from pcap/pcapng captures.

>>> import trace_analyzer
>>> analysis = trace_analyzer.analyze("retrieve.pcap")
>>> analysis.operations  # one row per C-GET, a pandas DataFrame

The names below are imported on first use, so that ``import trace_analyzer.cli``
(the command line) does not pay for what it does not run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analysis import Analysis, CaptureAnalyzer, analyze
    from .annotate import write_annotated
    from .capture import CaptureError
    from .limits import Limits
    from .linking import Retrieve
    from .primitives import C_CANCEL, C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE
    from .tables import TABLES

_WHERE = {"Analysis": "analysis", "CaptureAnalyzer": "analysis", "analyze": "analysis",
          "CaptureError": "capture", "C_CANCEL": "primitives", "C_GET": "primitives",
          "C_STORE": "primitives", "C_MOVE": "primitives", "C_FIND": "primitives", "C_ECHO": "primitives",
          "Retrieve": "linking", "TABLES": "tables", "Limits": "limits", "write_annotated": "annotate"}

__all__ = ["Analysis", "C_CANCEL", "C_ECHO", "C_FIND", "C_GET", "C_MOVE", "C_STORE", "CaptureAnalyzer",
           "CaptureError", "Limits", "Retrieve", "TABLES", "analyze", "write_annotated"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'trace_analyzer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
