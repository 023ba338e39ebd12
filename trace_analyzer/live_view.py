"""The live terminal view of ``watch`` and ``proxy`` (rich's Live display), and their ending.

Layer: presentation. :class:`LiveView` reads a :class:`~trace_analyzer.analysis.CaptureAnalyzer`
while it is being fed (the feeder holds ``lock`` while it feeds, the view while it reads) and
renders the associations still open, the latest C-GETs and C-MOVEs with their counters as the
responses come, their sub-operations' outcomes, the latest C-FINDs and C-ECHOs with their
status, the latest non-success statuses of every service and every finding as it is raised,
with its frame. A C-MOVE's sub-operations come on another association (to its Move
Destination): at each refresh the linker (linking.py) runs over copies of the shown C-MOVEs and
of the C-STOREs no C-GET owns, so the view links them as the tables at the end will, without
touching what the analyzer holds. What it shows is bounded (the last rows of each), and it keeps
no state of its own but a few recent statuses and its last linking. :func:`finish` ends a live
session as ``analyze`` ends: summary and tables (or ``--format``/``--output``), ``--annotate``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .analysis import Analysis, CaptureAnalyzer
from .linking import SLACK, Linker, Retrieve
from .operations import Operation, SubOperation, sub_operation_category
from .primitives import C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE
from .safe_text import for_terminal
from .status import status_category, status_hex

#: Rows shown per section.
SHOWN = 8
#: Services whose responses carry a status the view lists when it is not a success.
_RESPONDING = (C_GET, C_MOVE, C_FIND, C_ECHO, C_STORE)


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
        #: The last linking of the shown C-MOVEs, and what it was made from (redone when that changed).
        self._linked: dict[int, Retrieve] = {}
        self._linked_from: tuple = ()

    def _scan(self) -> None:
        messages = self.analyzer.messages
        for message in messages[self._scanned:]:
            status = getattr(message, "Status", None)
            if isinstance(message, _RESPONDING) and not message.is_request and isinstance(status, int):
                category = status_category(status)
                if category not in ("Success", "Pending"):
                    self.statuses.append((message.frame, message.association, f"{message.msg_type}-RSP",
                                          status_hex(status), category))
        self._scanned = len(messages)

    def _link_moves(self, moves: list[Operation]) -> dict[int, Retrieve]:
        """The shown C-MOVEs linked to their sub-operations so far, by id() of the operation.

        The linker rebinds an operation's sub_operations and marks each C-STORE it links: it is
        given copies, so the analyzer's records stay as the correlators left them, for the
        linking at the end. Only C-STOREs and associations from the shown C-MOVEs' time on are
        given, and it runs again only when a message, an association or a closing came."""
        analyzer = self.analyzer
        correlator = analyzer.correlator
        # C-STOREs no C-GET owns: those of ended associations, and those still waiting on open
        # ones (the correlator keeps them per association until it ends).
        waiting = [sub for state in correlator._states.values() for sub in state.orphans]
        key = (len(analyzer.messages), len(analyzer.associations), len(correlator.unlinked_stores),
               len(waiting), tuple(id(m) for m in moves))
        if key == self._linked_from:
            return self._linked
        self._linked_from = key
        if not moves:
            self._linked = {}
            return self._linked
        since = min(_start(m) for m in moves) - SLACK
        linker = Linker()
        keys = {(m.capture, m.association) for m in moves}
        for record in analyzer.associations:
            if (record.capture, record.association) in keys or not record.closed or record.end_time >= since:
                linker.association(record)
        copies = {}
        for move in moves:
            copy = replace(move)
            copies[id(move)] = copy
            linker.move(copy)
        for sub in correlator.unlinked_stores + waiting:
            if sub.request is not None and sub.request.time >= since:
                linker.store(replace(sub))
        self._linked = {original: retrieve for original, retrieve in zip(
            copies, linker.finish()[:len(moves)], strict=True)}
        return self._linked

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
            all_operations = analyzer.correlator.operations
            retrieves = _latest(all_operations, ("C-GET", "C-MOVE"))
            linked = self._link_moves([o for o in retrieves if o.service == "C-MOVE"])
            op_rows = [_operation_cells(o, linked.get(id(o))) for o in retrieves]
            other_rows = [_other_cells(o) for o in _latest(all_operations, ("C-FIND", "C-ECHO"))]
            findings = [(f.frame, f.rule, f.severity, f.detail) for f in analyzer.rules.findings[-SHOWN:]]
            problems = [(p.frame, p.code, p.detail) for p in analyzer.problems[-4:]]
            counts = (summary.frames, summary.bytes, len(records), len(all_operations),
                      len(analyzer.rules.findings), len(analyzer.problems))
            association_rows = [
                (str(r.association), r.client, r.server, r.request.calling_ae if r.request else "?",
                 r.request.called_ae if r.request else "?", str(r.messages)) for r in open_ones]
        elapsed = time.monotonic() - self.started
        head = (f"{self.title}  {elapsed:.0f}s  frames {counts[0]}  bytes {counts[1]}  associations "
                f"{counts[2]}  operations {counts[3]}  findings {counts[4]}  problems {counts[5]}")
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
        # The status just before the counters: what the climbing numbers are read against.
        table("C-GETs and C-MOVEs", ("assoc", "service", "msg id", "destination", "status", "remaining",
                                     "completed", "failed", "warning", "sub-ops ok/warn/fail", "sub-ops on",
                                     "link", "request frame"), op_rows)
        if other_rows:
            table("C-FINDs and C-ECHOs", ("assoc", "service", "msg id", "status", "matches", "request frame"),
                  other_rows)
        table("Latest non-success statuses", ("frame", "assoc", "message", "status", "category"),
              list(self.statuses))
        table("Findings", ("frame", "rule", "severity", "detail"), findings)
        if problems:
            table("Problems", ("frame", "code", "detail"), problems)
        return Group(*parts)


def _latest(operations: list[Operation], services: tuple[str, ...]) -> list[Operation]:
    """The last SHOWN operations of these services, in the order they came."""
    found = []
    for operation in reversed(operations):
        if operation.service in services:
            found.append(operation)
            if len(found) == SHOWN:
                break
    return found[::-1]


def _start(operation: Operation) -> float:
    first = operation.request if operation.request is not None else operation.responses[0]
    return first.time


def _status_cell(operation: Operation) -> str:
    final = operation.final
    if final is not None:
        return f"{status_hex(final.Status)} {status_category(final.Status)}" if isinstance(
            final.Status, int) else "final"
    return "pending" if operation.responses else "requested"


def _operation_cells(operation: Operation, retrieve: Retrieve | None = None) -> tuple:
    """A C-GET's row, or a C-MOVE's: its sub-operations those the linker gave ``retrieve``."""
    last = operation.responses[-1] if operation.responses else None
    status = _status_cell(operation)
    subs: list[SubOperation] = operation.sub_operations
    destination = on = link = None
    if operation.service == "C-MOVE":
        request = operation.request
        destination = request.MoveDestination if request is not None else None
        subs = retrieve.sub_operations if retrieve is not None else []
        if retrieve is not None:
            on = " ".join(str(association) for _, association in retrieve.associations)
            link = retrieve.link
            if retrieve.ambiguous:
                link = f"{link or 'inferred'}, {len(retrieve.ambiguous)} ambiguous"
    outcome = {"Success": 0, "Warning": 0, "Failure": 0}
    for sub in subs:
        category = sub_operation_category(sub)
        if category in ("Success", "Warning"):
            outcome[category] += 1
        elif category is not None:
            outcome["Failure"] += 1
    counters = [getattr(last, name, None) if last is not None else None for name in (
        "NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
        "NumberOfWarningSuboperations")]
    return (operation.association, operation.service, operation.message_id, destination, status, *counters,
            f"{outcome['Success']}/{outcome['Warning']}/{outcome['Failure']}", on, link,
            operation.request.frame if operation.request else None)


def _other_cells(operation: Operation) -> tuple:
    """A C-FIND's or C-ECHO's row: its status, and for a C-FIND the matches so far (pending responses)."""
    matches = len(operation.pending_responses) if operation.service == "C-FIND" else None
    return (operation.association, operation.service, operation.message_id, _status_cell(operation),
            matches, operation.request.frame if operation.request else None)


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
