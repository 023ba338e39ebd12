"""CMD rules: the encoding of every command set, whatever the message (catalog 5.2).

Checks run on the "message" event and read the decoded elements
(:class:`~trace_analyzer.commandset.CommandSet`): tag, VR, wire length and
value of each element, in wire order. Only where the decoder had to stop
(an element running past the end, so nothing after it is known) do they read
its ``problems`` text, because then there is no element to look at.
"""

from __future__ import annotations

from collections.abc import Callable

from pydicom.datadict import DicomDictionary

from ..commandset import COMMAND_NAMES, CommandElement, CommandSet, DecodingStop, Layout
from .engine import Event, Reporter, rule

#: Retired group 0000 elements (PS3.7 E.2), as pydicom's dictionary marks them.
RETIRED_COMMAND_TAGS: frozenset[int] = frozenset(
    tag for tag, entry in DicomDictionary.items() if tag >> 16 == 0 and entry[3] == "Retired")
_VM = {tag: entry[1] for tag, entry in DicomDictionary.items() if tag >> 16 == 0}

#: Value sizes fixed by the VR (PS3.5 Table 6.2-1), per value.
_FIXED_SIZE = {"US": 2, "UL": 4, "AT": 4}
#: Maximum value lengths of the string VRs used in command sets (PS3.5 Table 6.2-1).
#: LO is left to GET-RSP-019, which owns the Error Comment length.
_MAX_LENGTH = {"UI": 64, "AE": 16, "SH": 16, "CS": 16}

_VRS = frozenset((
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
    "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US",
    "UT", "UV",
))

# The decoder's words when it had to stop (commandset.decode_command_set).


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _listing(items: list[str], shown: int = 16) -> str:
    """Distinct items, the first ``shown`` of them and how many more (thousands may come)."""
    distinct = list(dict.fromkeys(items))
    more = f" and {len(distinct) - shown} more" if len(distinct) > shown else ""
    return ", ".join(distinct[:shown]) + more


def decoding_stopped(command: CommandSet) -> DecodingStop | None:
    """Where the decoder stopped before the end of the command set, else None."""
    return command.stopped


def _message_id(command: CommandSet) -> int | None:
    for keyword in ("MessageID", "MessageIDBeingRespondedTo"):
        value = command.get(keyword)
        if isinstance(value, int):
            return value
    return None


def _report(report: Reporter, event: Event, detail: str) -> None:
    # Non-C-GET messages (C-ECHO, C-FIND ...) have no primitive to take the Message ID from.
    message_id = None if event.primitive is not None else _message_id(event.message.command)
    report(detail, message_id=message_id)


def _name(event: Event) -> str:
    return event.message.command.command_name


def _judged_by_layout(check: Callable[[Reporter, Event], bool]) -> Callable[[Reporter, Event], None]:
    """For a check whose verdict depends only on the tags, VRs and lengths of the elements
    (and on a group length that fits them): once it found nothing in a command set of a
    precompiled layout (commandset.Layout), it finds nothing in any other of that layout,
    which is then not looked at again. ``check`` returns True when it reported."""
    silent: set[Layout] = set()  # bounded: commandset keeps at most MAX_LAYOUTS layouts

    def run(report: Reporter, event: Event) -> None:
        layout = event.message.command.layout
        if layout is None:
            check(report, event)
        elif layout not in silent and not check(report, event):
            silent.add(layout)

    run.__name__ = run.__qualname__ = check.__name__
    run.__doc__ = check.__doc__
    return run


@rule("CMD-001", "message")
def implicit_vr_little_endian(report: Reporter, event: Event) -> None:
    command: CommandSet = event.message.command
    stopped = decoding_stopped(command)
    if stopped is None:
        return
    if stopped.tag is not None:
        length = stopped.declared_length or 0
        # Read as Implicit VR, an explicit header's VR and 16-bit length become the low and
        # high halves of the 32-bit length: two upper-case letters in the low half give it away.
        letters = bytes((length & 0xFF, (length >> 8) & 0xFF)).decode("latin-1")
        where = f"Command set element {_tag(stopped.tag)} at offset {stopped.offset}"
        if letters in _VRS:
            _report(report, event, f"{where} is followed by the VR '{letters}', so the command set is "
                    "Explicit VR; a command set must be Implicit VR Little Endian")
            return
        _report(report, event, f"{where} declares {length} bytes but only {stopped.remaining} remain; the "
                "command set does not parse as Implicit VR Little Endian")
        return
    _report(report, event, f"Command set ends with {stopped.remaining} bytes at offset {stopped.offset} "
            "that are too short for an element header; the command set does not parse as Implicit VR "
            "Little Endian")


