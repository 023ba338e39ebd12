"""DIMSE command set decoding (PS3.7 6.3.1, Annex E).

Layer: DIMSE. Fed the bytes of one complete command set, gives back a
:class:`CommandSet` that lists every element that was on the wire, in wire
order, with its raw length. Command sets are always Implicit VR Little
Endian, so this small decoder replaces pydicom on the hot path; pydicom's
data dictionary still supplies the VR and keyword of each group 0000 tag.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import DicomDictionary

_HEADER = struct.Struct("<HHI")

#: Command Field values (PS3.7 Table E.1-1) and their message names.
COMMAND_NAMES: dict[int, str] = {
    0x0001: "C-STORE-RQ", 0x8001: "C-STORE-RSP",
    0x0010: "C-GET-RQ", 0x8010: "C-GET-RSP",
    0x0020: "C-FIND-RQ", 0x8020: "C-FIND-RSP",
    0x0021: "C-MOVE-RQ", 0x8021: "C-MOVE-RSP",
    0x0030: "C-ECHO-RQ", 0x8030: "C-ECHO-RSP",
    0x0100: "N-EVENT-REPORT-RQ", 0x8100: "N-EVENT-REPORT-RSP",
    0x0110: "N-GET-RQ", 0x8110: "N-GET-RSP",
    0x0120: "N-SET-RQ", 0x8120: "N-SET-RSP",
    0x0130: "N-ACTION-RQ", 0x8130: "N-ACTION-RSP",
    0x0140: "N-CREATE-RQ", 0x8140: "N-CREATE-RSP",
    0x0150: "N-DELETE-RQ", 0x8150: "N-DELETE-RSP",
    0x0FFF: "C-CANCEL-RQ",
}

C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_GET_RQ, C_GET_RSP = 0x0010, 0x8010
C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
C_MOVE_RQ, C_MOVE_RSP = 0x0021, 0x8021
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
C_CANCEL_RQ = 0x0FFF
NO_DATA_SET = 0x0101


def _command_dictionary() -> dict[int, tuple[str, str]]:
    # Every group 0000 entry, the retired ACR-NEMA ones at (0000,4000) and
    # above included, so that they are named rather than called unknown.
    # Entry layout: (VR, VM, name, retired, keyword).
    return {tag: (entry[0], entry[4]) for tag, entry in DicomDictionary.items() if tag >> 16 == 0}


_DICTIONARY = _command_dictionary()


class CommandSetError(ValueError):
    """A command set that cannot be decoded; carries what was wrong."""


@dataclass(frozen=True, slots=True)
class CommandElement:
    """One element as it was on the wire."""

    tag: int  # (group << 16) | element; group is 0000 when well formed
    keyword: str  # pydicom keyword, or "" for an unknown tag
    vr: str  # VR from the command dictionary, "UN" when unknown
    length: int  # the value length field as sent
    value: Any  # int, str or list[int] for AT; raw bytes when undecodable

    @property
    def tag_str(self) -> str:
        return f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"


@dataclass(frozen=True, slots=True)
class DecodingStop:
    """Where and why decoding stopped before the end of the command set."""

    offset: int  # of the element header (or of the short tail)
    remaining: int  # bytes after the header (or in the short tail)
    tag: int | None = None  # None: the tail was too short for an element header
    declared_length: int | None = None  # the length that ran past the end


@dataclass(slots=True)
class CommandSet:
    """All elements of one command set, in wire order.

    ``problems`` lists encoding faults found while decoding (odd lengths, a
    value length that does not suit the VR, tags out of order, a group
    length that disagrees with the bytes); the elements are kept anyway.
    """

    elements: list[CommandElement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _by_keyword: dict[str, CommandElement] = field(default_factory=dict, repr=False)
    #: Set when the bytes ran out before the elements did (the rest could not be decoded).
    stopped: DecodingStop | None = None
    _field: int | None = field(default=-1, repr=False)  # command_field, once looked up
    #: The precompiled layout this command set was decoded by (None: the general decoder).
    #: Command sets of one layout have the same tags, VRs and lengths, and no problems.
    layout: Layout | None = field(default=None, repr=False, compare=False)

    def get(self, keyword: str, default: Any = None) -> Any:
        element = self._by_keyword.get(keyword)
        return default if element is None else element.value

    def has(self, keyword: str) -> bool:
        return keyword in self._by_keyword

    def element(self, keyword: str) -> CommandElement | None:
        return self._by_keyword.get(keyword)

    @property
    def keywords(self) -> tuple[str, ...]:
        if self.layout is not None:
            return self.layout.keywords
        found = tuple(e.keyword or e.tag_str for e in self.elements)
        # Commands of one kind share their keyword sequence: keep one tuple per sequence.
        shared = _KEYWORD_TUPLES.get(found)
        if shared is None:
            if len(_KEYWORD_TUPLES) > 4096:  # hostile variety: stop sharing, stay bounded
                return found
            shared = _KEYWORD_TUPLES[found] = found
        return shared

    @property
    def command_field(self) -> int | None:
        # Asked by every layer and many rules for each message: looked up once.
        found = self._field
        if found == -1:
            value = self.get("CommandField")
            found = self._field = value if isinstance(value, int) else None
        return found

    @property
    def command_name(self) -> str:
        field_value = self.command_field
        if field_value is None:
            return "unknown"
        return COMMAND_NAMES.get(field_value, f"0x{field_value:04X}")

    @property
    def has_data_set(self) -> bool:
        """True unless (0000,0800) says 0x0101; "absent" is treated as no data."""
        value = self.get("CommandDataSetType")
        return isinstance(value, int) and value != NO_DATA_SET


def _shared(value: int) -> int:
    """One int object per recurring value (0x0101, 0xFF00, group lengths...): Python
    shares only those up to 256, and primitives keep every message's values."""
    shared = _INTS.get(value)
    if shared is None:
        if len(_INTS) >= 8192:
            return value
        shared = _INTS[value] = value
    return shared


