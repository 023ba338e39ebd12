"""The rules engine: checks run on pipeline events as the stream is processed.

Layer: rules. The association sessions and the C-GET correlator announce
what happens (a PDU arrived, a C-GET-RSP was linked to its operation, an
operation ended...) as :class:`Event` records; the engine runs every check
registered for that event and keeps the :class:`Finding` records. Checks read
only the event and the :class:`AssociationView` (the state the pipeline keeps:
negotiated contexts and roles, maximum lengths, windows, outstanding
operations), never the whole capture. No I/O.

A check is a small function registered with :func:`rule`::

    @rule("GET-RSP-007", "c_get_rsp")
    def pending_has_all_counters(report, event):
        ...
        report("Pending response lacks (0000,1021)")
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .catalog import CATALOG, NOT_CHECKABLE

SEVERITIES = ("error", "warning", "info")
LEVELS = (*SEVERITIES, "off")

#: Events announced by the pipeline, and what each carries besides ``view``:
EVENTS = {
    "pdu": "every PDU: pdu, sender",
    "associate_rq": "A-ASSOCIATE-RQ decoded: pdu, sender, params (AssociateParameters)",
    "associate_ac": "A-ASSOCIATE-AC decoded (view.request is the RQ, if captured): pdu, sender, params",
    "associate_rj": "A-ASSOCIATE-RJ: pdu, sender, reject (AssociateReject)",
    "release_rq": "A-RELEASE-RQ: pdu, sender",
    "release_rp": "A-RELEASE-RP: pdu, sender",
    "abort": "A-ABORT: pdu, sender, abort (Abort)",
    "p_data": "P-DATA-TF split into PDVs: pdu, sender, pdvs (list[Pdv]), fault (str or None)",
    "p_data_run": ("P-DATA-TF PDUs counted, not framed, each identical in shape to the last p_data PDU "
                   "of the same sender (bulk data): run (pdu.PduRun), sender"),
    "pdu_cut": ("a PDU whose header arrived but not all of its body (the stream ended, or a hole): "
                "pdu (complete False: its header and the bytes that came), pdvs (the PDV items whose "
                "headers came), sender; frame is the frame of its header"),
    "problem": "a fault met by a lower layer: problem (association.Problem), sender",
    "message": "any DIMSE message completed: message (DimseMessage), primitive (or None), sender",
    "c_get_rq": "C-GET-RQ linked: primitive, operation, sender",
    "c_get_rsp": "C-GET-RSP linked (operation None if it matches no C-GET): primitive, operation, sender",
    "c_cancel": "C-CANCEL-RQ (operation None if it matches no C-GET): primitive, operation, sender",
    "c_store_rq": "C-STORE-RQ (sub.get_message_id None if no C-GET owns it): primitive, sub, sender",
    "c_store_rsp": "C-STORE-RSP (sub None if it matches no request): primitive, sub, sender",
    "operation_final": "a C-GET got its final response: operation, primitive (the final response)",
    "c_move_rq": "C-MOVE-RQ linked: primitive, operation, sender",
    "c_move_rsp": "C-MOVE-RSP linked: primitive, operation (built from its responses if the RQ is not "
                  "captured), sender",
    "move_final": "a C-MOVE got its final response (on its own association): operation, primitive",
    "c_find_rq": "C-FIND-RQ linked: primitive, operation, sender",
    "c_find_rsp": "C-FIND-RSP linked: primitive, operation, sender",
    "find_final": "a C-FIND got its final response: operation, primitive",
    "c_echo_rq": "C-ECHO-RQ: primitive, operation, sender",
    "c_echo_rsp": "C-ECHO-RSP: primitive, operation, sender",
    "service_cancel": "C-CANCEL-RQ naming a C-MOVE or C-FIND: primitive, operation, sender",
    "association_end": "the connection or the capture ended: nothing more",
}

#: Rules that judge what is absent or in what order messages came, across messages: once the
#: capture has lost bytes of an association, their evidence may be in what was lost, so they
#: no longer accuse anyone there; what they would have said is kept as not judged.
LOSS_SENSITIVE = frozenset({
    "UL-024", "UL-030", "UL-031", "UL-033", "UL-036", "UL-037",
    "GET-RQ-003", "GET-RQ-008", "GET-RQ-009", "GET-RQ-010", "GET-RQ-011",
    "GET-ID-001", "GET-ID-003", "GET-ID-012",
    "GET-RSP-002", "GET-RSP-011", "GET-RSP-017",
    "GET-CNT-004", "GET-CNT-005", "GET-CNT-006", "GET-CNT-007", "GET-CNT-008",
    "GET-SUB-006", "GET-SUB-010", "GET-SUB-011", "GET-SUB-015",
    "GET-CAN-003", "GET-CAN-005", "TA-UL-001",
})
#: Problems after which bytes of the association are known to be missing.
LOSS_CODES = frozenset({"CAPTURE-HOLE", "CAPTURE-RESYNC"})

Check = Callable[["Reporter", "Event"], None]
_REGISTRY: dict[str, list[tuple[str, Check]]] = defaultdict(list)
IMPLEMENTED: dict[str, list[str]] = defaultdict(list)  # rule ID -> events it is checked on


def rule(rule_id: str, *events: str) -> Callable[[Check], Check]:
    """Register a check for a catalog rule on one or more events."""
    if rule_id not in CATALOG:
        raise ValueError(f"{rule_id} is not in the catalog")
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise ValueError(f"{rule_id}: unknown events {unknown or '(none given)'}")

    def register(check: Check) -> Check:
        for event in events:
            _REGISTRY[event].append((rule_id, check))
            IMPLEMENTED[rule_id].append(event)
        return check

    return register


def rules(rule_ids: tuple[str, ...], *events: str) -> Callable[[Check], Check]:
    """Register one check that judges several catalog rules in a single pass (they follow
    the same state); it reports each with ``if report.aim(rule_id): report(...)``."""
    for rule_id in rule_ids:
        rule(rule_id, *events)  # validates the rule and its events

    def register(check: Check) -> Check:
        for event in events:
            _REGISTRY[event].append((rule_ids, check))
            for rule_id in rule_ids:
                IMPLEMENTED[rule_id].append(event)
        return check

    return register


#: Checks judged on whole retrieves (linking.Retrieve: a C-MOVE with its sub-operations on other
#: associations), once everything is linked: check(report, retrieve, context).
RETRIEVE_CHECKS: list[tuple[str, Callable]] = []


def retrieve_rule(rule_id: str) -> Callable[[Callable], Callable]:
    """Register a check for a catalog rule judged on linked retrieves (see RetrieveReporter)."""
    if rule_id not in CATALOG:
        raise ValueError(f"{rule_id} is not in the catalog")

    def register(check: Callable) -> Callable:
        RETRIEVE_CHECKS.append((rule_id, check))
        IMPLEMENTED[rule_id].append("retrieve")
        return check

    return register


class RetrieveContext:
    """What retrieve-level checks may read: association records and where bytes were lost."""

    def __init__(self, analysis: Any) -> None:
        self.records = {(r.capture, r.association): r for r in analysis.association_records}
        self.lossy = {(p.capture, p.association) for p in analysis.problem_records
                      if p.code in LOSS_CODES or p.code == "CAPTURE-TRUNCATED"}
        self.lossy |= {(r.capture, r.association) for r in analysis.association_records if r.holes}

    def peer(self, capture: str, association: int | None, side: str | None) -> str:
        record = self.records.get((capture, association))
        if record is None:
            return "? @ ?"
        rq = record.request
        ae = (rq.calling_ae if side == "requestor" else rq.called_ae) if rq is not None else None
        return f"{ae or '?'} @ {record.client if side == 'requestor' else record.server}"


class RetrieveReporter:
    """Hands a retrieve-level check the means to report about one message of one association."""

    def __init__(self, levels: dict[str, str], context: RetrieveContext, findings: list[Finding]) -> None:
        self._levels = levels
        self._context = context
        self._findings = findings
        self.rule = ""

    def __call__(self, detail: str, primitive: Any, role: str, message_id: int | None = None) -> None:
        level = self._levels.get(self.rule)
        if level == "off":
            return
        info = CATALOG[self.rule]
        if message_id is None:  # the message's own: a C-STORE-RQ's ID, or the C-MOVE a response answers
            for name in ("MessageID", "MessageIDBeingRespondedTo"):
                value = getattr(primitive, name, None)
                if isinstance(value, int) and not isinstance(value, bool):
                    message_id = value
                    break
        if message_id is not None and message_id < 0:
            message_id = None
        sender = primitive.sender
        finding = Finding(self.rule, level or info.severity, info.title, info.section, primitive.capture,
                          primitive.association, message_id, primitive.frame, primitive.time,
                          self._context.peer(primitive.capture, primitive.association, sender), sender,
                          role, detail)
        self._findings.append(finding)
        primitive.findings.append(finding)


def judge_retrieves(retrieves: list, analysis: Any, levels: dict[str, str]) -> list[Finding]:
    """Run every retrieve-level check over the linked retrieves; their findings."""
    findings: list[Finding] = []
    if not retrieves:
        return findings
    context = RetrieveContext(analysis)
    reporter = RetrieveReporter(levels, context, findings)
    for retrieve in retrieves:
        for rule_id, check in RETRIEVE_CHECKS:
            if levels.get(rule_id) == "off":
                continue
            reporter.rule = rule_id
            check(reporter, retrieve, context)
    return findings


def not_checkable(rule_id: str, reason: str) -> None:
    """Declare that a passive observer cannot check a catalog rule, and why."""
    if rule_id not in CATALOG:
        raise ValueError(f"{rule_id} is not in the catalog")
    NOT_CHECKABLE[rule_id] = reason


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken by one message or one association, with where and by whom."""

    rule: str
    severity: str
    title: str
    section: str
    capture: str
    association: int | None
    message_id: int | None
    frame: int | None
    time: float | None
    peer: str  # "AE title @ ip:port"
    peer_side: str | None  # "requestor" or "acceptor"
    peer_role: str  # "C-GET SCP", "Storage SCU", "association requestor", ...
    detail: str


