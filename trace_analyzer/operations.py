"""C-GET correlation, per association (PS3.7 9.1.3, PS3.4 C.4.3; catalog 3.7).

Layer: operations. A :class:`Correlator` is fed the primitives of one
capture in capture order and links, per association: each C-GET-RQ with its
responses (by Message ID Being Responded To), its C-CANCEL-RQs, the C-STORE
sub-operations its performer sends while it is outstanding, and their
C-STORE-RSPs. No C-STORE field names its C-GET, so a sub-operation is linked
by direction and time; when two C-GETs of the same invoker are outstanding
the link is ambiguous and the record says so instead of guessing. A response
whose Message ID Being Responded To names no C-GET is attached to the one
C-GET outstanding from that invoker on its context when the association was
followed from its start with nothing lost (so no unseen request can be the
one it answers), and marked mis-numbered.

C-MOVE, C-FIND and C-ECHO operations are linked here too, request to responses
by Message ID, in state of their own so that nothing about a C-GET changes: a
C-MOVE's sub-operations are on another association, and are linked to it by
:mod:`.linking`, above the per-association correlators. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .commandset import C_GET_RQ
from .primitives import C_CANCEL, C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE
from .status import status_category

#: Sub-operations seen before any C-GET they could belong to (a capture
#: that starts mid-retrieve) wait here for a C-GET-RSP that adopts them.
MAX_ORPHANS = 65536

PENDING = (0xFF00, 0xFF01)


def is_final(status) -> bool:
    """A readable status that is not Pending: the response ends its C-GET. An absent or
    unreadable Status (wrong length on the wire) is neither Pending nor final."""
    return isinstance(status, int) and status not in PENDING


@dataclass(slots=True)
class SubOperation:
    """One C-STORE sub-operation: its request, its response, its C-GET."""

    request: C_STORE | None = None
    response: C_STORE | None = None
    get_message_id: int | None = None
    #: Message IDs of every C-GET it could belong to when more than one was outstanding.
    candidates: tuple[int, ...] = ()
    #: For a C-MOVE sub-operation (on another association): how linking.py linked it,
    #: "originator", "originator-id", "inferred-counters" or "inferred"; None for a C-GET's.
    link: str | None = None

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1


@dataclass(slots=True)
class Operation:
    """One C-GET operation and everything linked to it (or a C-MOVE, C-FIND or C-ECHO one:
    ``service`` says which; their sub-operations, for a C-MOVE, are linked by :mod:`.linking`)."""

    capture: str
    association: int
    message_id: int
    invoker: str  # "requestor" or "acceptor": who sent the C-GET-RQ
    request: C_GET | C_MOVE | C_FIND | C_ECHO | None = None
    responses: list = field(default_factory=list)
    cancels: list[C_CANCEL] = field(default_factory=list)
    sub_operations: list[SubOperation] = field(default_factory=list)
    #: Responses that arrived after the final one.
    late_responses: list[C_GET] = field(default_factory=list)
    #: True when another C-GET of the same invoker was outstanding at the same time.
    overlapped: bool = False
    #: Its place among the capture's C-GETs (1 = first seen): the tables' join key, since
    #: Message IDs repeat and may be absent (message_id is then -1).
    number: int = 0
    #: Responses taken as this C-GET's although their (0000,0120) named another Message ID.
    misnumbered: list[C_GET] = field(default_factory=list)
    #: Built from responses naming a Message ID no request had: the C-GETs of the same
    #: invoker that were outstanding then, any of which they may have answered.
    unmatched_among: tuple[int, ...] = ()
    service: str = "C-GET"

    @property
    def final(self) -> C_GET | None:
        """The response that ended the C-GET: its first final one (any after it are late)."""
        for response in self.responses:
            if is_final(response.Status):
                return response
        return None

    @property
    def pending_responses(self) -> list[C_GET]:
        return [r for r in self.responses if r.Status in PENDING]

    @property
    def complete(self) -> bool:
        return self.final is not None

    @property
    def first_frame(self) -> int:
        if self.request is not None:
            return self.request.frame
        return self.responses[0].frame if self.responses else 0


def _other(sender: str) -> str:
    return "acceptor" if sender == "requestor" else "requestor"


@dataclass(slots=True)
class AssociationOperations:
    """Correlation state of one association, readable by checks (``view.correlation``)."""

    #: C-GETs without a final response, by (invoker, Message ID)
    outstanding: dict[tuple[str, int], Operation] = field(default_factory=dict)
    #: the last C-GET seen for each (invoker, Message ID), final or not
    latest: dict[tuple[str, int], Operation] = field(default_factory=dict)
    #: C-STORE-RQs awaiting their response, by (sender, Message ID)
    stores: dict[tuple[str, int], SubOperation] = field(default_factory=dict)
    #: C-STORE-RSPs that came before their request was complete (an early failure),
    #: by (the request's sender, Message ID)
    early_store_responses: dict[tuple[str, int], C_STORE] = field(default_factory=dict)
    orphans: list[SubOperation] = field(default_factory=list)
    #: C-MOVE, C-FIND and C-ECHO operations without a final response, by (service, invoker,
    #: Message ID), and the last one seen for each key: apart from the C-GETs, so that no
    #: C-GET check or link sees them.
    services: dict[tuple[str, str, int], Operation] = field(default_factory=dict)
    services_latest: dict[tuple[str, str, int], Operation] = field(default_factory=dict)
    #: The association session (association.AssociationSession), once the pipeline names it:
    #: whether every request can have been seen, and what is still arriving.
    session: Any = None


class Correlator:
    """Link the C-GET, C-CANCEL and C-STORE primitives of one capture."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []
        #: C-STORE exchanges not linked to any C-GET (other traffic, or before the capture began).
        self.unlinked_stores: list[SubOperation] = []
        self.unmatched: list[C_GET | C_CANCEL | C_STORE] = []
        self._states: dict[tuple[str, int], AssociationOperations] = {}
        #: Told of each link made (a RulesEngine): operation_event(name, primitive, **fields).
        self.observer = None

    def _add(self, operation: Operation) -> None:
        self.operations.append(operation)
        operation.number = len(self.operations)

    def _notify(self, name: str, primitive, state: AssociationOperations, **fields) -> None:
        if self.observer is not None:
            self.observer.operation_event(name, primitive, correlation=state, **fields)

    def open_association(self, session) -> None:
        """An association was found (before any of its messages is fed)."""
        self._state(session.capture, session.record.association).session = session

    def _state(self, capture: str, association: int) -> AssociationOperations:
        state = self._states.get((capture, association))
        if state is None:
            state = self._states[(capture, association)] = AssociationOperations()
        return state

    def feed(self, primitive) -> None:
        state = self._state(primitive.capture, primitive.association)
        kind = type(primitive)
        if kind is C_STORE:  # the most frequent first
            if primitive.is_request:
                self._store_request(state, primitive)
            else:
                self._store_response(state, primitive)
        elif kind is C_GET:
            if primitive.is_request:
                self._get_request(state, primitive)
            else:
                self._get_response(state, primitive)
        elif kind is C_CANCEL:
            self._cancel(state, primitive)
        elif kind in _SERVICE_EVENTS:
            if primitive.is_request:
                self._service_request(state, primitive)
            else:
                self._service_response(state, primitive)

    def close_association(self, capture: str, association: int) -> None:
        """The association ended: forget its state, keep its results."""
        state = self._states.pop((capture, association), None)
        if state is not None:
            self.unlinked_stores.extend(state.orphans)

    def finish(self) -> None:
        for key in list(self._states):
            self.close_association(*key)

    # -- C-GET ---------------------------------------------------------------

    def _get_request(self, state: AssociationOperations, request: C_GET) -> None:
        message_id = request.MessageID if isinstance(request.MessageID, int) else -1
        key = (request.sender, message_id)
        early = state.latest.get(key)
        if (early is not None and early.request is None and early.responses
                and request.frame is not None and early.responses[0].frame is not None
                and request.frame <= early.responses[0].frame):
            # A Failure/Refused answered before the identifier was complete (PS3.7 9.1.3.2):
            # the request is only assembled now, but it is the one those responses answer.
            early.request = request
            self._notify("c_get_rq", request, state, operation=early)
            return
        operation = Operation(request.capture, request.association, message_id, request.sender,
                              request=request)
        for other in state.outstanding.values():
            if other.invoker == request.sender:
                other.overlapped = operation.overlapped = True
        # Checks see the outstanding operations as they were before this request.
        self._notify("c_get_rq", request, state, operation=operation)
        state.outstanding[key] = operation
        state.latest[key] = operation
        self._add(operation)

    def _get_response(self, state: AssociationOperations, response: C_GET) -> None:
        message_id = response.MessageIDBeingRespondedTo
        if not isinstance(message_id, int):
            # Absent, or of the wrong length on the wire (its raw bytes): it names no C-GET, and
            # is never a key (-1 stands for it, as for a request's).
            message_id = -1
        invoker = _other(response.sender)
        key = (invoker, message_id)
        operation = state.outstanding.get(key)
        if operation is None:
            finished = state.latest.get(key)
            if finished is not None:
                finished.late_responses.append(response)
                finished.responses.append(response)
                self._notify("c_get_rsp", response, state, operation=finished)
                return
            operation = self._misnumbered_target(state, invoker, response)
            if operation is not None:
                operation.misnumbered.append(response)
                key = (invoker, operation.message_id)
            else:
                # The C-GET-RQ is not in the capture: build the operation from its responses.
                operation = Operation(response.capture, response.association, message_id, invoker)
                others = [op for op in state.outstanding.values() if op.invoker == invoker]
                if others:
                    operation.unmatched_among = tuple(op.message_id for op in others)
                    operation.overlapped = True
                    for other in others:
                        other.overlapped = True
                state.outstanding[key] = operation
                state.latest[key] = operation
                self._add(operation)
                self._adopt_orphans(state, operation, response.sender)
        operation.responses.append(response)
        final = is_final(response.Status)
        if final:
            del state.outstanding[key]
        self._notify("c_get_rsp", response, state, operation=operation)
        if final:
            self._notify("operation_final", response, state, operation=operation)

    @staticmethod
    def _misnumbered_target(state: AssociationOperations, invoker: str, response: C_GET) -> Operation | None:
        """The one C-GET a response naming no known Message ID must answer, or None.

        Only where no request can have gone unseen (the association followed from its
        A-ASSOCIATE-RQ, nothing lost or held back behind a hole), the named ID is not that of
        a C-GET-RQ still arriving (an early failure, PS3.7 9.1.3.2), and exactly one C-GET of
        that invoker is outstanding, on the response's presentation context."""
        session = state.session
        named = response.MessageIDBeingRespondedTo
        if session is None or session.capture_loss_possible():
            return None
        arriving = session.in_progress(invoker)
        if isinstance(named, int) and arriving is not None and arriving.command_field == C_GET_RQ \
                and arriving.command.get("MessageID") == named:
            return None
        candidates = [op for op in state.outstanding.values() if op.invoker == invoker]
        if len(candidates) != 1:
            return None
        (operation,) = candidates
        if operation.request is None or operation.request.context_id != response.context_id:
            return None
        return operation

    def _adopt_orphans(self, state: AssociationOperations, operation: Operation, performer: str) -> None:
        kept = []
        for sub in state.orphans:
            if sub.request is not None and sub.request.sender == performer:
                sub.get_message_id = operation.message_id
                sub.candidates = (operation.message_id,)
                operation.sub_operations.append(sub)
            else:
                kept.append(sub)
        state.orphans = kept

    def _cancel(self, state: AssociationOperations, cancel: C_CANCEL) -> None:
        named = cancel.MessageIDBeingRespondedTo
        key = (cancel.sender, named if isinstance(named, int) else -1)
        operation = state.outstanding.get(key) or state.latest.get(key)
        if operation is None and state.services_latest:
            for service in ("C-MOVE", "C-FIND"):
                other = state.services.get((service, *key)) or state.services_latest.get((service, *key))
                if other is not None:
                    # Cancelling a C-MOVE or C-FIND: not a C-GET check's business.
                    other.cancels.append(cancel)
                    self._notify("service_cancel", cancel, state, operation=other)
                    return
        if operation is None:
            self.unmatched.append(cancel)
        else:
            operation.cancels.append(cancel)
        self._notify("c_cancel", cancel, state, operation=operation)

    # -- C-MOVE, C-FIND, C-ECHO ------------------------------------------------

    def _service_request(self, state: AssociationOperations, request) -> None:
        service = request.msg_type
        message_id = request.MessageID if isinstance(request.MessageID, int) else -1
        key = (service, request.sender, message_id)
        early = state.services_latest.get(key)
        if (early is not None and early.request is None and early.responses
                and request.frame is not None and early.responses[0].frame is not None
                and request.frame <= early.responses[0].frame):
            early.request = request  # answered (a Failure) before its identifier was complete
            self._notify(_SERVICE_EVENTS[type(request)][0], request, state, operation=early)
            return
        operation = Operation(request.capture, request.association, message_id, request.sender,
                              request=request, service=service)
        for (other_service, invoker, _), other in state.services.items():
            if other_service == service and invoker == request.sender:
                other.overlapped = operation.overlapped = True
        self._notify(_SERVICE_EVENTS[type(request)][0], request, state, operation=operation)
        state.services[key] = operation
        state.services_latest[key] = operation
        self._add(operation)

    def _service_response(self, state: AssociationOperations, response) -> None:
        service = response.msg_type
        names = _SERVICE_EVENTS[type(response)]
        message_id = response.MessageIDBeingRespondedTo
        if not isinstance(message_id, int):
            message_id = -1  # absent or unreadable: never a key (as for a C-GET-RSP)
        key = (service, _other(response.sender), message_id)
        operation = state.services.get(key)
        if operation is None:
            finished = state.services_latest.get(key)
            if finished is not None:
                finished.late_responses.append(response)
                finished.responses.append(response)
                self._notify(names[1], response, state, operation=finished)
                return
            # The request is not in the capture: build the operation from its responses.
            operation = Operation(response.capture, response.association,
                                  message_id if isinstance(message_id, int) else -1, key[1],
                                  service=service)
            state.services[key] = operation
            state.services_latest[key] = operation
            self._add(operation)
        operation.responses.append(response)
        final = is_final(response.Status)
        if final:
            del state.services[key]
        self._notify(names[1], response, state, operation=operation)
        if final and names[2]:
            self._notify(names[2], response, state, operation=operation)

    # -- C-STORE sub-operations ----------------------------------------------

    def _store_request(self, state: AssociationOperations, request: C_STORE) -> None:
        sub = SubOperation(request=request)
        invoker = _other(request.sender)
        candidates = [op for op in state.outstanding.values() if op.invoker == invoker]
        if candidates:
            sub.candidates = tuple(op.message_id for op in candidates)
            if len(candidates) == 1:
                sub.get_message_id = candidates[0].message_id
            # Ambiguous sub-operations hang on every candidate so no C-GET under-counts
            # silently; the tables mark them.
            for operation in candidates:
                operation.sub_operations.append(sub)
        else:
            if len(state.orphans) >= MAX_ORPHANS:
                self.unlinked_stores.append(state.orphans.pop(0))
            state.orphans.append(sub)
        # Checks see the C-STOREs awaiting a response as they were before this one.
        self._notify("c_store_rq", request, state, sub=sub)
        if isinstance(request.MessageID, int):
            key = (request.sender, request.MessageID)
            early = state.early_store_responses.pop(key, None)
            if early is not None and request.frame is not None and early.frame is not None \
                    and request.frame <= early.frame:
                sub.response = early  # answered before its data set was complete
            else:
                state.stores[key] = sub

    def _store_response(self, state: AssociationOperations, response: C_STORE) -> None:
        named = response.MessageIDBeingRespondedTo
        key = (_other(response.sender), named if isinstance(named, int) else -1)
        sub = state.stores.pop(key, None)
        if sub is not None:
            sub.response = response
        elif state.outstanding:
            self.unmatched.append(response)
            if isinstance(response.MessageIDBeingRespondedTo, int) \
                    and len(state.early_store_responses) < 1024:
                # Its request may still be arriving (an early failure): keep it to link then.
                state.early_store_responses[key] = response
        else:
            # A response whose request came before the capture began.
            self.unlinked_stores.append(SubOperation(response=response))
        self._notify("c_store_rsp", response, state, sub=sub)


def message_id_text(message_id: int | None) -> str:
    """A C-GET's Message ID for a sentence: -1 (and None) stand for one absent or unreadable."""
    return str(message_id) if isinstance(message_id, int) and message_id >= 0 else "(Message ID unreadable)"


#: Per primitive class: the events for its request, its response, its final response.
_SERVICE_EVENTS: dict[type, tuple[str, str, str | None]] = {
    C_MOVE: ("c_move_rq", "c_move_rsp", "move_final"),
    C_FIND: ("c_find_rq", "c_find_rsp", "find_final"),
    C_ECHO: ("c_echo_rq", "c_echo_rsp", None),
}


def sub_operation_category(sub: SubOperation) -> str | None:
    if sub.response is None or not isinstance(sub.response.Status, int):
        return None
    return status_category(sub.response.Status)
