"""The live terminal view of ``watch`` and ``proxy`` (rich's Live display), and their ending.

Layer: presentation. :class:`LiveView` reads a :class:`~trace_analyzer.analysis.CaptureAnalyzer`
while it is being fed (the feeder holds ``lock`` while it feeds, the view while it reads) and
renders the associations still open, the latest C-GETs with their counters as the responses
come, their sub-operations' outcomes, the latest non-success statuses and every finding as it
is raised, with its frame. What it shows is bounded (the last rows of each), and it keeps no
state of its own but a few recent statuses. :func:`finish` ends a live session as ``analyze``
ends: summary and tables (or ``--format``/``--output``), ``--annotate``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .analysis import Analysis, CaptureAnalyzer
from .operations import sub_operation_category
from .primitives import C_GET, C_STORE
from .safe_text import for_terminal
from .status import status_category, status_hex

#: Rows shown per section.
SHOWN = 8


class LiveView:
    def __init__(self, analyzer: CaptureAnalyzer, lock: threading.Lock, title: str,
                 stats: Callable[[], str] | None = None, log: deque | None = None) -> None:
        self.analyzer = analyzer
        self.lock = lock
        self.title = title
        self.stats = stats
        self.log = log
        self.started = time.monotonic()
        self._scanned = 0  # messages looked at for non-success statuses
        self.statuses: deque[tuple] = deque(maxlen=SHOWN)

    def _scan(self) -> None:
        messages = self.analyzer.messages
        for message in messages[self._scanned:]:
            status = getattr(message, "Status", None)
            if isinstance(message, (C_GET, C_STORE)) and isinstance(status, int):
                category = status_category(status)
                if category not in ("Success", "Pending"):
                    service = "C-GET-RSP" if isinstance(message, C_GET) else "C-STORE-RSP"
                    self.statuses.append((message.frame, message.association, service, status_hex(status),
                                          category))
        self._scanned = len(messages)

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        with self.lock:
            self._scan()
            analyzer = self.analyzer
            summary = analyzer.summary
            records = analyzer.associations
            open_ones = [r for r in records if not r.closed][-SHOWN:]
            operations = analyzer.correlator.operations[-SHOWN:]
            op_rows = [_operation_cells(o) for o in operations]
            findings = [(f.frame, f.rule, f.severity, f.detail) for f in analyzer.rules.findings[-SHOWN:]]
            problems = [(p.frame, p.code, p.detail) for p in analyzer.problems[-4:]]
            counts = (summary.frames, summary.bytes, len(records), len(analyzer.correlator.operations),
                      len(analyzer.rules.findings), len(analyzer.problems))
            association_rows = [
                (str(r.association), r.client, r.server, r.request.calling_ae if r.request else "?",
                 r.request.called_ae if r.request else "?", str(r.messages)) for r in open_ones]
        elapsed = time.monotonic() - self.started
        head = (f"{self.title}  {elapsed:.0f}s  frames {counts[0]}  bytes {counts[1]}  associations "
                f"{counts[2]}  C-GETs {counts[3]}  findings {counts[4]}  problems {counts[5]}")
        if self.stats is not None:
            head += "  " + self.stats()
        parts = [Text(for_terminal(head), style="bold")]

        def table(title: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
            grid = Table(title=title, title_justify="left", expand=False, show_edge=False, pad_edge=False)
            for column in columns:
                wide = column in ("detail", "event")  # sentences: folded, the rest cut short
                grid.add_column(column, overflow="fold" if wide else "ellipsis",
                                max_width=120 if wide else 40)
            for row in rows:
                grid.add_row(*(for_terminal("" if cell is None else cell) for cell in row))
            parts.append(grid)

        if self.log:  # first: what the proxy or the capture tool said last, never cropped away
            table("Log", ("event",), [(line,) for line in list(self.log)[-3:]])
        table("Open associations", ("assoc", "client", "server", "calling", "called", "messages"),
              association_rows)
        table("C-GETs", ("assoc", "msg id", "status", "remaining", "completed", "failed", "warning",
                         "sub-ops ok/warn/fail", "request frame"), op_rows)
        table("Latest non-success statuses", ("frame", "assoc", "message", "status", "category"),
              list(self.statuses))
        table("Findings", ("frame", "rule", "severity", "detail"), findings)
        if problems:
            table("Problems", ("frame", "code", "detail"), problems)
        return Group(*parts)


def _operation_cells(operation) -> tuple:
    last = operation.responses[-1] if operation.responses else None
    final = operation.final
    if final is not None:
        status = f"{status_hex(final.Status)} {status_category(final.Status)}" if isinstance(
            final.Status, int) else "final"
    elif last is not None:
        status = "pending"
    else:
        status = "requested"
    outcome = {"Success": 0, "Warning": 0, "Failure": 0}
    for sub in operation.sub_operations:
        category = sub_operation_category(sub)
        if category in ("Success", "Warning"):
            outcome[category] += 1
        elif category is not None:
            outcome["Failure"] += 1
    counters = [getattr(last, name, None) if last is not None else None for name in (
        "NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
        "NumberOfWarningSuboperations")]
    return (operation.association, operation.message_id, status, *counters,
            f"{outcome['Success']}/{outcome['Warning']}/{outcome['Failure']}",
            operation.request.frame if operation.request else None)


def settings(args: argparse.Namespace) -> tuple[dict[str, str], Any]:
    """The rule levels and the limits as analyze takes them: the configuration file's (announced),
    then --rule and --limit on top."""
    from .cli import _configuration, _limits

    config, levels = _configuration(args)
    return levels, _limits(args, config)


def live_console():
    """A rich Console on the terminal (standard output, else standard error), or None when
    neither is one: the live view is then not drawn."""
    from rich.console import Console

    for stream in (sys.stdout, sys.stderr):
        if stream.isatty():
            return Console(file=stream)
    return None


def finish(analyzer: CaptureAnalyzer, args: argparse.Namespace,
           recorded: list[tuple[str, str]] | None = None) -> int:
    """End a live session as ``analyze`` ends; ``recorded`` (file, name in the tables) is what
    ``--annotate`` copies."""
    from .cli import _annotate, deliver

    analyzer.finish()
    analysis = Analysis([analyzer], [], rule_levels=analyzer.rules.levels, limits=analyzer.limits)
    if recorded:
        _annotate(analysis, args, recorded)
    status = deliver(analysis, args)
    return status
