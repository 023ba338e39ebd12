"""UL rules: PDUs, association items, PDV framing, release and abort (catalog 5.1; facts in 4).

Association checks read the decoded :class:`~trace_analyzer.pdu_items.AssociateParameters`
and, where the record keeps too little (item order, raw UIDs, reserved bytes),
re-walk the raw PDU body. PDV checks (UL-025..UL-033) share one small
per-direction tracker of where each message stands (command, data set, between
messages); every PDV rule calls it and it runs once per PDU, so switching one
rule off does not blind the others.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from struct import unpack_from

from ..pdu import A_ABORT, A_ASSOCIATE_RJ, A_RELEASE_RP, A_RELEASE_RQ, P_DATA_TF
from ..pdu_items import ABORT_REASONS, REJECT_REASONS, REJECT_RESULTS, REJECT_SOURCES
from .engine import Event, Reporter, rule

SIDES = ("requestor", "acceptor")
DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
#: The A-ASSOCIATE-RQ/AC fixed part after the PDU header (bytes 7-74); items follow.
FIXED_PART = 68
#: The first command fragment of a DIMSE message starts with (0000,0000) UL, length 4.
COMMAND_START = b"\x00\x00\x00\x00\x04\x00\x00\x00"
#: A command set is a few hundred bytes; past this we stop keeping its bytes.
MAX_COMMAND_KEPT = 64 * 1024
NO_DATA_SET = 0x0101
_UID_SHAPE = re.compile(r"[0-9.]*")


def _other(side: str) -> str:
    return "acceptor" if side == "requestor" else "requestor"


def _listing(values, limit: int = 6) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


# -- raw item walking ---------------------------------------------------------------


def _items(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type, value) of each type/reserved/2-byte-length item; stops at one cut short."""
    offset = start
    while offset + 4 <= len(data):
        length = unpack_from(">H", data, offset + 2)[0]
        end = offset + 4 + length
        if end > len(data):
            return
        yield data[offset], data[offset + 4:end]
        offset = end


def _prefixed(raw: bytes, offset: int) -> tuple[bytes, int] | None:
    """A 2-byte length and the bytes it counts, and the offset after them."""
    if offset + 2 > len(raw):
        return None
    end = offset + 2 + unpack_from(">H", raw, offset)[0]
    return (raw[offset + 2:end], end) if end <= len(raw) else None


def _truncated(params) -> bool:
    """The decoder stopped early, so a missing item may just be unread."""
    return any("cut short" in p or "runs past" in p for p in params.problems)


def _count(params, item_type: int) -> list[int]:
    """Lengths of the user information sub-items of that type."""
    return [length for kind, length in params.user_items if kind == item_type]


def _pdu_name(event: Event) -> str:
    return event.pdu.name if event.pdu is not None else "A-ASSOCIATE"


# -- PDUs ----------------------------------------------------------------------------


@rule("UL-001", "problem")
def known_pdu_type(report: Reporter, event: Event) -> None:
    problem = event.problem
    if problem.code != "UL-001":
        return
    seen = problem.detail.split(";", 1)[0]
    report(f"{seen}; PS3.8 defines only PDU types 0x01-0x07 and a receiver answers any other "
           "with A-ABORT (the reader skipped to the next plausible PDU)")


@rule("UL-002", "pdu")
def fixed_pdu_length(report: Reporter, event: Event) -> None:
    pdu = event.pdu
    if pdu.type in (A_ASSOCIATE_RJ, A_RELEASE_RQ, A_RELEASE_RP, A_ABORT) and pdu.length != 4:
        report(f"{pdu.name} has PDU-length {pdu.length}; the length of this PDU is fixed at 4")


@rule("UL-003", "associate_rq", "associate_ac")
def protocol_version(report: Reporter, event: Event) -> None:
    body = event.pdu.body
    if len(body) < 2:
        return
    version = unpack_from(">H", body, 0)[0]
    if not version & 1:
        report(f"{_pdu_name(event)} protocol version is 0x{version:04X}; bit 0 must be set "
               "(protocol version 1)")


@rule("UL-004", "p_data")
def within_max_length(report: Reporter, event: Event) -> None:
    # Judged in the PDV walk, so that a message sent in many oversized PDUs gives one finding.
    for text in _pdv_findings(event).get("UL-004", ()):
        report(text)


