"""One DICOM association on one TCP connection.

Layer: association (Upper Layer state). An :class:`AssociationSession` is fed
the TCP events of one connection and gives back the DIMSE messages found in
it, each tagged with its association, sender and transfer syntax, and the
problems met on the way. It decides whether the connection carries DICOM at
all (an A-ASSOCIATE-RQ at the start of a direction, or mid-stream a P-DATA-TF
holding a command set), decodes the association set-up and tear-down, and
keeps the :class:`AssociationRecord` that the tables report. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .commandset import C_CANCEL_RQ, C_GET_RQ, C_STORE_RSP
from .dimse import DimseMessage, DimseProblem, MessageAssembler
from .pdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    MAX_ASSOCIATE_LENGTH,
    P_DATA_TF,
    Pdu,
    PduReader,
    PduRun,
    UlProblem,
    plausible_pdu_at,
    split_cut_pdvs,
    split_pdvs,
)
from .pdu_items import (
    Abort,
    AssociateParameters,
    AssociateReject,
    decode_abort,
    decode_associate,
    decode_reject,
)
from .tcp import StreamData, StreamGap

#: Bytes of a direction searched for a command PDV before the connection is
#: declared not DICOM (unless its port was forced).
DETECTION_BUDGET = 2 * 1024 * 1024

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"

REQUESTOR, ACCEPTOR = "requestor", "acceptor"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in the capture or the protocol, with where it was seen."""

    capture: str
    frame: int
    time: float
    association: int | None
    code: str
    detail: str


#: What negotiate_roles gives where PS3.7 D.3.3.4 does not say what the roles are.
UNDEFINED_ROLES = "undefined"


def negotiate_roles(proposed: tuple[int, int] | None,
                    answered: tuple[int, int] | None) -> tuple[bool, bool] | str:
    """(may the requestor be SCU, may it be SCP) for one abstract syntax, from the RQ's and the
    AC's (SCU-role, SCP-role) role selection items (PS3.7 D.3.3.4; catalog 3.2). The acceptor
    takes the opposite of each role the requestor takes.

    No item in the RQ, or none in the AC: the defaults (requestor SCU, acceptor SCP). Otherwise a
    role needs 1 in both (a 1 the RQ did not propose is ignored). UNDEFINED_ROLES where the
    standard is silent: a (1, 1) proposal answered (0, 0) (catalog 6.8). A (0, 1) or (1, 0) proposal answered
    (0, 0) is a plain refusal: the requestor takes no role for that class.
    """
    if proposed is None or answered is None:
        return True, False
    asked_scu, asked_scp = bool(proposed[0]), bool(proposed[1])
    given_scu, given_scp = bool(answered[0]), bool(answered[1])
    if asked_scu and asked_scp and not given_scu and not given_scp:
        return UNDEFINED_ROLES
    return asked_scu and given_scu, asked_scp and given_scp