@dataclass(slots=True)
class Event:
    name: str
    view: AssociationView
    sender: str | None = None  # "requestor" or "acceptor": who sent what the event is about
    frame: int | None = None
    time: float | None = None
    pdu: Any = None
    pdvs: list | None = None
    fault: str | None = None
    params: Any = None
    reject: Any = None
    abort: Any = None
    problem: Any = None
    message: Any = None
    primitive: Any = None
    operation: Any = None
    sub: Any = None
    run: Any = None


_ROLE_BY_EVENT = {
    "c_get_rq": "C-GET SCU", "c_cancel": "C-GET SCU", "c_get_rsp": "C-GET SCP",
    "c_store_rq": "Storage SCU", "c_store_rsp": "Storage SCP", "operation_final": "C-GET SCP",
    "c_move_rq": "C-MOVE SCU", "c_move_rsp": "C-MOVE SCP", "move_final": "C-MOVE SCP",
    "c_find_rq": "C-FIND SCU", "c_find_rsp": "C-FIND SCP", "find_final": "C-FIND SCP",
    "c_echo_rq": "Verification SCU", "c_echo_rsp": "Verification SCP",
}
_ROLE_BY_COMMAND = {0x0010: "C-GET SCU", 0x0FFF: "C-GET SCU", 0x8010: "C-GET SCP",
                    0x0001: "Storage SCU", 0x8001: "Storage SCP",
                    0x0021: "C-MOVE SCU", 0x8021: "C-MOVE SCP", 0x0020: "C-FIND SCU",
                    0x8020: "C-FIND SCP", 0x0030: "Verification SCU", 0x8030: "Verification SCP"}