# -- A-ASSOCIATE-RQ / AC user information ------------------------------------------------


@rule("UL-005", "associate_rq", "associate_ac")
def one_max_length_item(report: Reporter, event: Event) -> None:
    params = event.params
    lengths = _count(params, 0x51)
    faults = []
    if not lengths and not _truncated(params):
        faults.append("has no Maximum Length sub-item (0x51)")
    elif len(lengths) > 1:
        faults.append(f"has {len(lengths)} Maximum Length sub-items (0x51)")
    wrong = [n for n in lengths if n != 4]
    if wrong:
        faults.append(f"gives 0x51 item-length {_listing(wrong)}")
    if faults:
        report(f"{_pdu_name(event)} {' and '.join(faults)}; exactly one 0x51 sub-item of item-length 4 "
               "is required")


@rule("UL-006", "associate_rq", "associate_ac")
def one_implementation_class_uid(report: Reporter, event: Event) -> None:
    params = event.params
    count = len(_count(params, 0x52))
    if count > 1 or (count == 0 and not _truncated(params)):
        report(f"{_pdu_name(event)} has {count} Implementation Class UID sub-items (0x52); "
               "exactly one is required")


@rule("UL-007", "associate_rq", "associate_ac")
def implementation_version_name(report: Reporter, event: Event) -> None:
    lengths = _count(event.params, 0x55)
    faults = []
    if len(lengths) > 1:
        faults.append(f"{len(lengths)} Implementation Version Name sub-items (0x55)")
    if 0 in lengths:
        faults.append("an empty Implementation Version Name (0x55)")
    long = [n for n in lengths if n > 16]
    if long:
        faults.append(f"an Implementation Version Name of {long[0]} characters")
    if faults:
        report(f"{_pdu_name(event)} has {' and '.join(faults)}; at most one 0x55 of 1-16 characters "
               "is allowed")


# -- presentation contexts --------------------------------------------------------------


@rule("UL-008", "associate_rq")
def proposed_context_ids(report: Reporter, event: Event) -> None:
    ids = Counter(c.id for c in event.params.contexts)
    faults = []
    bad = sorted(i for i in ids if i % 2 == 0)  # one byte on the wire, so never above 255
    if bad:
        faults.append(f"even or zero presentation context ID {_listing(bad)}")
    repeated = sorted(i for i, n in ids.items() if n > 1)
    if repeated:
        faults.append(f"presentation context ID {_listing(repeated)} proposed more than once")
    if faults:
        report(f"A-ASSOCIATE-RQ has {' and '.join(faults)}; IDs must be odd, 1-255 and unique")


@rule("UL-009", "associate_rq")
def context_sub_items(report: Reporter, event: Event) -> None:
    faults = []
    for item_type, value in _items(event.pdu.body, FIXED_PART):
        if item_type != 0x20 or len(value) < 4:
            continue
        kinds = Counter(kind for kind, _ in _items(value, 4))
        if kinds[0x30] != 1 or not kinds[0x40]:
            faults.append(f"context {value[0]} has {kinds[0x30]} abstract and {kinds[0x40]} transfer "
                          "syntaxes")
    if faults:
        report(f"A-ASSOCIATE-RQ {_listing(faults, 4)}; each presentation context needs exactly one "
               "Abstract Syntax (0x30) and at least one Transfer Syntax (0x40) sub-item")


@rule("UL-010", "associate_ac")
def one_answer_per_context(report: Reporter, event: Event) -> None:
    request = event.view.request
    if request is None or _truncated(event.params):
        return
    proposed = {c.id for c in request.contexts}
    answered = Counter(c.id for c in event.params.contexts)
    faults = []
    missing = sorted(proposed - set(answered))
    if missing:
        faults.append(f"no answer for context {_listing(missing)}")
    repeated = sorted(i for i, n in answered.items() if n > 1 and i in proposed)
    if repeated:
        faults.append(f"several answers for context {_listing(repeated)}")
    unknown = sorted(set(answered) - proposed)
    if unknown:
        faults.append(f"an answer for never-proposed context {_listing(unknown)}")
    if faults:
        report(f"A-ASSOCIATE-AC has {'; '.join(faults)}; it must answer each proposed context exactly once")