@rule("CMD-002", "message")
@_judged_by_layout
def ascending_unique_tags(report: Reporter, event: Event) -> bool:
    out_of_order: list[str] = []
    repeated: list[str] = []
    seen: set[int] = set()
    previous = -1
    for element in event.message.command.elements:
        if element.tag in seen:
            if _tag(element.tag) not in repeated:
                repeated.append(_tag(element.tag))
        elif element.tag < previous:
            out_of_order.append(f"{_tag(element.tag)} after {_tag(previous)}")
        seen.add(element.tag)
        previous = max(previous, element.tag)
    if not out_of_order and not repeated:
        return False
    parts = []
    if out_of_order:
        parts.append("out of ascending order: " + ", ".join(out_of_order))
    if repeated:
        parts.append("repeated: " + ", ".join(repeated))
    _report(report, event, f"{_name(event)} command elements {'; '.join(parts)}; command elements must "
            "appear once each, in ascending tag order")
    return True


@rule("CMD-003", "message")
@_judged_by_layout
def group_0000_only(report: Reporter, event: Event) -> bool:
    outside = [_tag(e.tag) for e in event.message.command.elements if e.tag >> 16 != 0]
    if outside:
        shown = ", ".join(dict.fromkeys(outside))
        _report(report, event, f"{_name(event)} command set holds {shown} outside group 0000; a command "
                "set may contain only group 0000 elements")
        return True
    return False


@rule("CMD-004", "message")
@_judged_by_layout
def command_group_length(report: Reporter, event: Event) -> bool:
    command: CommandSet = event.message.command
    elements = command.elements
    index = next((i for i, e in enumerate(elements) if e.tag == 0), None)
    if index is None:
        if elements or decoding_stopped(command) is None:
            _report(report, event, f"{_name(event)} has no Command Group Length (0000,0000); every command "
                    "set must begin with it")
            return True
        return False
    value = elements[index].value
    if not isinstance(value, int) or decoding_stopped(command) is not None:
        return False  # CMD-005 / CMD-001 report the element or the set that cannot be measured
    following = sum(8 + e.length for e in elements[index + 1:])
    if value != following:
        _report(report, event, f"{_name(event)} Command Group Length (0000,0000) is {value} but {following} "
                "command bytes follow it; it must count the bytes after its own value")
        return True
    return False


def _length_fault(element: CommandElement) -> str | None:
    length = element.length
    if length % 2:
        return f"{element.tag_str} has odd length {length}"
    size = _FIXED_SIZE.get(element.vr)
    if size is not None:
        single = _VM.get(element.tag, "1") == "1"
        if (single and length != size) or length % size:
            expected = f"{size}" if single else f"a multiple of {size}"
            return f"{element.tag_str} {element.vr} has length {length}, expected {expected}"
    limit = _MAX_LENGTH.get(element.vr)
    if limit is not None and length > limit:
        return f"{element.tag_str} {element.vr} has length {length}, more than the VR's {limit}"
    return None


@rule("CMD-005", "message")
@_judged_by_layout
def value_lengths(report: Reporter, event: Event) -> bool:
    faults = [f for f in map(_length_fault, event.message.command.elements) if f]
    if faults:
        _report(report, event, f"{_name(event)} value lengths do not fit: {'; '.join(faults)}; values "
                "must have even length and the size their VR requires")
        return True
    return False


@rule("CMD-006", "message")
@_judged_by_layout
def retired_or_private(report: Reporter, event: Event) -> bool:
    retired, unknown = [], []
    for element in event.message.command.elements:
        if element.tag >> 16 != 0:
            continue  # CMD-003 reports elements outside group 0000
        if element.tag in RETIRED_COMMAND_TAGS:
            retired.append(f"{element.tag_str} {element.keyword}")
        elif not element.keyword:
            unknown.append(element.tag_str)
    if not retired and not unknown:
        return False
    parts = []
    if retired:
        parts.append("retired " + _listing(retired))
    if unknown:
        parts.append("private or undefined " + _listing(unknown))
    _report(report, event, f"{_name(event)} carries {' and '.join(parts)}; PS3.7 retires these command "
            "elements and a receiver must not depend on them")
    return True


@rule("CMD-007", "message")
def command_field_defined(report: Reporter, event: Event) -> None:
    command: CommandSet = event.message.command
    element = command.element("CommandField")
    if element is None:
        if decoding_stopped(command) is None:
            _report(report, event, "Command set has no Command Field (0000,0100), so it names no DIMSE "
                    "command; Table E.1-1 values are required")
        return
    if isinstance(element.value, int) and element.value not in COMMAND_NAMES:
        _report(report, event, f"Command Field (0000,0100) is 0x{element.value:04X}, which is not a "
                "command of PS3.7 Table E.1-1")