class AssociationView:
    """What checks may read about one association: the state the pipeline keeps."""

    def __init__(self, session) -> None:
        self._session = session
        self.record = session.record
        #: Free memory for checks that need to remember something, keyed by rule ID.
        self.scratch: dict[str, Any] = {}
        #: The correlator's state for this association (operations.AssociationOperations):
        #: outstanding C-GETs, C-STOREs awaiting responses. None before the first DIMSE message.
        self.correlation = None
        #: UL state as the observer sees it: "idle", "requested", "established",
        #: "release-requested", "released", "rejected", "aborted".
        self.state = "idle"
        #: Frame of the first loss of bytes the capture showed in this association, if any.
        self.lost_at: int | None = None

    def memory(self, key: str, factory: Callable[[], Any]) -> Any:
        """``scratch[key]``, made by ``factory`` the first time (rules run per PDU and per
        message: a setdefault would build the default every time)."""
        value = self.scratch.get(key)
        if value is None:
            value = self.scratch[key] = factory()
        return value

    @property
    def capture(self) -> str:
        return self.record.capture

    @property
    def association(self) -> int:
        return self.record.association

    @property
    def request(self):
        return self.record.request

    @property
    def accept(self):
        return self.record.accept

    @property
    def mid_stream(self) -> bool:
        return self.record.mid_stream

    def endpoint(self, side: str | None) -> str:
        if side == "requestor":
            return self.record.client
        if side == "acceptor":
            return self.record.server
        return "?"

    def ae_title(self, side: str | None) -> str | None:
        rq = self.record.request
        if rq is None:
            return None
        return rq.calling_ae if side == "requestor" else rq.called_ae if side == "acceptor" else None

    def peer(self, side: str | None) -> str:
        return f"{self.ae_title(side) or '?'} @ {self.endpoint(side)}"

    def implementation(self, side: str | None) -> tuple[str | None, str | None]:
        params = self.record.request if side == "requestor" else self.record.accept
        if params is None:
            return None, None
        return params.implementation_class_uid, params.implementation_version_name

    # -- negotiation -----------------------------------------------------------

    def abstract_syntax(self, context_id: int) -> str | None:
        return self.record.abstract_syntaxes.get(context_id)

    def transfer_syntax(self, context_id: int) -> str | None:
        return self.record.transfer_syntaxes.get(context_id)

    def is_accepted(self, context_id: int) -> bool | None:
        """None when the A-ASSOCIATE-AC is not in the capture."""
        if self.record.accept is None:
            return None
        return context_id in self.record.transfer_syntaxes

    def roles(self, abstract_syntax: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """(RQ (SCU, SCP) role item or None, AC (SCU, SCP) role item or None)."""
        return self.record.role_items(abstract_syntax)

    def may_act(self, side: str, role: str, abstract_syntax: str) -> bool | None:
        """May ``side`` act as ``role`` ("SCU" or "SCP") for that abstract syntax?

        As negotiated (association.negotiate_roles). None when the negotiation is not in the
        capture, or its outcome is undefined (a (1, 1) proposal answered (0, 0): GET-ROLE-004).
        """
        roles = self.record.roles(abstract_syntax)
        if not isinstance(roles, tuple):
            return None
        requestor_scu, requestor_scp = roles
        if side == "requestor":
            return requestor_scu if role == "SCU" else requestor_scp
        # The acceptor takes the opposite role of each one the requestor took.
        return requestor_scp if role == "SCU" else requestor_scu

    def message_in_progress(self, side: str):
        """The DIMSE message ``side`` is sending: command set decoded, data set still arriving."""
        return self._session.in_progress(side)

    def max_length_received_by(self, side: str) -> int | None:
        """The receiver's announced Maximum Length (0 = no limit), None if not captured."""
        params = self.record.request if side == "requestor" else self.record.accept
        return None if params is None else params.max_length

    @property
    def async_window(self) -> tuple[int, int]:
        """(max operations invoked, performed) as accepted; (1, 1) by default."""
        accept = self.record.accept
        if accept is not None and accept.async_window is not None:
            return accept.async_window
        return (1, 1)


class Reporter:
    """Hands a check the means to report, with the event's defaults filled in."""

    __slots__ = ("_engine", "_rule", "_event")

    def __init__(self, engine: RulesEngine, rule_id: str, event: Event) -> None:
        self._engine = engine
        self._rule = rule_id
        self._event = event

    def aim(self, rule_id: str) -> bool:
        """For a check registered with :func:`rules`: report as ``rule_id`` from now on;
        False if that rule is switched off (then report nothing for it)."""
        self._rule = rule_id
        return self._engine.levels.get(rule_id) != "off"

    def __call__(self, detail: str, *, sender: str | None = None, frame: int | None = None,
                 time: float | None = None, message_id: int | None = None, primitive: Any = None,
                 role: str | None = None, severity: str | None = None) -> None:
        """Record a finding. ``severity`` lowers (or raises) this one case where the
        catalog grades a rule by case; a level the user set for the rule still wins."""
        event = self._event
        primitive = primitive if primitive is not None else event.primitive
        sender = sender or (getattr(primitive, "sender", None) if primitive is not None else None) \
            or event.sender
        if frame is None:
            frame = getattr(primitive, "frame", None) if primitive is not None else event.frame
            if frame is None and event.pdu is not None:
                frame = event.pdu.frame
        if time is None:
            time = getattr(primitive, "time", None) if primitive is not None else event.time
            if time is None and event.pdu is not None:
                time = event.pdu.time
        if message_id is None:
            message_id = _message_id_of(event, primitive)
        if message_id is not None and (not isinstance(message_id, int) or message_id < 0):
            message_id = None  # -1 stands for a C-GET whose Message ID was absent: it names none
        if role is None:
            role = _role_of(event, primitive, sender)
        self._engine._add(self._rule, event.view, detail, sender, frame, time, message_id, role, primitive,
                          severity)


def _message_id_of(event: Event, primitive: Any) -> int | None:
    operation = event.operation
    if operation is not None and isinstance(getattr(operation, "message_id", None), int):
        return operation.message_id
    if event.sub is not None and event.sub.get_message_id is not None:
        return event.sub.get_message_id
    if primitive is not None:
        for name in ("MessageID", "MessageIDBeingRespondedTo"):
            value = getattr(primitive, name, None)
            if isinstance(value, int):
                return value
    return None


def _role_of(event: Event, primitive: Any, sender: str | None) -> str:
    role = _ROLE_BY_EVENT.get(event.name)
    if role is None and event.message is not None:
        role = _ROLE_BY_COMMAND.get(event.message.command.command_field)
    if role is None and primitive is not None:
        command = primitive.wire.get("CommandField") if hasattr(primitive, "wire") else None
        role = _ROLE_BY_COMMAND.get(command)
    return role or (f"association {sender}" if sender else "unknown")


class ConfigError(ValueError):
    """A rule level that names an unknown rule or level."""


def parse_levels(items: Iterable[str]) -> dict[str, str]:
    """Parse "ID=LEVEL" strings (as given to ``--rule``)."""
    levels = {}
    for item in items:
        rule_id, sep, level = item.partition("=")
        if not sep:
            raise ConfigError(f"--rule {item!r}: expected ID=LEVEL, e.g. GET-RSP-008=warning")
        levels[rule_id.strip()] = level.strip()
    return check_levels(levels)


def check_levels(levels: dict[str, str]) -> dict[str, str]:
    """Rule levels by ID, IDs and levels in any case, normalised (``get-rsp-008`` ->
    ``GET-RSP-008``). An unknown rule or level, or a rule that is never checked (setting its
    level would change nothing), raises ConfigError."""
    from . import load_families

    load_families()
    checked = {}
    for rule_id, level in levels.items():
        key, value = rule_id.strip().upper(), level.strip().lower()
        if key not in CATALOG:
            raise ConfigError(f"unknown rule {rule_id!r} (see 'trace-analyzer rules')")
        if value not in LEVELS:
            raise ConfigError(f"rule {key}: level {level!r} is not one of {', '.join(LEVELS)}")
        if key not in IMPLEMENTED:
            why = NOT_CHECKABLE.get(key, "no check is registered for it")
            raise ConfigError(f"rule {key} is never checked ({why}); its level would change nothing")
        checked[key] = value
    return checked


class RulesEngine:
    """Run the registered checks on pipeline events; keep the findings."""

    def __init__(self, levels: dict[str, str] | None = None, max_per_rule: int | None = None) -> None:
        from . import load_families

        load_families()
        self.levels = check_levels(levels or {})
        #: The checks to run per event, rules switched off left out once and for all.
        self._active = {name: [(rule_id, check) for rule_id, check in checks if self._on(rule_id)]
                        for name, checks in _REGISTRY.items()}
        self.findings: list[Finding] = []
        #: What LOSS_SENSITIVE rules would have reported after a loss: not findings, since
        #: the evidence may be in the lost bytes (the first of each rule and association).
        self.unjudged: list[Finding] = []
        self._unjudged_seen: dict[tuple, int] = {}
        self._lost: dict[tuple[str, int], int] = {}  # (capture, association) -> first loss frame
        self._views: dict[int, AssociationView] = {}  # id(session) -> view
        self._by_association: dict[tuple[str, int], AssociationView] = {}
        #: Findings kept per (capture, association, rule); beyond it they are counted, and
        #: summarised in one finding each by summarise() (a hostile capture can break a rule
        #: millions of times). None: no bound.
        self.max_per_rule = max_per_rule
        self._per_rule: dict[tuple, int] = {}
        self._over: dict[tuple, list] = {}  # key -> [count, first frame, last finding]

    def _on(self, rule_id: str | tuple[str, ...]) -> bool:
        ids = rule_id if isinstance(rule_id, tuple) else (rule_id,)
        return any(self.levels.get(one) != "off" for one in ids)

    def severity(self, rule_id: str) -> str:
        return self.levels.get(rule_id, CATALOG[rule_id].severity)

    # -- entry points for the pipeline ----------------------------------------

    def session_event(self, session, name: str, **fields: Any) -> None:
        """Called by an association session (UL events)."""
        view = self._views.get(id(session))
        if view is None:
            view = self._views[id(session)] = AssociationView(session)
            self._by_association[(view.capture, view.association)] = view
        self._track_state(view, name, fields.get("sender"))
        if name == "problem" and view.lost_at is None and fields["problem"].code in LOSS_CODES:
            view.lost_at = self._lost[(view.capture, view.association)] = fields["problem"].frame
        self._dispatch(Event(name, view, **fields))
        if name == "association_end":
            self._views.pop(id(session), None)
            self._by_association.pop((view.capture, view.association), None)

    def message_event(self, message: Any, primitive: Any) -> None:
        """Called by the pipeline for every DIMSE message, before correlation."""
        view = self._by_association.get((message.capture, message.association))
        if view is not None:
            self._dispatch(Event("message", view, sender=message.sender, frame=message.frame,
                                 time=message.time, message=message, primitive=primitive))

    def operation_event(self, name: str, primitive: Any, **fields: Any) -> None:
        """Called by the correlator (DIMSE-level events)."""
        view = self._by_association.get((primitive.capture, primitive.association))
        if view is None:
            return
        view.correlation = fields.pop("correlation", view.correlation)
        self._dispatch(Event(name, view, sender=primitive.sender, frame=primitive.frame,
                             time=primitive.time, primitive=primitive, **fields))

    # -- internals -------------------------------------------------------------

    _TRANSITIONS = {"associate_rq": "requested", "associate_ac": "established", "associate_rj": "rejected",
                    "release_rq": "release-requested", "release_rp": "released", "abort": "aborted"}

    @classmethod
    def _track_state(cls, view: AssociationView, name: str, sender: str | None) -> None:
        state = cls._TRANSITIONS.get(name)
        if state is not None:
            view.state = state
        elif name == "p_data" and view.state == "idle" and view.mid_stream:
            view.state = "established"  # capture began mid-association

    def _dispatch(self, event: Event) -> None:
        # Runs for every PDU and message: one Reporter per event, re-aimed per check.
        checks = self._active.get(event.name)
        if not checks:
            return
        reporter = Reporter(self, "", event)
        for rule_id, check in checks:
            reporter._rule = rule_id
            check(reporter, event)

    def summarise(self) -> None:
        """One finding per association and rule that broke max_per_rule, counting the rest."""
        over, self._over = self._over, {}
        limit, self.max_per_rule = self.max_per_rule, None  # the summaries themselves are kept
        for count, first, (rule_id, view, detail, sender, frame, time, message_id, role, severity) \
                in over.values():
            detail = (f"{count} more finding(s) of {rule_id} in this association, frames "
                      f"{first}-{frame}, not listed one by one: the first {limit} are "
                      f"(limit problems-per-code={limit}); the last said: {detail}")
            self._add(rule_id, view, detail, sender, frame, time, message_id, role, None, severity)
        self.max_per_rule = limit

    def lost_at(self, finding: Finding) -> int | None:
        """Frame of the first loss in the finding's association."""
        return self._lost.get((finding.capture, finding.association))

    def unjudged_count(self, finding: Finding) -> int:
        """How many times that rule would have fired on that side of that association."""
        key = (finding.capture, finding.association, finding.rule, finding.peer_side)
        return self._unjudged_seen.get(key, 0)

    def _add(self, rule_id: str, view: AssociationView, detail: str, sender: str | None, frame,
             time, message_id, role: str, primitive: Any, severity: str | None = None) -> None:
        if self.max_per_rule is not None and not (view.lost_at is not None and rule_id in LOSS_SENSITIVE):
            key = (view.capture, view.association, rule_id)
            count = self._per_rule.get(key, 0) + 1
            self._per_rule[key] = count
            if count > self.max_per_rule:  # counted; the last one's fields kept for the summary
                over = self._over.get(key)
                last = (rule_id, view, detail, sender, frame, time, message_id, role, severity)
                if over is None:
                    self._over[key] = [1, frame, last]
                else:
                    over[0] += 1
                    over[2] = last
                return
        info = CATALOG[rule_id]
        if severity is None or rule_id in self.levels:
            severity = self.severity(rule_id)
        finding = Finding(rule_id, severity, info.title, info.section, view.capture,
                          view.association, message_id, frame, time, view.peer(sender), sender, role, detail)
        if view.lost_at is not None and rule_id in LOSS_SENSITIVE:
            key = (view.capture, view.association, rule_id, sender)
            count = self._unjudged_seen.get(key, 0)
            self._unjudged_seen[key] = count + 1
            if not count:
                self.unjudged.append(finding)
            return
        self.findings.append(finding)
        if primitive is not None and hasattr(primitive, "findings"):
            primitive.findings.append(finding)