@rule("UL-011", "associate_ac")
def context_result_values(report: Reporter, event: Event) -> None:
    bad = [f"{c.result} (context {c.id})" for c in event.params.contexts
           if c.result is not None and c.result > 4]
    if bad:
        report(f"A-ASSOCIATE-AC presentation context result/reason {_listing(bad)} is not one of 0-4")


@rule("UL-012", "associate_ac")
def accepted_transfer_syntax_offered(report: Reporter, event: Event) -> None:
    request = event.view.request
    if request is None:
        return
    faults = []
    for context in event.params.contexts:
        proposed = request.context(context.id)
        if context.result != 0 or proposed is None:
            continue
        if not context.transfer_syntaxes:
            faults.append(f"context {context.id} is accepted without a transfer syntax")
        elif context.transfer_syntaxes[0] not in proposed.transfer_syntaxes:
            faults.append(f"context {context.id} accepts {context.transfer_syntaxes[0]}, offered only "
                          f"{_listing(proposed.transfer_syntaxes, 3)}")
    if faults:
        report(f"A-ASSOCIATE-AC {_listing(faults, 3)}; an accepted context must use one of the transfer "
               "syntaxes proposed for it")


@rule("UL-013", "associate_rq")
def implicit_vr_offered(report: Reporter, event: Event) -> None:
    contexts = event.params.contexts
    offered = {c.abstract_syntax for c in contexts if c.abstract_syntax}
    with_implicit = {c.abstract_syntax for c in contexts if IMPLICIT_VR_LE in c.transfer_syntaxes}
    missing = sorted(offered - with_implicit)
    if missing:
        report(f"A-ASSOCIATE-RQ never offers Implicit VR Little Endian ({IMPLICIT_VR_LE}) for "
               f"{_listing(missing, 3)}; PS3.5 10.1 asks for it in some context of every abstract syntax "
               "(waivers exist for some compressed pixel data)")


# -- fixed part, item order, negotiation sub-items ------------------------------------------


@rule("UL-014", "associate_rq", "associate_ac")
def ae_titles_not_blank(report: Reporter, event: Event) -> None:
    body = event.pdu.body
    if len(body) < 36:
        return
    blank = [name for name, raw in (("Called", body[4:20]), ("Calling", body[20:36])) if raw == b" " * 16]
    if blank:
        report(f"{_pdu_name(event)} {' and '.join(blank)} AE title is 16 spaces; an AE title needs at least "
               "one significant character")


@rule("UL-015", "associate_rq", "associate_ac")
def ac_echoes_reserved_bytes(report: Reporter, event: Event) -> None:
    body = event.pdu.body
    if event.name == "associate_rq":
        event.view.scratch["UL-015"] = bytes(body[4:FIXED_PART])
        return
    sent = event.view.scratch.get("UL-015")
    echoed = bytes(body[4:FIXED_PART])
    if sent is None or len(echoed) < len(sent) or echoed == sent:
        return
    parts = []
    for name, start, end in (("Called AE title", 0, 16), ("Calling AE title", 16, 32),
                             ("reserved bytes 43-74", 32, 64)):
        if sent[start:end] != echoed[start:end]:
            if end <= 32:
                parts.append(f"{name} {echoed[start:end].decode('ascii', 'replace').strip()!r} "
                             f"(RQ {sent[start:end].decode('ascii', 'replace').strip()!r})")
            else:
                parts.append(name)
    report(f"A-ASSOCIATE-AC bytes 11-74 differ from the RQ's in the {', '.join(parts)}; "
           "the AC should return the RQ values unchanged")


@rule("UL-016", "associate_rq", "associate_ac")
def application_context(report: Reporter, event: Event) -> None:
    params = event.params
    count = sum(1 for kind, _ in params.items if kind == 0x10)
    if count != 1:
        if count == 0 and _truncated(params):
            return
        report(f"{_pdu_name(event)} has {count} Application Context items (0x10); exactly one is required")
    elif params.application_context != DICOM_APPLICATION_CONTEXT:
        report(f"{_pdu_name(event)} Application Context Name is {params.application_context!r}, not "
               f"{DICOM_APPLICATION_CONTEXT}", severity="warning")