@dataclass(slots=True)
class AssociationRecord:
    capture: str
    association: int
    client: str  # the requestor's "ip:port" when known, else the TCP client
    server: str
    request: AssociateParameters | None = None
    accept: AssociateParameters | None = None
    reject: AssociateReject | None = None
    abort: Abort | None = None
    abort_sender: str | None = None
    abort_frame: int | None = None
    abort_time: float | None = None
    release_requested: bool = False
    released: bool = False
    mid_stream: bool = False  # the capture began after the A-ASSOCIATE
    closed: bool = False
    #: The side ("requestor"/"acceptor") that closed the TCP connection first (FIN or RST), and
    #: the frame and time; None when the capture simply ended with the connection open.
    closed_by: str | None = None
    close_frame: int = 0
    close_time: float = 0.0
    start_time: float = 0.0
    end_time: float = 0.0
    first_frame: int = 0
    last_frame: int = 0
    pdus: int = 0
    messages: int = 0
    holes: int = 0  # bytes lost to the capture in either direction: how many CAPTURE-HOLEs
    #: Transfer syntax per presentation context ID, from the A-ASSOCIATE-AC.
    transfer_syntaxes: dict[int, str] = field(default_factory=dict)
    abstract_syntaxes: dict[int, str] = field(default_factory=dict)

    def role_items(self, abstract_syntax: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """(RQ (SCU, SCP) role item or None, AC (SCU, SCP) role item or None) for a class."""
        rq, ac = self.request, self.accept
        proposed = next(((r.scu_role, r.scp_role) for r in rq.roles if r.sop_class_uid == abstract_syntax),
                        None) if rq else None
        answered = next(((r.scu_role, r.scp_role) for r in ac.roles if r.sop_class_uid == abstract_syntax),
                        None) if ac else None
        return proposed, answered

    def roles(self, abstract_syntax: str) -> tuple[bool, bool] | str | None:
        """(requestor may be SCU, requestor may be SCP) as negotiated for that class (see
        negotiate_roles); None when the A-ASSOCIATE-RQ or -AC is not in the capture."""
        if self.request is None or self.accept is None:
            return None
        return negotiate_roles(*self.role_items(abstract_syntax))

    @property
    def outcome(self) -> str:
        if self.reject is not None:
            return "rejected"
        if self.abort is not None:
            # DCMTK's getscu completes the release and then sends an A-ABORT: both are said.
            return "released, then aborted" if self.released else "aborted"
        if self.released:
            return "released"
        if self.accept is not None and self.closed_by is not None:
            return "closed without release"  # a peer closed the transport (PS3.8 7.2, 9.1.4)
        # Accepted and still open; once the stream ends without a release it is incomplete.
        return "accepted" if self.accept is not None and not self.closed else "incomplete"


class _Side:
    __slots__ = ("endpoint", "reader", "assembler", "seen", "detect_bytes")

    def __init__(self, endpoint: str, reader: PduReader) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.assembler = MessageAssembler()
        self.seen = False
        self.detect_bytes = 0


class AssociationSession:
    """Follow one TCP connection; give back its DICOM messages."""

    def __init__(self, capture: str, next_id: Callable[[], int], client: str, server: str,
                 forced: bool = False, saw_syn: bool = False) -> None:
        self.record = AssociationRecord(capture, 0, client, server)
        self.capture = capture
        self._next_id = next_id
        #: None until the connection is known to carry DICOM; False once it is known not to.
        self.is_dicom: bool | None = None
        self._forced = forced
        #: Told of every UL event (a RulesEngine); see rules.engine.EVENTS.
        self.observer = None
        #: Set by the pipeline: True while the TCP layer holds this connection's bytes back
        #: behind a hole it has not yet given up (see capture_loss_possible).
        self.transport_holding: Callable[[], bool] | None = None
        self._saw_syn = saw_syn
        self._requestor: str | None = None
        self._sides: dict[str, _Side] = {}
        for endpoint in (client, server):
            self._sides[endpoint] = _Side(endpoint, PduReader(synced=False, require_command=not forced))

    # -- input ---------------------------------------------------------------

    def feed(self, event: StreamData | StreamGap) -> list[DimseMessage | Problem]:
        if self.is_dicom is False:
            return []
        side = self._sides.get(event.src)
        if side is None:
            return []
        out: list[DimseMessage | Problem] = []
        if isinstance(event, StreamGap):
            self._hole(side, event, out)
            return out
        return self._data(side, event.data, event.frame, event.time)

    def feed_data(self, src: str, data: bytes, frame: int, time: float) -> list[DimseMessage | Problem]:
        """In-order bytes from ``src`` (the hot path: most calls return nothing)."""
        side = self._sides.get(src)
        if side is None or self.is_dicom is False:
            return []
        if side.seen and self.is_dicom:
            results = side.reader.feed(data, frame, time)
            return self._results(side, results) if results else []
        return self._data(side, data, frame, time)

    def _data(self, side: _Side, data: bytes, frame: int, time: float) -> list[DimseMessage | Problem]:
        if not side.seen:
            side.seen = True
            self._look_at_start(side, data)
        results = side.reader.feed(data, frame, time)
        if self.is_dicom is None:
            if any(isinstance(r, Pdu) for r in results) or (self._forced and results):
                self._found_dicom(results)
            else:
                side.detect_bytes += len(data)
                sides = self._sides.values()
                if not self._forced and all(s.detect_bytes > DETECTION_BUDGET or not s.seen for s in sides):
                    self.is_dicom = False
                return []
        return self._results(side, results)

    def _results(self, side: _Side, results: list) -> list[DimseMessage | Problem]:
        out: list[DimseMessage | Problem] = []
        for result in results:
            if isinstance(result, UlProblem):
                out.append(self._problem(result.frame, result.time, result.code, result.detail,
                                         self._sender(side.endpoint) or None))
            else:
                self._pdu(side, result, out)
        keep = side.assembler.counting
        if keep is not None:
            side.reader.elide(keep)
        return out

    def close(self, frame: int, time: float, closer: str | None = None, closer_frame: int = 0,
              closer_time: float = 0.0) -> list[DimseMessage | Problem]:
        """The TCP connection ended; ``closer`` is the endpoint that closed it first, if one did."""
        out: list[DimseMessage | Problem] = []
        if not self.is_dicom:
            return out
        self.record.closed = True
        if closer is not None and self._sender(closer):
            record = self.record
            record.closed_by, record.close_frame, record.close_time = \
                self._sender(closer), closer_frame, closer_time
        for side in self._sides.values():
            pending = side.reader.pending
            if pending and side.reader.synced:
                awaited = side.reader.awaited
                claim = f" (its header announced {awaited} bytes)" if awaited else ""
                out.append(self._problem(frame, time, "CAPTURE-TRUNCATED",
                                         f"{pending} bytes of an unfinished PDU{claim} from {side.endpoint} "
                                         "when the stream ended"))
                self._cut(side)
            self._collect(side, side.assembler.close(frame, time), out)
        return out

    def capture_loss_possible(self) -> bool:
        """Can a message of this association have gone unseen: the capture began after the
        A-ASSOCIATE-RQ, lost bytes, or is holding bytes back behind a hole right now?"""
        record = self.record
        return (record.mid_stream or record.request is None or bool(record.holes)
                or (self.transport_holding is not None and self.transport_holding()))

    def in_progress(self, sender: str) -> DimseMessage | None:
        """The message ``sender`` ("requestor" or "acceptor") is in the middle of sending."""
        for side in self._sides.values():
            if self._sender(side.endpoint) == sender:
                return side.assembler.in_progress
        return None

    # -- bulk data (the fast lane) ------------------------------------------------

    def peer_of(self, endpoint: str) -> str:
        """The other endpoint of the connection."""
        return next(e for e in self._sides if e != endpoint)

    def bulk_run(self, src: str) -> tuple[int, bytes | None] | None:
        """While ``src`` sends a data PDU that is only counted: bytes left in it, and
        the 12 bytes that open each PDU of the run, if the lane may cross into the next
        (see PduReader.elided_run)."""
        side = self._sides.get(src)
        if side is None or not self.is_dicom or not side.seen:
            return None
        run = side.reader.elided_run()
        if run is not None and run[1] is not None and not self._steady():
            # PDUs counted in a run raise no "pdu" event: a run may go on only while no
            # PDU could change what the sequence rules (UL-024) make of it.
            return run[0], None
        return run

    def _steady(self) -> bool:
        """Accepted (or caught established mid-stream), and neither released nor aborted."""
        record = self.record
        return ((record.accept is not None or record.mid_stream) and record.reject is None
                and record.abort is None and not record.release_requested and not record.released)

    def skip_run(self, src: str, count: int, whole: int, first_frame: int, frame: int, time: float,
                 size: int, header: bytes) -> None:
        """``count`` bytes from ``src`` were counted by the fast lane, in PDUs of ``size`` bytes
        opened by ``header``: they completed ``whole`` PDUs (the last at ``frame``) and began
        the next in ``first_frame``, unless they ended with a PDU."""
        side = self._sides[src]
        first_offset = side.reader.position
        side.reader.skip_run(count, whole, first_frame, size, header, time)
        if not whole:
            return
        side.assembler.count_data(whole * (size - 12))
        record = self.record
        record.pdus += whole
        record.end_time = max(record.end_time, time)
        record.last_frame = max(record.last_frame, frame)
        self._notify("p_data_run", run=PduRun(whole, size - 6, header, first_offset, side.reader.position,
                                              frame, time),
                     sender=self._sender(src), frame=frame, time=time)

    def end(self, frame: int, time: float) -> None:
        """Tell the observer the association is over (after its last messages were handled)."""
        self._notify("association_end", frame=frame, time=time)

    # -- detection -----------------------------------------------------------

    def _look_at_start(self, side: _Side, data: bytes) -> None:
        """A stream that begins with an A-ASSOCIATE is DICOM from its first byte."""
        head = bytearray(data[:76])
        if len(head) < 8 or head[0] not in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ) or head[1]:
            return
        believable = head[6:8] == b"\x00\x01" and plausible_pdu_at(head, 0, False) is not False
        if not believable and self._saw_syn:
            # At a stream start we saw open, a faulty A-ASSOCIATE (wrong protocol
            # version, RJ of the wrong length) is still one: decode it, so the
            # rules can say what is wrong with it.
            length = int.from_bytes(head[2:6], "big")
            if head[0] == A_ASSOCIATE_RJ:
                believable = length < 256
            else:
                believable = len(head) > 74 and head[74] == 0x10 and 68 <= length <= MAX_ASSOCIATE_LENGTH
        if believable:
            side.reader.synced = True
            if self.is_dicom is None:
                # Strong enough on its own: even if the rest is never captured
                # (a snaplen cut), the association and its holes get reported.
                self._declare_dicom(head[0])

    def _found_dicom(self, results: list) -> None:
        first = next((r for r in results if isinstance(r, Pdu)), None)
        self._declare_dicom(first.type if first is not None else None)

    def _declare_dicom(self, first_type: int | None) -> None:
        self.is_dicom = True
        self.record.association = self._next_id()
        self.record.mid_stream = first_type != A_ASSOCIATE_RQ
        for other in self._sides.values():
            other.reader.require_command = False  # now known DICOM: any PDU will do

    # -- PDUs ----------------------------------------------------------------

    def _pdu(self, side: _Side, pdu: Pdu, out: list) -> None:
        record = self.record
        if pdu.type == A_ASSOCIATE_RQ and self._requestor is None:
            self._requestor = side.endpoint
        sender = self._sender(side.endpoint)
        self._notify("pdu", pdu=pdu, sender=sender, frame=pdu.frame, time=pdu.time)
        if record.pdus == 0:
            record.start_time, record.first_frame = pdu.first_time, pdu.first_frame
        record.pdus += 1
        record.end_time = max(record.end_time, pdu.time)
        record.last_frame = max(record.last_frame, pdu.frame)
        if pdu.type == P_DATA_TF:
            pdvs, fault = split_pdvs(pdu.body, pdu.elided)
            self._notify("p_data", pdu=pdu, pdvs=pdvs, fault=fault, sender=sender, frame=pdu.frame,
                         time=pdu.time)
            for pdv in pdvs:
                self._collect(side, side.assembler.feed_pdv(pdv.context_id, pdv.control, pdv.data,
                                                            pdu.frame, pdu.time, pdv.length), out)
            if fault:
                out.append(self._problem(pdu.frame, pdu.time, "UL-025", fault, sender))
        elif pdu.type == A_ASSOCIATE_RQ:
            self._requestor = side.endpoint
            record.client = side.endpoint
            record.server = next(e for e in self._sides if e != side.endpoint)
            record.request = decode_associate(pdu.body, True)
            record.mid_stream = False
            self._note_problems(pdu, record.request.problems, out)
            self._notify("associate_rq", pdu=pdu, sender=sender, params=record.request,
                         frame=pdu.frame, time=pdu.time)
        elif pdu.type == A_ASSOCIATE_AC:
            self._set_acceptor(side.endpoint)
            record.accept = decode_associate(pdu.body, False)
            self._note_problems(pdu, record.accept.problems, out)
            self._negotiated(record)
            self._notify("associate_ac", pdu=pdu, sender=self._sender(side.endpoint), params=record.accept,
                         frame=pdu.frame, time=pdu.time)
        elif pdu.type == A_ASSOCIATE_RJ:
            self._set_acceptor(side.endpoint)
            record.reject = decode_reject(pdu.body)
            self._notify("associate_rj", pdu=pdu, sender=self._sender(side.endpoint), reject=record.reject,
                         frame=pdu.frame, time=pdu.time)
        elif pdu.type == A_RELEASE_RQ:
            record.release_requested = True
            self._notify("release_rq", pdu=pdu, sender=sender, frame=pdu.frame, time=pdu.time)
        elif pdu.type == A_RELEASE_RP:
            record.released = True
            self._notify("release_rp", pdu=pdu, sender=sender, frame=pdu.frame, time=pdu.time)
        elif pdu.type == A_ABORT:
            record.abort = decode_abort(pdu.body)
            record.abort_sender = sender
            if record.abort_frame is None:  # the first A-ABORT: the one that ended it
                record.abort_frame, record.abort_time = pdu.frame, pdu.time
            self._notify("abort", pdu=pdu, sender=sender, abort=record.abort, frame=pdu.frame, time=pdu.time)

    def _cut(self, side: _Side) -> None:
        """A PDU whose rest will never come: what its header (and its PDV headers) say is still
        judged, at the frame that carried the header."""
        pdu = side.reader.cut()
        if pdu is None:
            return
        pdvs = split_cut_pdvs(pdu.body, pdu.elided) if pdu.type == P_DATA_TF else []
        self._notify("pdu_cut", pdu=pdu, pdvs=pdvs, sender=self._sender(side.endpoint),
                     frame=pdu.first_frame, time=pdu.first_time)

    def _set_acceptor(self, endpoint: str) -> None:
        if self._requestor is None:
            self._requestor = next(e for e in self._sides if e != endpoint)
            self.record.client, self.record.server = self._requestor, endpoint

    def _negotiated(self, record: AssociationRecord) -> None:
        if record.request is not None and record.accept is not None:
            # Each side sends at most what the other announced it receives.
            for side in self._sides.values():
                receiver = record.accept if side.endpoint == self._requestor else record.request
                side.reader.believe_up_to(receiver.max_length or 0)
        offered = {c.id: c for c in record.request.contexts} if record.request else {}
        for context in record.accept.contexts:
            if context.result == 0 and context.transfer_syntaxes:
                record.transfer_syntaxes[context.id] = context.transfer_syntaxes[0]
            proposed = offered.get(context.id)
            if proposed is not None and proposed.abstract_syntax:
                record.abstract_syntaxes[context.id] = proposed.abstract_syntax

    def _note_problems(self, pdu: Pdu, problems: list[str], out: list) -> None:
        for text in problems:
            out.append(self._problem(pdu.frame, pdu.time, "DECODE-ITEM", f"{pdu.name}: {text}"))

    # -- messages ------------------------------------------------------------

    def _collect(self, side: _Side, results: list, out: list) -> None:
        for result in results:
            if isinstance(result, DimseProblem):
                out.append(self._problem(result.frame, result.time, result.code, result.detail))
                continue
            message: DimseMessage = result
            if self._requestor is None:
                self._infer_roles(side.endpoint, message)
            message.sender = self._sender(side.endpoint)
            message.capture = self.capture
            message.association = self.record.association
            message.transfer_syntax = self._transfer_syntax(message)
            self.record.messages += 1
            out.append(message)
            for text in message.command.problems:
                out.append(self._problem(message.frame, message.time, "DECODE-COMMAND",
                                         f"{message.name} command set: {text}"))

    def _infer_roles(self, endpoint: str, message: DimseMessage) -> None:
        """Mid-stream: who asked for the association? Judge by what they send."""
        if message.command_field in (C_GET_RQ, C_CANCEL_RQ, C_STORE_RSP):
            requestor = endpoint
        elif self._saw_syn:
            requestor = self.record.client
        else:
            requestor = next(e for e in self._sides if e != endpoint)
        self._requestor = requestor
        self.record.client = requestor
        self.record.server = next(e for e in self._sides if e != requestor)

    def _sender(self, endpoint: str) -> str:
        if self._requestor is None:
            return ""
        return REQUESTOR if endpoint == self._requestor else ACCEPTOR

    def _transfer_syntax(self, message: DimseMessage) -> str | None:
        syntax = self.record.transfer_syntaxes.get(message.context_id)
        if syntax is not None or message.data_set is None:
            return syntax
        # No A-ASSOCIATE-AC in the capture: tell explicit from implicit VR by
        # whether the first element carries a two-letter VR.
        data = message.data_set
        if len(data) >= 6 and data[4:6].isalpha() and data[4:6].isupper():
            return EXPLICIT_VR_LE
        return IMPLICIT_VR_LE

    # -- faults --------------------------------------------------------------

    def _hole(self, side: _Side, gap: StreamGap, out: list) -> None:
        if self.is_dicom is None:
            side.reader.lose_sync(gap.size)
            return
        self._cut(side)
        self.record.holes += 1
        dropped = side.reader.lose_sync(gap.size)
        size = f"{gap.size} bytes" if gap.size else "an unknown number of bytes"
        out.append(self._problem(gap.frame, gap.time, "CAPTURE-HOLE",
                                 f"{size} from {side.endpoint} missing ({gap.detail}); "
                                 f"{dropped} buffered bytes of a partial PDU dropped, resynchronising",
                                 self._sender(side.endpoint) or None))
        self._collect(side, side.assembler.reset(gap.frame, gap.time), out)

    def _problem(self, frame: int, time: float, code: str, detail: str, sender: str | None = None) -> Problem:
        problem = Problem(self.capture, frame, time, self.record.association, code, detail)
        self._notify("problem", problem=problem, sender=sender, frame=frame, time=time)
        return problem

    def _notify(self, name: str, **fields) -> None:
        if self.observer is not None and self.is_dicom:
            self.observer.session_event(self, name, **fields)
