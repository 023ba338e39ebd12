"""UL rules on PDUs as such: type, length, protocol version, the order of PDUs, release and
abort (catalog 5.1; facts in 4); and the helpers the other UL modules share.

The rules on A-ASSOCIATE contents are in :mod:`.ul_associate`, those on P-DATA-TF and
PDVs in :mod:`.ul_pdv`.
"""

from __future__ import annotations

from collections.abc import Iterator
from struct import unpack_from

from ..operations import message_id_text
from ..pdu import A_ABORT, A_ASSOCIATE_RJ, A_RELEASE_RP, A_RELEASE_RQ, P_DATA_TF
from .engine import Event, Reporter, rule

SIDES = ("requestor", "acceptor")
#: The A-ASSOCIATE-RQ/AC fixed part after the PDU header (bytes 7-74); items follow.
FIXED_PART = 68


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


@rule("UL-002", "pdu", "pdu_cut")
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


# -- sequence, release, abort ----------------------------------------------------------------


@rule("UL-024", "pdu", "release_rq", "abort", "problem")
def pdu_in_sequence(report: Reporter, event: Event) -> None:
    memory = event.view.memory("UL-024", lambda: {"hole": False, "releasers": set(), "aborters": set(),
                                                  "told": set()})
    if event.name == "problem":
        # After a hole the observer may have missed the PDU that changed the state.
        memory["hole"] = memory["hole"] or event.problem.code == "CAPTURE-HOLE"
        return
    if event.name in ("release_rq", "abort"):
        memory["releasers" if event.name == "release_rq" else "aborters"].add(event.sender)
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
        if state == "aborted" and sender not in memory["aborters"]:
            # Sent before it could know of the other side's A-ABORT: in flight, and simply
            # ignored by the aborter (PS3.8 Table 9-10, Sta13 AA-6); no fault of the sender.
            return
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
        report(f"A-ABORT from the {sender or 'unknown side'} ended the association while C-GET "
               f"{message_id_text(message_id)} "
               f"had no final response ({len(operation.pending_responses)} Pending responses and "
               f"{len(operation.sub_operations)} sub-operations seen); the operation is incomplete and the "
               "fate of its sub-operations is undefined",
               sender=sender or None, frame=frame, time=time, message_id=message_id, role=role)


@rule("TA-UL-001", "association_end")
def closed_without_release(report: Reporter, event: Event) -> None:
    record = event.view.record
    if record.accept is None or record.closed_by is None or record.released or record.abort is not None:
        return  # never established, released, aborted, or the capture simply ended
    asked = " after an A-RELEASE-RQ that was never answered" if record.release_requested else ""
    report(f"The {record.closed_by} closed the TCP connection of an established association{asked}, "
           "with no completed A-RELEASE and no A-ABORT; the transport may be released only after "
           "A-RELEASE or A-ABORT (PS3.8 7.2, 9.1.4), and the other side sees an A-P-ABORT",
           sender=record.closed_by, frame=record.close_frame, time=record.close_time)