@rule("UL-017", "associate_rq", "associate_ac")
def items_in_type_order(report: Reporter, event: Event) -> None:
    fault = None
    types = [kind for kind, _ in event.params.items]
    for before, after in zip(types, types[1:], strict=False):
        if after < before:
            fault = f"item 0x{after:02X} follows item 0x{before:02X}"
            break
    if fault is None:
        for item_type, value in _items(event.pdu.body, FIXED_PART):
            if item_type not in (0x20, 0x21) or len(value) < 4:
                continue
            kinds = [kind for kind, _ in _items(value, 4)]
            out_of_order = next(((a, b) for a, b in zip(kinds, kinds[1:], strict=False) if b < a), None)
            if out_of_order:
                fault = (f"in context {value[0]} sub-item 0x{out_of_order[1]:02X} follows "
                         f"0x{out_of_order[0]:02X}")
                break
    if fault:
        report(f"{_pdu_name(event)} {fault}; items must come in increasing item-type order")


@rule("UL-018", "associate_ac")
def ac_answers_only_what_was_asked(report: Reporter, event: Event) -> None:
    accept, request = event.params, event.view.request
    faults = []
    if _count(accept, 0x57):
        faults.append("a SOP Class Common Extended Negotiation item (0x57), which only an RQ may carry")
    if request is not None:
        if _count(accept, 0x53) and not _count(request, 0x53):
            faults.append("an Asynchronous Operations Window (0x53) although the RQ had none")
        proposed_roles = {r.sop_class_uid for r in request.roles}
        extra = [r.sop_class_uid for r in accept.roles if r.sop_class_uid not in proposed_roles]
        if extra:
            faults.append(f"role selection (0x54) for {_listing(extra, 3)} that the RQ did not propose")
        proposed_ext = {e.sop_class_uid for e in request.extended_negotiation}
        extra = [e.sop_class_uid for e in accept.extended_negotiation if e.sop_class_uid not in proposed_ext]
        if extra:
            faults.append(f"extended negotiation (0x56) for {_listing(extra, 3)} that the RQ did not propose")
        if _count(accept, 0x59) and not _count(request, 0x58):
            faults.append("a User Identity answer (0x59) although the RQ had no 0x58")
    if faults:
        report(f"A-ASSOCIATE-AC carries {'; '.join(faults)}")


@rule("UL-019", "associate_ac")
def ac_roles_within_proposal(report: Reporter, event: Event) -> None:
    request = event.view.request
    if request is None:
        return
    proposed = {r.sop_class_uid: r for r in request.roles}
    faults = []
    for answer in event.params.roles:
        asked = proposed.get(answer.sop_class_uid)
        if asked is None:
            continue  # UL-018
        raised = [name for name, given, offered in (("SCU", answer.scu_role, asked.scu_role),
                                                    ("SCP", answer.scp_role, asked.scp_role))
                  if given and not offered]
        if raised:
            faults.append(f"{'/'.join(raised)}-role for {answer.sop_class_uid}")
    if faults:
        report(f"A-ASSOCIATE-AC role selection sets {_listing(faults, 3)} to 1 where the RQ sent 0; "
               "the acceptor may only accept or refuse the roles proposed")


@rule("UL-020", "associate_rq")
def rq_negotiation_items_unique(report: Reporter, event: Event) -> None:
    params = event.params
    faults = []
    windows = len(_count(params, 0x53))
    if windows > 1:
        faults.append(f"{windows} Asynchronous Operations Window items (0x53)")
    roles = [r.sop_class_uid for r in params.roles]
    extended = [e.sop_class_uid for e in params.extended_negotiation]
    for name, uids in (("role selection (0x54)", roles), ("extended negotiation (0x56)", extended)):
        repeated = sorted(uid for uid, n in Counter(uids).items() if n > 1)
        if repeated:
            faults.append(f"several {name} items for {_listing(repeated, 3)}")
    if faults:
        report(f"A-ASSOCIATE-RQ has {'; '.join(faults)}; at most one is allowed (per SOP class)")


