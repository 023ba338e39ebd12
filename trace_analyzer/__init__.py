"""trace_analyzer: rebuild and check DICOM C-GET exchanges from pcap/pcapng captures.

>>> import trace_analyzer
>>> analysis = trace_analyzer.analyze("retrieve.pcap")
>>> analysis.operations  # one row per C-GET, a pandas DataFrame
"""

from .analysis import Analysis, CaptureAnalyzer, analyze
from .capture import CaptureError
from .primitives import C_CANCEL, C_GET, C_STORE
from .tables import TABLES

__all__ = ["Analysis", "C_CANCEL", "C_GET", "C_STORE", "CaptureAnalyzer", "CaptureError", "TABLES", "analyze"]
__version__ = "0.1.0"