_INTS: dict[int, int] = {}


def _decode_value(vr: str, raw: bytes) -> Any:
    if vr == "US":
        if len(raw) == 2:
            return _shared(raw[0] | (raw[1] << 8))
        return bytes(raw)
    if vr == "UL":
        if len(raw) == 4:
            return _shared(int.from_bytes(raw, "little"))
        return bytes(raw)
    if vr == "AT":
        if len(raw) % 4:
            return bytes(raw)
        out = []
        for i in range(0, len(raw), 4):
            group, elem = struct.unpack_from("<HH", raw, i)
            out.append((group << 16) | elem)
        return out
    if vr in ("UI", "AE", "LO", "SH", "CS", "ST", "LT"):
        # surrogateescape keeps a byte that is not ASCII (the tables give such a value in hex).
        text = bytes(raw).decode("ascii", "surrogateescape")
        if vr == "UI":
            # Interned: a sub-operation's request and response, and every message of a
            # retrieve, repeat the same UIDs; one copy each, however many messages keep them.
            return sys.intern(text.rstrip("\x00 "))
        return text.strip(" \x00")
    return bytes(raw)


_VALUE_SIZE = {"US": 2, "UL": 4}
_KEYWORD_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}
#: Element faults listed one by one; a hostile command set of thousands of bad
#: elements gets the first ones and a count, not a problem per element.
MAX_LISTED_PROBLEMS = 32


def decode_command_set(data: bytes | bytearray | memoryview) -> CommandSet:
    """Decode an Implicit VR Little Endian command set.

    Never raises for malformed input: faults go to ``CommandSet.problems``
    and decoding stops at the first element whose length runs past the end.

    A retrieve sends thousands of command sets of a few shapes (the same tags and lengths,
    other values): a clean command set's shape is compiled into a :class:`Layout` once, and
    later command sets of the same size are decoded by it when their element headers match
    it exactly; anything else takes the general decoder. Both give equal results
    (tests/test_commandset.py compares them).
    """
    size = len(data)
    layouts = _LAYOUTS.get(size) if USE_LAYOUTS else None
    if layouts is not None:
        for layout in layouts:
            decoded = layout.decode(data)
            if decoded is not None:
                return decoded
    result = decode_general(data)
    if USE_LAYOUTS and not result.problems and result.stopped is None and len(_LAYOUTS) < MAX_LAYOUTS:
        layout = Layout.compile(result, size)
        if layout is not None:
            known = _LAYOUTS.setdefault(size, [])
            if len(known) < MAX_LAYOUTS_PER_SIZE:
                known.append(layout)
    return result


#: False: every command set takes the general decoder (the tests compare the two ways).
USE_LAYOUTS = True
#: Bounds on the layouts kept: a hostile peer's variety is decoded the general way.
MAX_LAYOUTS = 512
MAX_LAYOUTS_PER_SIZE = 8
_ELEMENT_CACHE_SIZE = 2048
_CACHED = 0  # elements in the caches of all layouts