@rule("UL-021", "associate_ac")
def async_window_within_proposal(report: Reporter, event: Event) -> None:
    request = event.view.request
    answer = event.params.async_window
    if request is None or request.async_window is None or answer is None:
        return

    def size(value: int) -> float:
        return float("inf") if value == 0 else value  # 0 means unlimited

    faults = [f"{name} {given} (RQ {asked})"
              for name, given, asked in zip(("max operations invoked", "max operations performed"),
                                            answer, request.async_window, strict=True)
              if size(given) > size(asked)]
    if faults:
        report(f"A-ASSOCIATE-AC asynchronous window {' and '.join(faults)} exceeds what the RQ offered "
               "(0 = unlimited)")


@rule("UL-022", "associate_rj")
def reject_values(report: Reporter, event: Event) -> None:
    reject = event.reject
    faults = []
    if reject.result not in REJECT_RESULTS:
        faults.append(f"Result {reject.result} (expected 1 or 2)")
    if reject.source not in REJECT_SOURCES:
        faults.append(f"Source {reject.source} (expected 1-3)")
    elif reject.reason not in REJECT_REASONS[reject.source]:
        allowed = ", ".join(str(r) for r in REJECT_REASONS[reject.source])
        faults.append(f"Reason {reject.reason} for source {reject.source} (defined: {allowed})")
    if faults:
        report(f"A-ASSOCIATE-RJ has {' and '.join(faults)}, a value PS3.8 9.3.4 does not define")


@rule("UL-023", "abort")
def abort_values(report: Reporter, event: Event) -> None:
    abort = event.abort
    if abort.source not in (0, 2):
        report(f"A-ABORT Source is {abort.source}; only 0 (service-user) and 2 (service-provider) "
               "are defined")
    elif abort.source == 2 and abort.reason not in ABORT_REASONS:
        report(f"A-ABORT from the service-provider has Reason {abort.reason}; defined reasons are "
               f"{', '.join(str(r) for r in ABORT_REASONS)}")


# -- sequence, release, abort ----------------------------------------------------------------


@rule("UL-024", "pdu", "release_rq", "problem")
def pdu_in_sequence(report: Reporter, event: Event) -> None:
    memory = event.view.scratch.setdefault("UL-024", {"hole": False, "releasers": set(), "told": set()})
    if event.name == "problem":
        # After a hole the observer may have missed the PDU that changed the state.
        memory["hole"] = memory["hole"] or event.problem.code == "CAPTURE-HOLE"
        return
    if event.name == "release_rq":
        memory["releasers"].add(event.sender)
        return
    state, pdu, sender = event.view.state, event.pdu, event.sender
    if memory["hole"] or state == "idle" or sender not in SIDES or (sender, state) in memory["told"]:
        # idle: the A-ASSOCIATE-RQ itself, or a capture that began mid-association;
        # told: one finding per side and state, not one per PDU of a long transfer.
        return
    if state == "requested" and sender == "requestor" and pdu.type != A_ABORT:
        memory["told"].add((sender, state))
        report(f"The requestor sent {pdu.name} before any A-ASSOCIATE-AC or -RJ; until then it may send "
               "only A-ABORT")
    elif pdu.type == P_DATA_TF and state != "established":
        if state == "release-requested" and sender not in memory["releasers"]:
            return  # the side that received A-RELEASE-RQ may still send data (state Sta8)
        memory["told"].add((sender, state))
        when = {"requested": "before the association was accepted",
                "release-requested": "after its own A-RELEASE-RQ",
                "released": "after the association was released",
                "rejected": "after the association was rejected",
                "aborted": "after an A-ABORT"}.get(state, f"in state {state}")
        report(f"The {sender} sent P-DATA-TF {when}; data may flow only on an established association")


@rule("UL-035", "release_rq")
def release_by_requestor_only(report: Reporter, event: Event) -> None:
    if event.sender == "acceptor":
        report("The association acceptor sent A-RELEASE-RQ; only the requestor may start an orderly release")


@rule("UL-036", "release_rq")
def release_after_own_operations(report: Reporter, event: Event) -> None:
    correlation = event.view.correlation
    if event.sender != "requestor" or correlation is None:
        return
    # In the order they were sent (Message IDs may be missing, so no sorting).
    gets = [mid for (invoker, mid) in correlation.outstanding if invoker == "requestor"]
    stores = [mid for (sender, mid) in correlation.stores if sender == "requestor"]
    if not gets and not stores:
        return
    waiting = []
    if gets:
        waiting.append(f"C-GET {_listing(gets)} without a final response")
    if stores:
        waiting.append(f"C-STORE {_listing(stores)} without a response")
    report(f"The requestor sent A-RELEASE-RQ with its {' and '.join(waiting)}; it may release only once "
           "every operation it invoked is answered",
           message_id=gets[0] if gets and isinstance(gets[0], int) else None)


