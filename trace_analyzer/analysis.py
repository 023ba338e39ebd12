"""The pipeline: captures in, an :class:`Analysis` out.

Wires the layers together: capture records -> TCP segments -> reassembled
streams -> association sessions (PDUs, DIMSE messages) -> primitives ->
C-GET correlation, with the rules engine told of every event. This module and
:mod:`.capture` are the only places that know about files;
:class:`CaptureAnalyzer` itself takes records from any source, so a live
packet feed can drive it the same way. When the records come from a capture
file's buffer, its :class:`~trace_analyzer.lane.BulkLane` counts the middle
of C-STORE data sets there and hands the counts to the layers (see lane.py).

Inputs (files, directories, ``-``) are found here and grouped into capture sets
(see capture_sets.py: rotated files that continue each other); each set is fed,
file after file, into one :class:`CaptureAnalyzer` and gives a picklable
:class:`SetResult`, so sets can be analysed on local processes or Dask workers
and merged into one :class:`Analysis`.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

from .association import AssociationRecord, AssociationSession, Problem
from .capture import (
    STDIN,
    CaptureError,
    CaptureRecord,
    capture_kind,
    check_file,
    iter_records,
    sample,
    snap_length,
)
from .capture_sets import CaptureSet, FileFacts, group, note_segment
from .dimse import DimseMessage
from .lane import BulkLane, LaneFlow
from .limits import DEFAULT as DEFAULT_LIMITS
from .limits import INFLATION_CUT, Limits
from .limits import use as use_limits
from .linking import Retrieve, link
from .operations import Correlator, Operation, SubOperation
from .packets import Skip, decode_tcp
from .primitives import C_GET, Primitive, primitive_from_message
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
    #: The capture set the file belongs to (its own name when alone), and the frames of the
    #: set's files before it: frame f of this file is frame frame_offset + f of the set.
    capture_set: str | None = None
    frame_offset: int = 0


class SchedulerError(Exception):
    """The Dask scheduler asked for cannot be used (unreachable, or dask.distributed missing)."""


@dataclass(slots=True)
class SetResult:
    """What one capture set's analysis gives: plain records, picklable, so that a set can be
    analysed in another process or on a Dask worker and merged with the others."""

    name: str
    summaries: list[CaptureSummary]
    associations: list[AssociationRecord]
    messages: list[Primitive]
    other_messages: list[DimseMessage]
    operations: list[Operation]
    unlinked_stores: list[SubOperation]
    problems: list[Problem]
    findings: list[Finding]
    unjudged: list[Finding] = field(default_factory=list)


class CaptureAnalyzer:
    """Analyse one capture, or one capture set (files that continue each other), fed record
    by record. No I/O. The frames of a set are numbered on from one file to the next
    (:meth:`next_file`), so every layer carries on across a file boundary."""

    def __init__(self, capture: str, ports: Iterable[int] = (),
                 next_association_id: Callable[[], int] | None = None,
                 rule_levels: dict[str, str] | None = None, fast_lane: bool = True,
                 limits: Limits | None = None) -> None:
        self.capture = capture
        #: What a hostile capture can make it keep (see limits.py); also set for this process,
        #: for the identifiers decoded when first asked for.
        self.limits = limits = limits or DEFAULT_LIMITS
        use_limits(limits)
        #: Problems per (association, code), and [count, first frame, last problem] of those
        #: beyond limits.problems_per_code, summarised in one row each at the end.
        self._problem_counts: dict[tuple[int | None, str], int] = {}
        self._problems_over: dict[tuple[int | None, str], list] = {}
        #: Messages without a Command Field per association, and those not kept.
        self._empty_messages: dict[int, int] = {}
        self.ports = frozenset(ports)
        self.summary = CaptureSummary(capture, capture_set=capture)
        self.summaries = [self.summary]  # one per file of the set
        self.frame_offset = 0  # frames of the set's files before the current one
        self._file_named = False
        self.cut_frame = 0  # the frame of a record cut short at the current file's end, if any
        self.associations: list[AssociationRecord] = []
        self.messages: list[Primitive] = []
        self.other_messages: list[DimseMessage] = []  # N- services ...: counted in the messages table
        self.problems: list[Problem] = []
        self.correlator = Correlator()
        self.rules = RulesEngine(rule_levels, limits.problems_per_code)
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

    def next_file(self, capture: str) -> None:
        """The records that follow come from the set's next file, ``capture``: its frames are
        numbered on from the last file's, and it gets a summary of its own."""
        if self.lane is not None:
            self.lane.clear()  # its counts are flushed; the next file's buffer is another
        if self._file_named:
            # A record cut short at a file's end is reported at the frame it would have been:
            # the next file's frames start after it, so the report stays in the file it is about.
            self.frame_offset = max(self.frame_offset + self.summary.frames, self.cut_frame)
            self.summary = CaptureSummary(capture, capture_set=self.capture, frame_offset=self.frame_offset)
            self.summaries.append(self.summary)
        else:
            self.summary.capture = capture
        self._file_named = True

    def result(self) -> SetResult:
        return SetResult(self.capture, self.summaries, self.associations, self.messages, self.other_messages,
                         self.correlator.operations, self.correlator.unlinked_stores, self.problems,
                         self.rules.findings, self.rules.unjudged)

    def problem(self, frame: int, time: float, code: str, detail: str) -> None:
        self._add_problem(Problem(self.capture, frame, time, None, code, detail))

    def _add_problem(self, problem: Problem) -> None:
        """Kept up to limits.problems_per_code per association and code; the rest counted."""
        key = (problem.association, problem.code)
        count = self._problem_counts.get(key, 0) + 1
        self._problem_counts[key] = count
        if count <= self.limits.problems_per_code:
            self.problems.append(problem)
            return
        over = self._problems_over.get(key)
        if over is None:
            self._problems_over[key] = [1, problem.frame, problem]
        else:
            over[0] += 1
            over[2] = problem

    def _summarise_problems(self) -> None:
        """One LIMIT-PROBLEMS row per association and code that had more than the limit."""
        limit = self.limits.problems_per_code
        for (association, code), (count, first, last) in self._problems_over.items():
            where = f"association {association}" if association is not None else "the capture"
            self.problems.append(Problem(
                last.capture, last.frame, last.time, association, "LIMIT-PROBLEMS",
                f"{count} more {code} problem(s) in {where}, frames {first}-{last.frame}, not listed one "
                f"by one: the first {limit} are (limit problems-per-code={limit}); the last: {last.detail}"))
        self._problems_over.clear()

    def _check_limits(self, message: DimseMessage, primitive: Any) -> None:
        """Report values the tables will show cut (LIMIT-CELL) and identifiers not wholly
        inflated (LIMIT-INFLATED): the cold branch, for new command set shapes and identifiers."""
        cell = self.limits.cell_chars
        where = (message.capture, message.frame, message.time, message.association)
        for element in message.command.elements:
            value = element.value
            shown = len(value) if isinstance(value, str) else 2 * len(value) + 2 if isinstance(
                value, (bytes, bytearray)) else 0
            if shown > cell:
                self._add_problem(Problem(*where, "LIMIT-CELL",
                                          f"{message.name} element {element.keyword or element.tag_str} has "
                                          f"{shown} characters: the tables show the first {cell}, with its "
                                          f"length and digest (limit cell-chars={cell})"))
        if type(primitive) is not C_GET or primitive.Identifier is None:
            return
        dataset = primitive.identifier_dataset  # decoded once, kept on the primitive
        for text in primitive.problems:
            if INFLATION_CUT in text:
                self._add_problem(Problem(*where, "LIMIT-INFLATED", f"{message.name} {text}"))
        if dataset is not None and primitive.is_request:
            from .tables import identifier_summary

            summary = identifier_summary(primitive)[1] or ""
            if len(summary) > cell:
                self._add_problem(Problem(*where, "LIMIT-CELL",
                                          f"{message.name} identifier has {len(summary)} characters as "
                                          f"the tables show it: they show the first {cell}, with its length "
                                          f"and digest (limit cell-chars={cell})"))

    def _keep_empty(self, message: DimseMessage) -> bool:
        """A message without a Command Field carries nothing the tables can say but that it was
        there: up to limits.empty_messages are kept per association, the rest only counted."""
        association = message.association
        count = self._empty_messages.get(association, 0) + 1
        self._empty_messages[association] = count
        limit = self.limits.empty_messages
        if count == limit + 1:
            self._add_problem(Problem(
                message.capture, message.frame, message.time, association, "LIMIT-MESSAGES",
                f"more than {limit} messages without a Command Field in association {association}: from "
                f"this one on they are counted, not kept nor judged (limit empty-messages={limit}); the "
                "association's message count still has them"))
        return count <= limit

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
        frame = self.frame_offset + self.summary.frames
        time = self.summary.last_time or 0.0
        for event in self._tcp.close(frame, time):
            self._tcp_event(event)
        self.correlator.finish()
        for finding in self.rules.unjudged:
            count = self.rules.unjudged_count(finding)
            self._add_problem(Problem(
                finding.capture, finding.frame or 0, finding.time or 0.0, finding.association,
                "CAPTURE-UNJUDGED",
                f"{finding.rule} not judged against the {finding.peer_side or 'unknown side'} "
                f"({count} time(s) from frame {finding.frame}): the capture lost bytes of this "
                f"association before (frame {self.rules.lost_at(finding)}), and what this rule "
                f"would say may be in them; it would have said: {finding.detail}"))
        self._summarise_problems()
        self.rules.summarise()

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
                self._add_problem(result)
                continue
            primitive = primitive_from_message(result)
            if primitive is None and result.command.command_field is None and not self._keep_empty(result):
                continue  # beyond the limit: counted (association.messages), not kept nor judged again
            self.rules.message_event(result, primitive)
            # Only command sets of a shape not seen before, and identifiers, can be long.
            if result.command.layout is None or (type(primitive) is C_GET
                                                 and primitive.Identifier is not None):
                self._check_limits(result, primitive)
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

    def __init__(self, results: list[SetResult | CaptureAnalyzer], failures: list[CaptureSummary],
                 skipped: list[str] | None = None, rule_levels: dict[str, str] | None = None,
                 limits: Limits | None = None) -> None:
        #: The limits the tables apply (characters of a cell); see limits.py.
        self.limits = limits or DEFAULT_LIMITS
        sets = [r.result() if isinstance(r, CaptureAnalyzer) else r for r in results]
        for failure in failures:
            failure.capture_set = failure.capture_set or failure.capture
        self.capture_summaries: list[CaptureSummary] = [c for r in sets for c in r.summaries] + failures
        self.association_records: list[AssociationRecord] = [a for r in sets for a in r.associations]
        self.primitives: list[Primitive] = [m for r in sets for m in r.messages]
        self.other_messages: list[DimseMessage] = [m for r in sets for m in r.other_messages]
        self.operation_records: list[Operation] = [o for r in sets for o in r.operations]
        self.unlinked_stores: list[SubOperation] = [s for r in sets for s in r.unlinked_stores]
        self.problem_records: list[Problem] = [p for r in sets for p in r.problems]
        self.findings: list[Finding] = [f for r in sets for f in r.findings]
        #: What loss-sensitive rules would have reported after the capture lost bytes of an
        #: association (rules.engine.LOSS_SENSITIVE): each a CAPTURE-UNJUDGED problem too.
        self.unjudged: list[Finding] = [f for r in sets for f in r.unjudged]
        #: Files found in directories that are not captures (by their magic number): skipped.
        self.skipped: list[str] = list(skipped or [])
        #: Per capture set of several files: where each file's frames start in the set.
        self._files: dict[str, tuple[list[int], list[str]]] = {}
        for r in sets:
            if len(r.summaries) > 1:
                self._files[r.name] = ([c.frame_offset for c in r.summaries],
                                       [c.capture for c in r.summaries])
        self._tables: dict[str, Any] = {}
        #: The configuration file the command line read (config_file.Config), if it set one:
        #: written beside the tables in the JSON and named in the summary and the report.
        self.configuration: Any = None
        self._link(rule_levels)

    def _link(self, rule_levels: dict[str, str] | None) -> None:
        """Link each C-MOVE to its sub-operations on other associations (linking.py), across
        every capture set, and judge what only the linked whole shows (retrieve-level rules)."""
        from .rules import retrieve_findings

        #: One per C-MOVE, and per C-MOVE known only from its sub-operations' originator fields.
        self.retrieves: list[Retrieve] = link(self.association_records, self.operation_records,
                                              self.unlinked_stores)
        if not self.retrieves:
            return
        # A C-STORE linked to a C-MOVE is a sub-operation now, not a C-STORE outside any retrieve.
        self.unlinked_stores = [s for s in self.unlinked_stores if s.link is None]
        self.findings.extend(retrieve_findings(self, rule_levels or {}))

    @property
    def outside_retrieves(self) -> bool:
        """True when some messages are in no C-GET's rows: C-MOVE, C-FIND, C-ECHO, C-STORE
        outside any retrieve, N- services."""
        return bool(self.other_messages or self.unlinked_stores
                    or any(o.service != "C-GET" for o in self.operation_records))

    @property
    def capture_sets(self) -> list[str]:
        """The names of the capture sets, in the order analysed (by first packet time)."""
        return list(dict.fromkeys(c.capture_set for c in self.capture_summaries))

    def place(self, row: dict[str, Any], frame_columns: tuple[str, ...]) -> None:
        """Say in a row which capture set it is from, and which file and frame in it.

        The layers number a set's frames on from one file to the next; a row names the file
        of its first frame (``capture``) and gives its frames counted from that file's start,
        as Wireshark numbers them when the file is opened alone (a later frame of the same
        row beyond that file's count is in the set's next file(s))."""
        name = row.get("capture")
        if row.get("capture_set") is None:
            row["capture_set"] = name
        files = self._files.get(name)
        if files is None:
            return
        anchor = next((row[c] for c in frame_columns if row.get(c) is not None), None)
        if anchor is None:
            return
        offsets, paths = files
        index = max(bisect.bisect_left(offsets, anchor) - 1, 0)
        row["capture"] = paths[index]
        for column in frame_columns:
            if row.get(column) is not None:
                row[column] -= offsets[index]

    @property
    def errors(self) -> list[str]:
        """Captures that could not be read, one line each."""
        return [c.error for c in self.capture_summaries if c.error]

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

        data: dict[str, Any] = {name: tables.rows(name, self) for name in tables.TABLES}
        if self.configuration is not None:
            data["configuration"] = self.configuration.to_dict()
        return data

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
        if self.configuration is not None:
            write(f', "configuration": {encode(self.configuration.to_dict())}')
        write("}")

    def __getattr__(self, name: str):
        from . import tables

        if name in tables.TABLES:
            return self.table(name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        services: dict[str, int] = {}
        for operation in self.operation_records:
            services[operation.service] = services.get(operation.service, 0) + 1
        others = "".join(f" {name.lower().replace('-', '_')}s={count}" for name, count in services.items()
                         if name != "C-GET")
        return (f"<Analysis captures={len(self.capture_summaries)} "
                f"associations={len(self.association_records)} c_gets={services.get('C-GET', 0)}{others} "
                f"problems={len(self.problem_records)}>")


def analyze_capture(path: str, ports: Iterable[int] = (),
                    next_association_id: Callable[[], int] | None = None,
                    on_progress: Callable[[int], None] | None = None,
                    rule_levels: dict[str, str] | None = None, fast_lane: bool = True,
                    limits: Limits | None = None) -> CaptureAnalyzer:
    """Read and analyse one capture file. Raises CaptureError if it cannot be opened.

    ``fast_lane=False`` sends every record down the layer-by-layer path (the
    results are the same; tests compare the two)."""
    analyzer = CaptureAnalyzer(path, ports, next_association_id, rule_levels, fast_lane, limits)
    _feed_file(analyzer, path, on_progress)
    analyzer.finish()
    return analyzer


def _feed_file(analyzer: CaptureAnalyzer, path: str, on_progress: Callable[[int], None] | None) -> None:
    """Every record of one file into ``analyzer``, numbered on from the frames before it."""

    def problem(frame: int, text: str) -> None:
        analyzer.cut_frame = max(analyzer.cut_frame, frame)
        analyzer.problem(frame, analyzer.summary.last_time or 0.0, "CAPTURE-TRUNCATED", text)

    feed = analyzer.feed_frame
    analyzer.on_progress = on_progress
    records = iter_records(path, problem, analyzer.lane, analyzer.frame_offset)
    if on_progress is None:
        for frame, time, linktype, data, _ in records:
            feed(frame, time, linktype, data)
    else:
        for frame, time, linktype, data, _ in records:
            feed(frame, time, linktype, data)
            on_progress(len(data) + 16)


# -- inputs and capture sets ------------------------------------------------------


def find_inputs(items: str | os.PathLike | Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """The capture files named by ``items`` (files, directories, ``-``), and the files found in
    directories that are not captures. A directory is walked recursively, in name order; a file
    in it is a capture when its magic number (once inflated, if gzipped) says pcap or pcapng.
    A file named directly is kept whatever it is: reading it reports what is wrong."""
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    found, skipped = [], []
    for item in items:
        item = os.fspath(item)
        if item == STDIN or not os.path.isdir(item):
            found.append(item)
            continue
        captures, others = [], []
        for folder, subfolders, names in os.walk(item):
            subfolders.sort()
            for name in sorted(names):
                path = os.path.join(folder, name)
                if os.path.isfile(path):  # not a FIFO or a device: reading one could block
                    (captures if capture_kind(path) else others).append(path)
        if captures:
            found.extend(captures)
            skipped.extend(others)
        else:
            found.append(item)  # reading it reports a directory without a capture
    return list(dict.fromkeys(found)), skipped


#: Records looked at, at each end of a file, to tell which files continue each other.
SAMPLE_RECORDS = 1000


def file_facts(path: str) -> FileFacts:
    """A quick look at one file for :func:`capture_sets.group`: its link type, snap length,
    time span, and, in its first and last records, where each TCP direction's sequence numbers
    start and end. Raises CaptureError when it cannot be read."""
    frames, head, tail = sample(path, SAMPLE_RECORDS)
    facts = FileFacts(path, frames=frames)
    if head:
        facts.first_time, facts.linktype = head[0][0], head[0][1]
        facts.last_time = tail[-1][0]
    for records, flows in ((head, facts.head), (tail, facts.tail)):
        for _, linktype, data in records:
            try:
                segment = decode_tcp(linktype, data)
            except Skip:
                continue
            note_segment(flows, segment.src, segment.dst, segment.seq, segment.expected_length,
                         segment.flags)
    facts.size, facts.snaplen = os.path.getsize(path), snap_length(path)
    return facts


def _facts_task(path: str) -> FileFacts | CaptureSummary:
    """The quick pass over one file as a task: its facts, or why it cannot be read."""
    try:
        return file_facts(path)
    except CaptureError as exc:
        return CaptureSummary(path, error=str(exc), capture_set=path)


def plan(paths: list[str], map_files: Callable[..., list] | None = None,
         ) -> tuple[list[CaptureSet], list[CaptureSummary]]:
    """The capture sets of these capture files (standard input is a set of its own, last),
    and the files that could not be read at all. ``map_files(function, paths)`` runs the
    quick pass over each file (in parallel runs, on the workers), results in order."""
    files = [path for path in paths if path != STDIN]
    passes = (map_files or _serial_map)(_facts_task, files)
    facts = [f for f in passes if isinstance(f, FileFacts)]
    failures = [f for f in passes if isinstance(f, CaptureSummary)]
    sets = group(facts)
    if len(files) < len(paths):
        sets.append(CaptureSet(STDIN, [STDIN]))
    return sets, failures


def _serial_map(function: Callable, items: list, *args) -> list:
    return [function(item, *args) for item in items]


def analyze_set(capture_set: CaptureSet, ports: Iterable[int] = (),
                on_progress: Callable[[int], None] | None = None,
                rules: dict[str, str] | None = None, fast_lane: bool = True,
                on_file_done: Callable[[int], None] | None = None,
                limits: Limits | None = None) -> SetResult:
    """Analyse one capture set: its files, in order, into one :class:`CaptureAnalyzer`, so
    TCP reassembly, associations and C-GET correlation carry on across file boundaries.
    A file that cannot be read is reported in its summary and the set goes on without it.
    ``on_file_done(c_gets)`` hears of each file done, with the C-GETs found so far in the set."""
    analyzer = CaptureAnalyzer(capture_set.name, ports, None, rules, fast_lane, limits)
    gaps = {}
    for gap in capture_set.gaps:
        gaps.setdefault(gap.after, []).append(gap)
    for path in capture_set.files:
        analyzer.next_file(path)
        try:
            _feed_file(analyzer, path, on_progress)
        except CaptureError as exc:
            analyzer.summary.error = str(exc)
            continue
        for gap in gaps.get(path, ()):
            frame = analyzer.summary.frame_offset + 1
            analyzer.problem(frame, analyzer.summary.first_time or 0.0, "CAPTURE-GAP", gap.text())
        if on_file_done is not None:
            operations = analyzer.correlator.operations
            on_file_done(sum(1 for operation in operations if operation.service == "C-GET"))
    analyzer.finish()
    return analyzer.result()


def _set_task(capture_set: CaptureSet, ports: tuple[int, ...], rules: dict[str, str] | None,
              fast_lane: bool, limits: Limits | None = None) -> SetResult:
    """One capture set as a task for a worker process or a Dask worker."""
    return analyze_set(capture_set, ports, None, rules, fast_lane, limits=limits)


def analyze(paths: str | os.PathLike | Iterable[str | os.PathLike], ports: Iterable[int] | None = None,
            on_progress: Callable[[int], None] | None = None,
            rules: dict[str, str] | None = None, fast_lane: bool = True, workers: int | None = None,
            scheduler: str | Any | None = None,
            on_set_done: Callable[[SetResult], None] | None = None,
            on_file_done: Callable[[int], None] | None = None, errors: str | None = None,
            limits: Limits | None = None) -> Analysis:
    """Analyse capture files, directories of them (recursively) and ``-`` (standard input).

    ``errors="raise"`` raises for a capture that cannot be read, as pandas and scapy do
    (:class:`FileNotFoundError`, :class:`IsADirectoryError`, :class:`PermissionError`, all of
    them :class:`~trace_analyzer.capture.CaptureError`, which a file that is not a capture
    raises); ``errors="collect"`` reports it in ``Analysis.errors`` and goes on with the
    others. The default raises for one path given alone and collects for a list of them.

    Files that continue each other (rotated captures) are one capture set, analysed as one
    capture; sets are independent, so ``workers=N`` analyses them on N local processes and
    ``scheduler`` (a Dask scheduler address such as ``"tcp://host:8786"``, or a
    ``distributed.Client``) on a Dask cluster whose workers can read the same paths. The
    results are the same whichever way they are run. ``ports`` forces DICOM decoding on
    those TCP ports (DICOM is otherwise detected on any port). ``rules`` sets rule levels by
    ID (``{"GET-RSP-008": "warning", "GET-RSP-022": "off"}``). A file that cannot be read is
    reported in ``Analysis.errors`` and the others are still analysed; files in directories
    that are not captures are listed in ``Analysis.skipped``. ``on_progress(bytes)`` hears of
    bytes read (in parallel runs, a set's bytes when it is done); ``on_set_done(result)`` of
    each capture set finished; ``on_file_done(c_gets)`` of each file of a set analysed here
    (not on a worker), with the C-GETs found so far in its set.
    """
    if errors is None:
        errors = "raise" if isinstance(paths, (str, os.PathLike)) else "collect"
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors={errors!r}: 'raise' or 'collect'")
    found, skipped = find_inputs(paths)
    ports = tuple(ports or ())
    bad_ports = [p for p in ports if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535]
    if bad_ports:
        raise ValueError(f"ports: a TCP port is 1 to 65535, not {bad_ports[0]!r}")
    if errors == "raise":
        for path in found:
            if path != STDIN:
                check_file(path)  # a missing file raises FileNotFoundError before any work
    results: dict[str, SetResult] = {}

    def done(result: SetResult, size: int | None) -> None:
        results[result.name] = result
        if size is not None and on_progress is not None:
            on_progress(size)
        if on_set_done is not None:
            on_set_done(result)

    with _runner(workers, scheduler, len(found)) as runner:
        sets, failures = plan(found, runner.map if runner is not None else None)
        local = [s for s in sets if s.files == [STDIN]]  # a stream is read here, as it arrives
        remote = [s for s in sets if s.files != [STDIN]]
        if runner is not None and (scheduler is not None or len(remote) > 1):
            for capture_set, result in runner.as_done(_set_task, remote, ports, rules, fast_lane, limits):
                done(result, capture_set.size)
        else:
            local = remote + local
        for capture_set in local:
            done(analyze_set(capture_set, ports, on_progress, rules, fast_lane, on_file_done, limits), None)
    analysis = Analysis([results[s.name] for s in sets], failures, skipped, rules, limits)
    if errors == "raise" and analysis.errors:
        raise CaptureError(analysis.errors[0])
    return analysis


class _Processes:
    """Tasks on local worker processes (concurrent.futures over multiprocessing)."""

    def __init__(self, workers: int) -> None:
        import concurrent.futures
        import multiprocessing

        self._futures = concurrent.futures
        # fork where there is one: workers start at once with what is imported here, and, unlike
        # spawn or forkserver, never re-run the caller's script (one without a __main__ guard
        # would start the analysis over in every worker).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)

    def map(self, function: Callable, items: list, *args) -> list:
        return [f.result() for f in [self.pool.submit(function, item, *args) for item in items]]

    def as_done(self, function: Callable, items: list, *args) -> Iterator[tuple[Any, Any]]:
        futures = {self.pool.submit(function, item, *args): item for item in items}
        for future in self._futures.as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class _Dask:
    """Tasks on a Dask distributed cluster, through a real ``distributed.Client``."""

    def __init__(self, scheduler: str | Any) -> None:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise SchedulerError("a Dask scheduler needs dask.distributed "
                                 "(pip install 'dask[distributed]')") from None
        self._as_completed = as_completed
        self.own = not isinstance(scheduler, Client)
        if self.own and not re.fullmatch(r"([a-z]+://)?(\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):\d+",
                                         str(scheduler)):
            # Checked here: a Client given a malformed address hangs for a minute on the way out.
            raise SchedulerError(f"{scheduler}: not a Dask scheduler address (such as tcp://HOST:8786)")
        try:
            self.client = Client(scheduler, set_as_default=False) if self.own else scheduler
        except (OSError, ValueError) as exc:  # unreachable (a timeout is an OSError), or not an address
            raise SchedulerError(f"{scheduler}: cannot use this Dask scheduler ({exc})") from None

    def map(self, function: Callable, items: list, *args) -> list:
        # pure=False: the same files named in another call are read again (they may have changed).
        futures = [self.client.submit(function, item, *args, pure=False) for item in items]
        return self.client.gather(futures)

    def as_done(self, function: Callable, items: list, *args) -> Iterator[tuple[Any, Any]]:
        futures = [self.client.submit(function, item, *args, pure=False) for item in items]
        by_key = {future.key: item for future, item in zip(futures, items, strict=True)}
        for future in self._as_completed(futures, loop=self.client.loop):
            yield by_key[future.key], future.result()

    def close(self) -> None:
        if self.own:
            self.client.close()


@contextlib.contextmanager
def _runner(workers: int | None, scheduler: str | Any | None, files: int) -> Iterator[Any]:
    """Where tasks run: a Dask cluster, local processes, or None (here, one after another)."""
    if scheduler is not None:
        runner = _Dask(scheduler)
    elif workers is not None and workers > 1 and files > 1:
        runner = _Processes(min(workers, files))
    else:
        runner = None
    try:
        yield runner
    finally:
        if runner is not None:
            runner.close()
