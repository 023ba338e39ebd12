"""UL rules on the A-ASSOCIATE-RQ/AC contents: user information, presentation contexts,
item order, negotiation sub-items, reject and abort values, UIDs in items (catalog 5.1).

They read the decoded :class:`~trace_analyzer.pdu_items.AssociateParameters` and, where the
record keeps too little (item order, raw UIDs, reserved bytes), re-walk the raw PDU body.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from ..pdu_items import ABORT_REASONS, REJECT_REASONS, REJECT_RESULTS, REJECT_SOURCES
from .engine import Event, Reporter, rule
from .ul import FIXED_PART, _count, _items, _listing, _pdu_name, _prefixed, _truncated

DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
_UID_SHAPE = re.compile(r"[0-9.]*")


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


def _odd_bytes(raw: bytes) -> list[str]:
    """The bytes an AE title may not hold (PS3.5 6.2: default repertoire, no control
    characters, no backslash), each as it is shown: ``\\x00``, ``\\xc1``, ``\\\\``."""
    return list(dict.fromkeys(f"\\x{b:02x}" if b != 0x5C else "\\\\" for b in raw
                              if b < 0x20 or b >= 0x7F or b == 0x5C))


@rule("TA-UL-002", "associate_rq")
def ae_titles_in_repertoire(report: Reporter, event: Event) -> None:
    # The requestor chose both titles; an AC only echoes them (UL-015 judges the echo).
    body = event.pdu.body
    if len(body) < 36:
        return
    for name, raw in (("Called", bytes(body[4:20])), ("Calling", bytes(body[20:36]))):
        odd = _odd_bytes(raw)
        if odd:
            report(f"{_pdu_name(event)} {name} AE title holds {', '.join(odd)}: an AE title is characters "
                   "of the default repertoire without control characters or backslash (PS3.5 6.2); "
                   "peers may compare it differently (padding with NULs, not spaces, is one such case)")


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