@rule("UL-037", "abort", "association_end")
def abort_with_get_outstanding(report: Reporter, event: Event) -> None:
    scratch = event.view.scratch
    if event.name == "abort":
        scratch.setdefault("UL-037", (event.sender, event.frame, event.time))
        return
    # Judged at the end: messages completed in the abort's own TCP segment are correlated
    # only after its UL events, and a C-GET still open now was open at the abort.
    seen = scratch.get("UL-037")
    correlation = event.view.correlation
    if seen is None or correlation is None:
        return
    sender, frame, time = seen
    for (invoker, message_id), operation in list(correlation.outstanding.items()):
        role = "C-GET SCU" if sender == invoker else "C-GET SCP"
        report(f"A-ABORT from the {sender or 'unknown side'} ended the association while C-GET {message_id} "
               f"had no final response ({len(operation.pending_responses)} Pending responses and "
               f"{len(operation.sub_operations)} sub-operations seen); the operation is incomplete and the "
               "fate of its sub-operations is undefined",
               sender=sender or None, frame=frame, time=time, message_id=message_id, role=role)


# -- UIDs in items ---------------------------------------------------------------------------


def _uid_fault(raw: bytes) -> str | None:
    if not raw:
        return "is empty"
    if raw[-1:] in (b"\x00", b" ") or raw[:1] in (b"\x00", b" "):
        return "is padded (a NUL or space at its edge)"
    if len(raw) > 64:
        return f"is {len(raw)} characters long (at most 64)"
    text = raw.decode("ascii", "replace")
    if not _UID_SHAPE.fullmatch(text):
        return "has characters other than digits and dots"
    components = text.split(".")
    if "" in components:
        return "has an empty component"
    if any(len(c) > 1 and c[0] == "0" for c in components):
        return "has a component with a leading zero"
    return None


def _sop_class_uids(sub_type: int, raw: bytes) -> Iterator[tuple[str, bytes]]:
    first = _prefixed(raw, 0)
    if first is None:
        return
    name = {0x54: "role selection", 0x56: "extended negotiation", 0x57: "common extended negotiation"}
    yield f"{name[sub_type]} SOP class", first[0]
    if sub_type != 0x57:
        return
    service = _prefixed(raw, first[1])
    if service is None:
        return
    yield "common extended negotiation service class", service[0]
    related = _prefixed(raw, service[1])
    offset = 0
    while related is not None and offset < len(related[0]):
        entry = _prefixed(related[0], offset)
        if entry is None:
            return
        yield "related general SOP class", entry[0]
        offset = entry[1]


def _association_uids(body: bytes) -> Iterator[tuple[str, bytes]]:
    for item_type, value in _items(body, FIXED_PART):
        if item_type == 0x10:
            yield "application context", value
        elif item_type in (0x20, 0x21) and len(value) >= 4:
            # An AC transfer syntax means nothing (and is not tested) unless the context is accepted.
            accepted = item_type == 0x20 or value[2] == 0
            for sub_type, raw in _items(value, 4):
                if sub_type == 0x30:
                    yield f"abstract syntax of context {value[0]}", raw
                elif sub_type == 0x40 and accepted:
                    yield f"transfer syntax of context {value[0]}", raw
        elif item_type == 0x50:
            for sub_type, raw in _items(value):
                if sub_type == 0x52:
                    yield "implementation class UID", raw
                elif sub_type in (0x54, 0x56, 0x57):
                    yield from _sop_class_uids(sub_type, raw)


@rule("UL-034", "associate_rq", "associate_ac")
def item_uids_well_formed(report: Reporter, event: Event) -> None:
    faults = []
    for where, raw in _association_uids(event.pdu.body):
        fault = _uid_fault(raw)
        if fault:
            faults.append(f"{where} {raw.decode('ascii', 'replace')!r} {fault}")
    if faults:
        report(f"{_pdu_name(event)}: {_listing(faults, 3)}; UIDs in association items are dotted decimal "
               "without padding, leading zeros or empty components, at most 64 characters")


