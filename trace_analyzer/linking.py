"""Linking across associations: each C-MOVE with the C-STOREs it caused elsewhere.

Layer: linking, above the per-association correlators (see shared/spec/linking.md). A C-MOVE
SCP sends its C-STORE sub-operations on another association, to the Move Destination; no
correlator of one association can see both. A :class:`Linker` is fed what the correlators
give: association records, C-MOVE operations, and the C-STOREs no C-GET owns. It never reads
bytes and keeps only these records, so it runs as well on the merged results of capture sets
analysed in parallel as on one capture, and a live source can feed it the same way.

A C-STORE is linked to a C-MOVE, in order of trust, by:

* ``originator``: its Move Originator Message ID (0000,1031) is the C-MOVE's Message ID and
  its Move Originator AE Title (0000,1030) the C-MOVE requestor's AE title;
* ``originator-id``: the Message ID matches, the AE title does not (or is absent);
* ``inferred``: no originator fields; the association goes to the Move Destination from the
  C-MOVE SCP while the C-MOVE is outstanding (timing and AE titles only);
* ``inferred-counters``: the same, and several C-MOVEs fit, but the counters of only one of them
  rose between the C-STORE-RSP and the next C-STORE-RQ on that association: the C-MOVE-RSPs,
  which climb as the C-STOREs complete, are the evidence.

Candidates are the C-MOVEs whose Move Destination is the association's called AE title, whose
SCP is the association's calling AE title or host, and that were outstanding (with a little
slack) when the C-STORE was sent. When more than one remains, the C-STORE is ambiguous: it
hangs on every candidate with ``candidates`` set, as a C-GET sub-operation does, and counts for
none. A C-STORE whose originator fields name a C-MOVE that is not in the capture makes a
:class:`Retrieve` without its C-MOVE. No I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .association import AssociationRecord
from .operations import Operation, SubOperation

#: Seconds a sub-operation may come before the C-MOVE-RQ is complete (its identifier still
#: arriving) or after its final response (the final crossing the last C-STORE-RSP).
SLACK = 2.0

ORIGINATOR, ORIGINATOR_ID, INFERRED = "originator", "originator-id", "inferred"
COUNTERS = "inferred-counters"
#: Link methods, most trusted first.
METHODS = (ORIGINATOR, ORIGINATOR_ID, COUNTERS, INFERRED)


@dataclass(slots=True)
class Retrieve:
    """One C-MOVE retrieve: the C-MOVE (None when only its sub-operations were captured), the
    associations its sub-operations came on, and how each C-STORE was linked."""

    move: Operation | None
    #: The C-MOVE requestor's AE title, Message ID and the Move Destination, as far as known.
    originator_ae: str | None
    message_id: int | None
    destination: str | None
    #: (capture, association) of each association its sub-operations came on, in order.
    associations: list[tuple[str, int]] = field(default_factory=list)
    #: C-STOREs linked to it alone, and those it shares with other candidates.
    sub_operations: list[SubOperation] = field(default_factory=list)
    ambiguous: list[SubOperation] = field(default_factory=list)
    #: How many of its C-STOREs were linked by each method.
    methods: dict[str, int] = field(default_factory=dict)

    @property
    def link(self) -> str | None:
        """The methods its links were made by, most trusted first ("originator, inferred")."""
        return ", ".join(m for m in METHODS if self.methods.get(m)) or None


@dataclass(slots=True)
class _Move:
    operation: Operation
    requestor_ae: str | None
    scp_ae: str | None
    scp_host: str | None
    destination: str | None
    start: float
    end: float | None  # None while no final response was captured
    retrieve: Retrieve


def _side_ae(record: AssociationRecord | None, side: str) -> str | None:
    if record is None or record.request is None:
        return None
    return record.request.calling_ae if side == "requestor" else record.request.called_ae


def _host(endpoint: str | None) -> str | None:
    return endpoint.rsplit(":", 1)[0] if endpoint else None


class Linker:
    """Link C-MOVEs to their C-STORE sub-operations across associations; fed records, gives
    :class:`Retrieve` records from :meth:`finish`."""

    def __init__(self, slack: float = SLACK) -> None:
        self.slack = slack
        self._records: dict[tuple[str, int], AssociationRecord] = {}
        self._moves: list[Operation] = []
        self._stores: dict[tuple[str, int], list[SubOperation]] = defaultdict(list)

    def association(self, record: AssociationRecord) -> None:
        self._records[(record.capture, record.association)] = record

    def move(self, operation: Operation) -> None:
        """A C-MOVE operation (its request and responses, on its own association)."""
        self._moves.append(operation)

    def store(self, sub: SubOperation) -> None:
        """A C-STORE exchange no C-GET owns: perhaps a C-MOVE sub-operation."""
        if sub.request is not None:
            self._stores[(sub.request.capture, sub.request.association)].append(sub)

    # -- linking -------------------------------------------------------------------

    def _prepare(self, operation: Operation) -> _Move:
        record = self._records.get((operation.capture, operation.association))
        performer = "acceptor" if operation.invoker == "requestor" else "requestor"
        request = operation.request
        destination = request.MoveDestination if request is not None else None
        start = request.time if request is not None else operation.responses[0].time
        final = operation.final
        if record is not None:
            scp_host = _host(record.server if performer == "acceptor" else record.client)
        else:
            scp_host = None
        message_id = operation.message_id if operation.message_id >= 0 else None
        retrieve = Retrieve(operation, _side_ae(record, operation.invoker), message_id,
                            destination if isinstance(destination, str) else None)
        # Sub-operations hang on the operation as a C-GET's do: the tables and plots read them there.
        operation.sub_operations = []
        return _Move(operation, retrieve.originator_ae, _side_ae(record, performer), scp_host,
                     retrieve.destination, start, final.time if final is not None else None, retrieve)

    def _in_time(self, move: _Move, time: float) -> bool:
        if time < move.start - self.slack:
            return False
        return move.end is None or time <= move.end + self.slack

    def finish(self) -> list[Retrieve]:
        """The retrieves: one per C-MOVE in the order fed, then those known only from the
        originator fields of C-STOREs whose C-MOVE is not in the capture."""
        moves = [self._prepare(operation) for operation in self._moves]
        orphans: dict[tuple, Retrieve] = {}
        for key, subs in self._stores.items():
            record = self._records.get(key)
            calling = _side_ae(record, "requestor")
            called = _side_ae(record, "acceptor")
            host = _host(record.client) if record is not None else None
            # C-MOVEs whose destination and SCP this association fits.
            fitting = [m for m in moves
                       if (called is None or m.destination is None or m.destination == called)
                       and (m.scp_ae is None or calling is None or m.scp_ae == calling or m.scp_host == host)]
            for index, sub in enumerate(subs):
                # The next C-STORE-RQ on this association bounds where its C-MOVE's counters
                # must have counted this one (evidence between candidates, see _by_counters).
                after = subs[index + 1].request.time if index + 1 < len(subs) else None
                self._link(sub, key, fitting, moves, called, orphans, after)
        self._without_stores(moves)
        return [m.retrieve for m in moves] + list(orphans.values())

    def _without_stores(self, moves: list[_Move]) -> None:
        """An association to a Move Destination that carried no C-STORE (rejected, aborted, or
        every sub-operation refused before it was sent) still belongs to the retrieve when one
        C-MOVE alone fits it by AE titles and time: the retrieve lists it, no C-STORE is linked."""
        for key, record in self._records.items():
            if key in self._stores or record.request is None:
                continue
            calling, called, host = record.request.calling_ae, record.request.called_ae, _host(record.client)
            fitting = [m for m in moves if m.destination == called
                       and (m.scp_ae == calling or m.scp_host == host)
                       and self._in_time(m, record.start_time)]
            if len(fitting) == 1 and key not in fitting[0].retrieve.associations:
                fitting[0].retrieve.associations.append(key)

    def _link(self, sub: SubOperation, key: tuple[str, int], fitting: list[_Move], moves: list[_Move],
              called: str | None, orphans: dict[tuple, Retrieve], after: float | None = None) -> None:
        request = sub.request
        time = request.time
        origin_id = request.MoveOriginatorMessageID
        origin_ae = request.MoveOriginatorApplicationEntityTitle
        origin_ae = origin_ae.strip() if isinstance(origin_ae, str) else None
        if isinstance(origin_id, int) and not isinstance(origin_id, bool):
            named = [m for m in fitting if m.operation.message_id == origin_id and self._in_time(m, time)]
            if not named:
                # The association does not look like one of its sub-operation associations (or
                # its A-ASSOCIATE was not captured): the originator fields are evidence enough.
                named = [m for m in moves if m.operation.message_id == origin_id
                         and m.requestor_ae == origin_ae and self._in_time(m, time)]
            exact = [m for m in named if origin_ae is not None and m.requestor_ae == origin_ae]
            if exact:
                self._attach(sub, key, exact, ORIGINATOR)
            elif named:
                self._attach(sub, key, named, ORIGINATOR_ID)
            else:
                orphan_key = (key[0], origin_ae, origin_id, called)
                retrieve = orphans.get(orphan_key)
                if retrieve is None:
                    retrieve = orphans[orphan_key] = Retrieve(None, origin_ae, origin_id, called)
                self._add(retrieve, sub, key, ORIGINATOR)
                sub.get_message_id, sub.candidates, sub.link = origin_id, (origin_id,), ORIGINATOR
            return
        candidates = [m for m in fitting if m.destination is not None and self._in_time(m, time)]
        if len(candidates) > 1:
            counted = self._by_counters(sub, candidates, after)
            if counted is not None:
                self._attach(sub, key, [counted], COUNTERS)
                return
        if candidates:
            self._attach(sub, key, candidates, INFERRED)

    @staticmethod
    def _by_counters(sub: SubOperation, candidates: list[_Move], after: float | None) -> _Move | None:
        """The one candidate whose counters counted this C-STORE: a response of it whose
        Completed + Failed + Warning rose between the C-STORE-RSP and the next C-STORE-RQ on the
        same association, where no other candidate's rose. None when that is not so."""
        answered = sub.response.time if sub.response is not None else None
        if answered is None:
            return None
        counted = []
        for move in candidates:
            done = 0
            for response in move.operation.responses:
                wire = response.wire
                total = sum(v for v in (wire.get("NumberOfCompletedSuboperations"),
                                        wire.get("NumberOfFailedSuboperations"),
                                        wire.get("NumberOfWarningSuboperations"))
                            if isinstance(v, int) and not isinstance(v, bool))
                if total > done and response.time >= answered and (after is None or response.time <= after):
                    counted.append(move)
                    break
                done = max(done, total)
        return counted[0] if len(counted) == 1 else None

    def _attach(self, sub: SubOperation, key: tuple[str, int], candidates: list[_Move], method: str) -> None:
        sub.link = method
        sub.candidates = tuple(m.operation.message_id for m in candidates)
        if len(candidates) == 1:
            sub.get_message_id = candidates[0].operation.message_id
        for move in candidates:
            move.operation.sub_operations.append(sub)
            self._add(move.retrieve, sub, key, method, ambiguous=len(candidates) > 1)

    @staticmethod
    def _add(retrieve: Retrieve, sub: SubOperation, key: tuple[str, int], method: str,
             ambiguous: bool = False) -> None:
        if key not in retrieve.associations:
            retrieve.associations.append(key)
        (retrieve.ambiguous if ambiguous else retrieve.sub_operations).append(sub)
        if not ambiguous:
            retrieve.methods[method] = retrieve.methods.get(method, 0) + 1


def link(records: list[AssociationRecord], operations: list[Operation],
         stores: list[SubOperation], slack: float = SLACK) -> list[Retrieve]:
    """Run a :class:`Linker` over everything at once (what :class:`~.analysis.Analysis` does)."""
    linker = Linker(slack)
    moves = [o for o in operations if o.service == "C-MOVE"]
    if not moves and not any(s.request is not None and s.request.MoveOriginatorMessageID is not None
                             for s in stores):
        return []  # nothing to link: the common case of a C-GET capture costs one pass
    for record in records:
        linker.association(record)
    for operation in moves:
        linker.move(operation)
    for sub in stores:
        linker.store(sub)
    return linker.finish()
