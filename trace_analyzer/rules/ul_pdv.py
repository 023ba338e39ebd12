"""UL rules on P-DATA-TF PDUs and their PDVs: maximum length, PDV framing, fragments (catalog 5.1, 4.5-4.7).

The PDV checks (UL-025..UL-033) and UL-004 share one small per-direction tracker
of where each message stands (command, data set, between messages); every rule
calls it and it runs once per PDU, so switching one rule off does not blind the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from struct import unpack_from

from ..pdu import P_DATA_TF
from .engine import Event, Reporter, rules
from .ul import SIDES, _other

#: The first command fragment of a DIMSE message starts with (0000,0000) UL, length 4.
COMMAND_START = b"\x00\x00\x00\x00\x04\x00\x00\x00"
#: A command set is a few hundred bytes; past this we stop keeping its bytes.
MAX_COMMAND_KEPT = 64 * 1024
NO_DATA_SET = 0x0101



# -- P-DATA-TF and PDVs ------------------------------------------------------------------------


Note = Callable[..., None]  # note(rule_id, text, frame=None, time=None)


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


def _new_memory() -> dict:
    return {"pdu": None, "out": {}, "sides": {}}


def _note_oversized(note: Note, pdu, limit: int, receiver: str) -> None:
    # Known from the header alone: reported at the frame that carried it, even if the rest
    # of the PDU never arrives (DCMTK aborts on reading such a header).
    note("UL-004", f"P-DATA-TF PDU-length {pdu.length} exceeds the Maximum Length {limit} "
                   f"the {receiver} announced in its 0x51 sub-item (DCMTK rejects such "
                   "a PDU, pynetdicom accepts it)"
                   + ("; the rest of the PDU never arrived" if not pdu.complete else ""),
         pdu.first_frame, pdu.first_time)


def _pdv_findings(event: Event) -> dict[str, list[tuple[str, int | None, float | None]]]:
    """Follow this PDU's PDVs once; what each PDV rule (and UL-004) should report for it:
    (text, frame and time, or None for the event's own)."""
    memory = event.view.memory("UL-025..033", _new_memory)
    if memory["pdu"] is event.pdu:
        return memory["out"]
    out: dict[str, list[tuple[str, int | None, float | None]]] = {}
    memory["pdu"], memory["out"] = event.pdu, out
    if event.sender not in SIDES:
        return out  # mid-stream, before the sides are known
    view, pdu = event.view, event.pdu
    side = _direction(event, memory)

    def note(rule_id: str, text: str, frame: int | None = None, time: float | None = None) -> None:
        if rule_id not in side.reported:  # once per message
            side.reported.add(rule_id)
            out.setdefault(rule_id, []).append((text, frame, time))

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
            _note_oversized(note, pdu, limit, receiver)
            oversized = False
        if view.is_accepted(context_id) is False:
            note("UL-026", f"a PDV uses presentation context {context_id}, which the A-ASSOCIATE-AC did not "
                           "accept")
        if pdv.length == 0:
            note("UL-028", f"a PDV on context {context_id} has item-length 2 (MCH 0x{control:02X} and an "
                           "empty fragment)")
        elif pdv.length % 2:
            note("UL-027", f"a PDV fragment on context {context_id} is {pdv.length} bytes long "
                           f"(item-length {pdv.length + 2}); fragments must have even length")
        if control & 0xFC:
            note("UL-029", f"a PDV message control header is 0x{control:02X}; bits 2-7 must be zero")
        if previous_is_command is is_command and not new_message:
            kind = "command" if is_command else "data"
            note("UL-032", f"two adjacent {kind} PDVs in one P-DATA-TF (context {context_id}); one PDV "
                           "of each type per PDU is strongly recommended")
        previous_is_command = is_command
    if oversized:  # a PDU cut short before its first PDV header
        _note_oversized(note, pdu, limit, receiver)
    if event.fault:
        side.phase = "unknown"  # the PDVs after the fault are lost
    return out


def _follow_run(event: Event) -> None:
    """PDUs counted in a run repeat the last PDU framed: same message, same findings (already
    noted once per message); only where the next PDU begins and the fragment count move."""
    memory = event.view.memory("UL-025..033", _new_memory)
    if memory["pdu"] is event.run:
        return
    memory["pdu"], memory["out"] = event.run, {}
    side = memory["sides"].get(event.sender)
    if side is not None:
        if side.next_offset is not None and event.run.first_offset != side.next_offset:
            side.phase = "unknown"  # something came between: as _direction() judges a gap
        side.next_offset = event.run.next_offset
        side.data_fragments += event.run.count
        side.finished = False


#: Judged together, in one walk over each PDU's PDVs (UL-004 too, so that a message sent
#: in many oversized PDUs gives one finding), and reported in this order.
PDV_RULES = ("UL-004", "UL-025", "UL-026", "UL-027", "UL-028", "UL-029", "UL-030", "UL-031", "UL-032",
             "UL-033")


@rules(PDV_RULES, "p_data", "p_data_run", "pdu_cut")
def pdv_rules(report: Reporter, event: Event) -> None:
    if event.run is not None:
        _follow_run(event)
        return
    if event.pdu.type != P_DATA_TF:
        return  # a cut A-ASSOCIATE or the like
    found = _pdv_findings(event)
    if not found and not event.fault:
        return
    for rule_id in PDV_RULES:
        if rule_id == "UL-025":
            if event.fault and report.aim(rule_id):
                report(f"P-DATA-TF of PDU-length {event.pdu.length}: {event.fault}; it must hold one or "
                       "more PDV items of item-length 2 or more, each within the PDU")
            continue
        notes = found.get(rule_id)
        if notes and report.aim(rule_id):
            for text, frame, time in notes:
                report(text[0].upper() + text[1:], frame=frame, time=time)