# -- P-DATA-TF and PDVs ------------------------------------------------------------------------


Note = Callable[[str, str], None]


@dataclass(slots=True)
class _Direction:
    """Where the current message of one direction stands, as far as the observer knows."""

    phase: str  # "idle" (between messages), "command", "data", or "unknown"
    context_id: int | None = None
    command: bytearray = field(default_factory=bytearray)
    whole: bool = True  # command bytes kept from its first fragment on
    data_set_type: int | None = None
    data_fragments: int = 0
    last_data_set_type: int | None = None  # (0000,0800) of the last complete command set
    reported: set[str] = field(default_factory=set)  # rules already reported for this message
    next_offset: int | None = None  # stream offset where the next PDU should begin
    finished: bool = False  # a message ended inside the current PDU

    def begin(self, context_id: int, fragment) -> None:
        self.phase, self.context_id, self.whole = "command", context_id, True
        self.command = bytearray(fragment[:MAX_COMMAND_KEPT])
        self.reported = set()

    def command_fragment(self, context_id: int, fragment, is_last: bool, note: Note) -> bool:
        """Follow a command PDV; True if it starts a new message."""
        starts = bytes(fragment[:8]) == COMMAND_START
        new_message = True
        if self.phase == "data":
            if self.data_fragments == 0:
                note("UL-033", f"(0000,0800) = 0x{self.data_set_type:04X} announced a data set, but the "
                               f"next fragment (context {context_id}) is a command")
            else:
                note("UL-030", f"a command fragment on context {context_id} starts a new message after "
                               f"{self.data_fragments} fragments of the previous data set, whose last "
                               "fragment never came")
            self.begin(context_id, fragment)
        elif self.phase == "command" and starts:
            # A fragment that starts with (0000,0000) again is a new command set, not a continuation.
            note("UL-030", f"a new command set begins on context {context_id} before the command set "
                           f"on context {self.context_id} is complete")
            self.begin(context_id, fragment)
        elif self.phase == "command":
            new_message = False
            if context_id != self.context_id:
                note("UL-031", f"a command fragment on context {context_id} continues a command set "
                               f"begun on context {self.context_id}")
            if len(self.command) + len(fragment) <= MAX_COMMAND_KEPT:
                self.command += fragment
            else:
                self.whole = False
        elif self.phase == "idle" or starts:
            self.begin(context_id, fragment)
        else:
            new_message = False  # the middle of a command seen from an unknown state
        if is_last and self.phase == "command":
            found = _data_set_type(self.command) if self.whole else None
            self.last_data_set_type = found
            if found is None:
                self.phase = "unknown"
            elif found == NO_DATA_SET:
                self.phase, self.finished = "idle", True
            else:
                self.phase, self.data_set_type, self.data_fragments = "data", found, 0
        return new_message

    def data_fragment(self, context_id: int, is_last: bool, note: Note) -> None:
        if self.phase == "command":
            note("UL-033", f"a data fragment on context {context_id} arrives before the last fragment of "
                           "the command set")
        elif self.phase == "idle":
            if self.last_data_set_type == NO_DATA_SET:
                note("UL-033", f"a data fragment on context {context_id} follows a command set whose "
                               "(0000,0800) is 0x0101 (no data set)")
            else:
                note("UL-033", f"a data fragment on context {context_id} arrives with no command set "
                               "before it")
            self.phase = "unknown"  # stay quiet until the next command
        elif self.phase == "data":
            if context_id != self.context_id:
                note("UL-031", f"a data fragment on context {context_id} belongs to a message whose "
                               f"command set used context {self.context_id}")
            self.data_fragments += 1
            if is_last:
                self.phase, self.finished = "idle", True
        elif is_last:
            self.phase = "idle"  # the end of a data set begun before we could follow


def _data_set_type(command: bytes) -> int | None:
    """(0000,0800) from Implicit VR LE command bytes, or None."""
    offset = 0
    while offset + 8 <= len(command):
        group, element, length = unpack_from("<HHI", command, offset)
        if (group, element) == (0, 0x0800):
            return unpack_from("<H", command, offset + 8)[0] if length == 2 and \
                offset + 10 <= len(command) else None
        if group != 0:
            return None
        offset += 8 + length
    return None