class Layout:
    """The shape of a clean command set: element tags, VRs and lengths, in wire order.

    Decoding by a layout unpacks every element header with one precompiled struct and
    compares them with the layout's; the values are unpacked with a second one. Elements
    whose (tag, length, raw value) recur (the group length, SOP Class UID, Command Field,
    Priority, a sub-operation's SOP Instance UID in its request and response...) share one
    :class:`CommandElement` (frozen), which saves decoding and building them again and
    keeping copies.
    """

    __slots__ = ("size", "headers", "keywords", "_header_struct", "_value_struct", "_slots", "_caches",
                 "_group_length")

    def __init__(self, size: int, elements: list[CommandElement]) -> None:
        self.size = size
        header_format, value_format = ["<"], ["<"]
        headers: list[int] = []
        for element in elements:
            header_format.append(f"HHI{element.length}x")
            headers += (element.tag >> 16, element.tag & 0xFFFF, element.length)
            value_format.append({"US": "8xH", "UL": "8xI"}.get(element.vr, f"8x{element.length}s"))
        self.headers = tuple(headers)
        self.keywords = tuple(e.keyword for e in elements)
        self._header_struct = struct.Struct("".join(header_format))
        self._value_struct = struct.Struct("".join(value_format))
        self._slots = tuple((e.tag, e.keyword, e.vr, e.length) for e in elements)
        # Raw value -> element, one dict per (tag, length) shared by every layout; none kept
        # for AT, whose value is a list (mutable, so not shared).
        self._caches = tuple({} if e.vr == "AT" else _ELEMENTS.setdefault((e.tag, e.length), {})
                             for e in elements)
        first = elements[0]
        self._group_length = size - 12 if first.tag == 0 else None

    @classmethod
    def compile(cls, command: CommandSet, size: int) -> Layout | None:
        elements = command.elements
        # Only layouts the general decoder fully names, each keyword once (problems would
        # say otherwise), with the values that decode the same way from a struct.
        if not elements or any(not e.keyword for e in elements):
            return None
        if any(e.vr in ("US", "UL") and not isinstance(e.value, int) for e in elements):
            return None
        return cls(size, elements)

    def _element(self, index: int, raw: Any) -> CommandElement:
        tag, keyword, vr, length = self._slots[index]
        value = _shared(raw) if type(raw) is int else _decode_value(vr, raw)
        element = CommandElement(tag, keyword, vr, length, value)
        if vr != "AT":
            global _CACHED
            _CACHED += 1
            if _CACHED > _ELEMENT_CACHE_SIZE:  # one budget for all: a hostile variety stays bounded
                for cache in _ELEMENTS.values():
                    cache.clear()
                _CACHED = 1
            self._caches[index][raw] = element
        return element

    def decode(self, data: bytes | bytearray | memoryview) -> CommandSet | None:
        """The command set, or None when ``data`` is not of this layout."""
        if self._header_struct.unpack_from(data) != self.headers:
            return None
        values = self._value_struct.unpack_from(data)
        elements = [cache.get(raw) or self._element(index, raw)
                    for index, (cache, raw) in enumerate(zip(self._caches, values, strict=True))]
        command = CommandSet(elements, [], dict(zip(self.keywords, elements, strict=True)))
        group_length = self._group_length
        if group_length is None or values[0] == group_length:
            command.layout = self
        else:
            # As the general decoder says it (and then no longer a clean command set).
            command.problems.append(
                f"Command Group Length says the command set ends at byte {12 + values[0]}, "
                f"but it has {self.size} bytes")
        return command


_LAYOUTS: dict[int, list[Layout]] = {}
_ELEMENTS: dict[tuple[int, int], dict[Any, CommandElement]] = {}


def decode_general(data: bytes | bytearray | memoryview) -> CommandSet:
    """The general decoder: every element, whatever its shape, with every fault noted."""
    result = CommandSet()
    view = memoryview(data)
    size = len(view)
    offset = 0
    previous_tag = -1
    group_length_end: int | None = None
    unlisted = 0

    def note(text: str) -> None:
        nonlocal unlisted
        if len(result.problems) < MAX_LISTED_PROBLEMS:
            result.problems.append(text)
        else:
            unlisted += 1

    while offset < size:
        if size - offset < 8:
            result.problems.append(
                f"{size - offset} trailing bytes at offset {offset} are too short for an element header"
            )
            result.stopped = DecodingStop(offset, size - offset)
            break
        group, elem, length = _HEADER.unpack_from(view, offset)
        tag = (group << 16) | elem
        start = offset + 8
        if length > size - start:
            result.problems.append(
                f"element ({group:04X},{elem:04X}) at offset {offset} has length {length}, "
                f"but only {size - start} bytes remain"
            )
            result.stopped = DecodingStop(offset, size - start, (group << 16) | elem, length)
            break
        raw = view[start:start + length]
        vr, keyword = _DICTIONARY.get(tag, ("UN", ""))
        if group != 0x0000:
            note(f"element ({group:04X},{elem:04X}) is not in group 0000")
        elif not keyword:
            note(f"element ({group:04X},{elem:04X}) is not a known command element")
        if tag <= previous_tag:
            note(f"element ({group:04X},{elem:04X}) is out of ascending order")
        if length % 2:
            note(f"element ({group:04X},{elem:04X}) has odd length {length}")
        expected = _VALUE_SIZE.get(vr)
        if expected is not None and length != expected:
            note(
                f"element ({group:04X},{elem:04X}) {vr} has length {length}, expected {expected}"
            )
        elif vr == "AT" and length % 4:  # CMD-005: AT values are 4-byte tags
            note(
                f"element ({group:04X},{elem:04X}) AT has length {length}, not a multiple of 4"
            )
        element = CommandElement(tag, keyword, vr, length, _decode_value(vr, raw))
        result.elements.append(element)
        if keyword and keyword not in result._by_keyword:
            result._by_keyword[keyword] = element
        elif keyword:
            note(f"element {keyword} appears more than once")
        if tag == 0x00000000 and isinstance(element.value, int):
            group_length_end = start + length + element.value
        previous_tag = tag
        offset = start + length
    if unlisted:
        result.problems.append(f"{unlisted} more element faults not listed ({len(result.elements)} elements)")
    if group_length_end is not None and group_length_end != size:
        result.problems.append(
            f"Command Group Length says the command set ends at byte {group_length_end}, "
            f"but it has {size} bytes"
        )
    return result
