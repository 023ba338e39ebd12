"""The pipeline: captures in, an :class:`Analysis` out.

Wires the layers together: capture records -> TCP segments -> reassembled
streams -> association sessions (PDUs, DIMSE messages) -> primitives ->
C-GET correlation, with the rules engine told of every event. This module and
:mod:`.capture` are the only places that know about files;
:class:`CaptureAnalyzer` itself takes records from any source, so a live
packet feed can drive it the same way. When the records come from a capture
file's buffer, its :class:`~trace_analyzer.lane.BulkLane` counts the middle
of C-STORE data sets there and hands the counts to the layers (see lane.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

from .association import AssociationRecord, AssociationSession, Problem
from .capture import CaptureError, CaptureRecord, iter_records
from .dimse import DimseMessage
from .lane import BulkLane, LaneFlow
from .operations import Correlator, Operation, SubOperation
from .packets import Skip, decode_tcp
from .primitives import C_CANCEL, C_GET, C_STORE, primitive_from_message
from .rules import Finding, RulesEngine
from .tcp import ConnectionClosed, ConnectionOpened, StreamData, StreamGap, TcpReassembler

if TYPE_CHECKING:
    import pandas


@dataclass(slots=True)
class CaptureSummary:
    capture: str
    frames: int = 0
    bytes: int = 0
    tcp_frames: int = 0
    skipped_frames: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    dicom_connections: int = 0
    first_time: float | None = None
    last_time: float | None = None
    error: str | None = None  # the file could not be read at all


class CaptureAnalyzer:
    """Analyse one capture, fed record by record. No I/O."""

    def __init__(self, capture: str, ports: Iterable[int] = (),
                 next_association_id: Callable[[], int] | None = None,
                 rule_levels: dict[str, str] | None = None, fast_lane: bool = True) -> None:
        self.capture = capture
        self.ports = frozenset(ports)
        self.summary = CaptureSummary(capture)
        self.associations: list[AssociationRecord] = []
        self.messages: list[C_GET | C_STORE | C_CANCEL] = []
        self.other_messages: list[DimseMessage] = []  # C-ECHO, C-FIND ...: counted in the messages table
        self.problems: list[Problem] = []
        self.correlator = Correlator()
        self.rules = RulesEngine(rule_levels)
        self.correlator.observer = self.rules
        self._tcp = TcpReassembler()
        self._tcp.on_data = self._stream_data
        self._sessions: dict[int, AssociationSession] = {}
        if next_association_id is None:
            counter = iter(range(1, 1 << 62))
            next_association_id = counter.__next__
        self._next_id = next_association_id
        #: Counts bulk data straight from the capture reader's buffer (see lane.py); a
        #: record source that does not hand it buffers simply never lets it run.
        self.lane: BulkLane | None = BulkLane() if fast_lane else None
        if self.lane is not None:
            self.lane.on_flush = self._lane_flush
            self.lane.on_records = self._lane_records
        self._bulk_candidate: tuple[AssociationSession, str] | None = None
        self.lane_records = 0  # records the lane counted (for benchmarks and tests)
        self.on_progress: Callable[[int], None] | None = None

    def problem(self, frame: int, time: float, code: str, detail: str) -> None:
        self.problems.append(Problem(self.capture, frame, time, None, code, detail))

    def feed(self, record: CaptureRecord) -> None:
        self.feed_frame(record.frame, record.time, record.linktype, record.data)

    def feed_frame(self, frame: int, time: float, linktype: int, data: bytes) -> None:
        """One captured frame (the hot path: runs for every packet)."""
        summary = self.summary
        summary.frames += 1
        summary.bytes += len(data)
        if summary.first_time is None:
            summary.first_time = time
        summary.last_time = time
        try:
            segment = decode_tcp(linktype, data)
        except Skip as skip:
            reason = str(skip)
            summary.skipped_frames[reason] = summary.skipped_frames.get(reason, 0) + 1
            return
        summary.tcp_frames += 1
        lane = self.lane
        if lane is not None and lane.flows:
            lane.forget(segment.src, segment.dst)
        for event in self._tcp.feed(segment, frame, time):
            self._tcp_event(event)
        if self._bulk_candidate is not None:
            self._arm_lane(data)

    # -- the fast lane ---------------------------------------------------------------

    def _arm_lane(self, data: bytes) -> None:
        session, src = self._bulk_candidate
        self._bulk_candidate = None
        run = session.bulk_run(src)
        if run is None:
            return
        dst = session.peer_of(src)
        seq = self._tcp.next_sequence(src, dst)
        if seq is not None:
            self.lane.arm(data, (src, dst), seq, run[0], run[1], (session, src, dst))

    def _lane_flush(self, flow: LaneFlow) -> None:
        session, src, dst = flow.owner
        self._tcp.advance(src, dst, flow.count, flow.frame, flow.time, flow.ack_frame, flow.ack_time)
        if flow.count:
            session.skip_run(src, flow.count, flow.whole, flow.first_frame, flow.run_frame, flow.run_time,
                             flow.size, flow.header)

    def _lane_records(self, records: int, captured: int, time: float, consumed: int) -> None:
        self.lane_records += records
        summary = self.summary
        summary.frames += records
        summary.tcp_frames += records
        summary.bytes += captured
        summary.last_time = time
        if self.on_progress is not None:
            self.on_progress(consumed)

    def finish(self) -> None:
        if self.lane is not None:
            self.lane.clear()
        frame = self.summary.frames
        time = self.summary.last_time or 0.0
        for event in self._tcp.close(frame, time):
            self._tcp_event(event)
        self.correlator.finish()
        for finding in self.rules.unjudged:
            count = self.rules.unjudged_count(finding)
            self.problems.append(Problem(
                finding.capture, finding.frame or 0, finding.time or 0.0, finding.association,
                "CAPTURE-UNJUDGED",
                f"{finding.rule} not judged against the {finding.peer_side or 'unknown side'} "
                f"({count} time(s) from frame {finding.frame}): the capture lost bytes of this "
                f"association before (frame {self.rules.lost_at(finding)}), and what this rule "
                f"would say may be in them; it would have said: {finding.detail}"))

    def _stream_data(self, conn: int, src: str, data: bytes, frame: int, time: float) -> None:
        """In-order bytes of a connection (the hot path)."""
        session = self._sessions.get(conn)
        if session is None:
            return
        if session.is_dicom:
            results = session.feed_data(src, data, frame, time)
            if results:
                self._outputs(results)
            if self.lane is not None and self.lane.ready and session.is_dicom:
                self._bulk_candidate = (session, src)
            return
        self._tcp_event(StreamData(conn, src, data, frame, time))

    def _tcp_event(self, event) -> None:
        if isinstance(event, (StreamData, StreamGap)):
            session = self._sessions.get(event.conn)
            if session is not None:
                was_dicom = session.is_dicom
                results = session.feed(event)
                if session.is_dicom and not was_dicom:
                    self.summary.dicom_connections += 1
                    self.associations.append(session.record)
                    self.correlator.open_association(session)
                elif session.is_dicom is False:
                    del self._sessions[event.conn]
                self._outputs(results)
        elif isinstance(event, ConnectionOpened):
            self.summary.connections += 1
            forced = any(endpoint.rsplit(":", 1)[1] in self._port_strings
                         for endpoint in (event.client, event.server))
            session = AssociationSession(
                self.capture, self._next_id, event.client, event.server, forced, event.saw_syn)
            session.observer = self.rules
            session.transport_holding = partial(self._tcp.holding, event.client, event.server)
            self._sessions[event.conn] = session
        elif isinstance(event, ConnectionClosed):
            session = self._sessions.pop(event.conn, None)
            if session is not None:
                self._outputs(session.close(event.frame, event.time, event.closer, event.closer_frame,
                                            event.closer_time))
                if session.is_dicom:
                    self.correlator.close_association(self.capture, session.record.association)
                    session.end(event.frame, event.time)

    @property
    def _port_strings(self) -> frozenset[str]:
        return frozenset(str(port) for port in self.ports)

    def _outputs(self, results: list) -> None:
        for result in results:
            if isinstance(result, Problem):
                self.problems.append(result)
                continue
            primitive = primitive_from_message(result)
            self.rules.message_event(result, primitive)
            if primitive is None:
                self.other_messages.append(result)
                continue
            self.messages.append(primitive)
            self.correlator.feed(primitive)


class Analysis:
    """Everything decoded from one or more captures.

    The tables are pandas DataFrames built on first use; the primitives
    (:class:`~trace_analyzer.primitives.C_GET` and the lighter C-STORE and
    C-CANCEL records) are in ``primitives``, in capture order.
    """

    def __init__(self, analyzers: list[CaptureAnalyzer], failures: list[CaptureSummary]) -> None:
        self.captures: list[CaptureSummary] = [a.summary for a in analyzers] + failures
        self.association_records: list[AssociationRecord] = [r for a in analyzers for r in a.associations]
        self.primitives: list[C_GET | C_STORE | C_CANCEL] = [m for a in analyzers for m in a.messages]
        self.other_messages: list[DimseMessage] = [m for a in analyzers for m in a.other_messages]
        self.operation_records: list[Operation] = [o for a in analyzers for o in a.correlator.operations]
        self.unlinked_stores: list[SubOperation] = [
            s for a in analyzers for s in a.correlator.unlinked_stores]
        self.problem_records: list[Problem] = [p for a in analyzers for p in a.problems]
        self.findings: list[Finding] = [f for a in analyzers for f in a.rules.findings]
        #: What loss-sensitive rules would have reported after the capture lost bytes of an
        #: association (rules.engine.LOSS_SENSITIVE): each a CAPTURE-UNJUDGED problem too.
        self.unjudged: list[Finding] = [f for a in analyzers for f in a.rules.unjudged]
        self._tables: dict[str, Any] = {}

    @property
    def errors(self) -> list[str]:
        """Captures that could not be read, one line each."""
        return [c.error for c in self.captures if c.error]

    @property
    def c_gets(self) -> list[C_GET]:
        return [m for m in self.primitives if isinstance(m, C_GET)]

    def table(self, name: str) -> pandas.DataFrame:
        if name not in self._tables:
            from . import tables

            self._tables[name] = tables.build(name, self)
        return self._tables[name]

    def rows(self, name: str) -> list[dict[str, Any]]:
        """A table as plain rows (no pandas needed)."""
        from . import tables

        return tables.rows(name, self)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        from . import tables

        return {name: tables.rows(name, self) for name in tables.TABLES}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def write_json(self, handle: TextIO) -> None:
        """Write what :meth:`to_json` returns, a row at a time: a large capture's
        tables are never all held in memory as rows and text at once."""
        from . import tables

        encode = json.JSONEncoder(allow_nan=False).encode  # one encoder, not one per row
        write = handle.write
        write("{")
        for index, name in enumerate(tables.TABLES):
            write(f'{", " if index else ""}{encode(name)}: [')
            separator = ""
            for row in tables.iter_rows(name, self):
                write(separator)
                write(encode(row))
                separator = ", "
            write("]")
        write("}")

    def __getattr__(self, name: str):
        from . import tables

        if name in tables.TABLES:
            return self.table(name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return (f"<Analysis captures={len(self.captures)} associations={len(self.association_records)} "
                f"c_gets={len(self.operation_records)} problems={len(self.problem_records)}>")


def analyze_capture(path: str, ports: Iterable[int] = (),
                    next_association_id: Callable[[], int] | None = None,
                    on_progress: Callable[[int], None] | None = None,
                    rule_levels: dict[str, str] | None = None, fast_lane: bool = True) -> CaptureAnalyzer:
    """Read and analyse one capture file. Raises CaptureError if it cannot be opened.

    ``fast_lane=False`` sends every record down the layer-by-layer path (the
    results are the same; tests compare the two)."""
    analyzer = CaptureAnalyzer(path, ports, next_association_id, rule_levels, fast_lane)

    def problem(frame: int, text: str) -> None:
        analyzer.problem(frame, analyzer.summary.last_time or 0.0, "CAPTURE-TRUNCATED", text)

    feed = analyzer.feed_frame
    analyzer.on_progress = on_progress
    if on_progress is None:
        for frame, time, linktype, data, _ in iter_records(path, problem, analyzer.lane):
            feed(frame, time, linktype, data)
    else:
        for frame, time, linktype, data, _ in iter_records(path, problem, analyzer.lane):
            feed(frame, time, linktype, data)
            on_progress(len(data) + 16)
    analyzer.finish()
    return analyzer


def analyze(paths: str | Iterable[str], ports: Iterable[int] | None = None,
            on_progress: Callable[[int], None] | None = None,
            rules: dict[str, str] | None = None, fast_lane: bool = True) -> Analysis:
    """Analyse one or more capture files.

    ``ports`` forces DICOM decoding on those TCP ports (DICOM is otherwise
    detected on any port). ``rules`` sets rule levels by ID
    (``{"GET-RSP-008": "warning", "GET-RSP-022": "off"}``). A file that
    cannot be read is reported in ``Analysis.errors`` and the others are
    still analysed.
    """
    if isinstance(paths, str):
        paths = [paths]
    counter = iter(range(1, 1 << 62))
    analyzers, failures = [], []
    for path in paths:
        path = str(path)
        try:
            analyzers.append(analyze_capture(path, ports or (), counter.__next__, on_progress, rules,
                                             fast_lane))
        except CaptureError as exc:
            failures.append(CaptureSummary(path, error=str(exc)))
    return Analysis(analyzers, failures)