def _direction(event: Event, memory: dict) -> _Direction:
    side = memory["sides"].get(event.sender)
    if side is None:
        known_start = event.view.request is not None and not event.view.mid_stream
        side = memory["sides"][event.sender] = _Direction("idle" if known_start else "unknown")
    pdu = event.pdu
    if side.next_offset is not None and pdu.offset != side.next_offset:
        side.phase = "unknown"  # a hole, or other PDUs between: the message state is lost
    side.next_offset = pdu.offset + 6 + pdu.length
    side.finished = False
    return side


def _pdv_findings(event: Event) -> dict[str, list[str]]:
    """Follow this PDU's PDVs once; what each PDV rule (and UL-004) should report for it."""
    memory = event.view.scratch.setdefault("UL-025..033", {"pdu": None, "out": {}, "sides": {}})
    if memory["pdu"] is event.pdu:
        return memory["out"]
    out: dict[str, list[str]] = {}
    memory["pdu"], memory["out"] = event.pdu, out
    if event.sender not in SIDES:
        return out  # mid-stream, before the sides are known
    view, pdu = event.view, event.pdu
    side = _direction(event, memory)

    def note(rule_id: str, text: str) -> None:
        if rule_id not in side.reported:  # once per message
            side.reported.add(rule_id)
            out.setdefault(rule_id, []).append(text)

    receiver = _other(event.sender)
    limit = view.max_length_received_by(receiver)
    oversized = bool(limit) and pdu.length > limit
    previous_is_command = None
    for pdv in event.pdvs:
        context_id, control, fragment = pdv.context_id, pdv.control, pdv.data
        is_command, is_last = bool(control & 1), bool(control & 2)
        if side.finished:
            note("UL-030", "one P-DATA-TF carries PDVs of two messages: a fragment follows the end of "
                           "the previous message in the same PDU")
            side.finished = False
        if is_command:
            new_message = side.command_fragment(context_id, fragment, is_last, note)
        else:
            new_message = False
            side.data_fragment(context_id, is_last, note)
        # Facts about the PDV itself, noted against the message it belongs to.
        if oversized:
            note("UL-004", f"P-DATA-TF PDU-length {pdu.length} exceeds the Maximum Length {limit} "
                           f"the {receiver} announced in its 0x51 sub-item (DCMTK rejects such "
                           "a PDU, pynetdicom accepts it)")
            oversized = False
        if view.is_accepted(context_id) is False:
            note("UL-026", f"a PDV uses presentation context {context_id}, which the A-ASSOCIATE-AC did not "
                           "accept")
        if len(fragment) == 0:
            note("UL-028", f"a PDV on context {context_id} has item-length 2 (MCH 0x{control:02X} and an "
                           "empty fragment)")
        elif len(fragment) % 2:
            note("UL-027", f"a PDV fragment on context {context_id} is {len(fragment)} bytes long "
                           f"(item-length {len(fragment) + 2}); fragments must have even length")
        if control & 0xFC:
            note("UL-029", f"a PDV message control header is 0x{control:02X}; bits 2-7 must be zero")
        if previous_is_command is is_command and not new_message:
            kind = "command" if is_command else "data"
            note("UL-032", f"two adjacent {kind} PDVs in one P-DATA-TF (context {context_id}); one PDV "
                           "of each type per PDU is strongly recommended")
        previous_is_command = is_command
    if event.fault:
        side.phase = "unknown"  # the PDVs after the fault are lost
    return out


def _report_pdv_rule(rule_id: str):
    def check(report: Reporter, event: Event) -> None:
        for text in _pdv_findings(event).get(rule_id, ()):
            report(text[0].upper() + text[1:])

    check.__name__ = f"pdv_rule_{rule_id.replace('-', '_')}"
    return check


@rule("UL-025", "p_data")
def pdv_items_fit(report: Reporter, event: Event) -> None:
    if event.fault:
        report(f"P-DATA-TF of PDU-length {event.pdu.length}: {event.fault}; it must hold one or more PDV "
               "items of item-length 2 or more, each within the PDU")


for _rule_id in ("UL-026", "UL-027", "UL-028", "UL-029", "UL-030", "UL-031", "UL-032", "UL-033"):
    rule(_rule_id, "p_data")(_report_pdv_rule(_rule_id))
