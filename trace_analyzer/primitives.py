"""DIMSE primitives as the analyzer exposes them (PS3.7 9.1.1, 9.1.3).

Layer: DIMSE. :class:`C_GET` keeps the attribute names, types and setter
errors of pynetdicom's ``dimse_primitives.C_GET`` so code written against
pynetdicom reads our records unchanged. On top of that every primitive
carries where it was seen in the capture (frame, time, association, sender
...) and exactly what was on the wire.

A live DIMSE provider may refuse a bad value; a passive analyzer must not:
``from_message`` records what the peer sent even when a strict setter would
refuse it (Priority 7, a 66-character UID, a counter with the wrong length).
The getter then returns the wire value and ``problems`` says what is wrong.
No I/O.
"""

from __future__ import annotations

import re
import warnings
import zlib
from io import BytesIO
from typing import Any, ClassVar, TypeVar

from pydicom import config as pydicom_config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from . import config
from .commandset import (
    C_CANCEL_RQ,
    C_ECHO_RQ,
    C_ECHO_RSP,
    C_FIND_RQ,
    C_FIND_RSP,
    C_GET_RQ,
    C_GET_RSP,
    C_MOVE_RQ,
    C_MOVE_RSP,
    C_STORE_RQ,
    C_STORE_RSP,
    CommandElement,
)
from .dimse import DimseMessage
from .limits import INFLATION_CUT
from .limits import active as active_limits

__all__ = [
    "C_CANCEL",
    "C_ECHO",
    "C_FIND",
    "C_GET",
    "C_MOVE",
    "C_STORE",
    "decode_identifier",
    "primitive_from_message",
]

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"

# (implicit VR, little endian, deflated, name) for the syntaxes we name in reports.
_ENCODINGS: dict[str, tuple[bool, bool, bool, str]] = {
    IMPLICIT_VR_LITTLE_ENDIAN: (True, True, False, "Implicit VR Little Endian"),
    EXPLICIT_VR_LITTLE_ENDIAN: (False, True, False, "Explicit VR Little Endian"),
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: (False, True, True, "Deflated Explicit VR Little Endian"),
    EXPLICIT_VR_BIG_ENDIAN: (False, False, False, "Explicit VR Big Endian"),
}

# PS3.5 9.1: components of digits, no leading zero unless the component is "0".
_CONFORMANT_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_MAX_UID_LENGTH = 64
_MAX_MESSAGE_ID = 0xFFFF


def _make_uid(text: str) -> UID:
    # pydicom validates (and warns) on UID creation; validation is ours to do.
    # Recent UIDs are shared: a retrieve repeats its SOP Class UID in every message and
    # each SOP Instance UID in a request and its response.
    uid = _RECENT_UIDS.get(text)
    if uid is None:
        if len(_RECENT_UIDS) >= 1024:
            _RECENT_UIDS.clear()
        uid = _RECENT_UIDS[text] = UID(text, validation_mode=pydicom_config.IGNORE)
    return uid


_RECENT_UIDS: dict[str, UID] = {}


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but True as a Message ID is a caller bug.
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return type(value).__name__


# ---------------------------------------------------------------------------
# Identifier decoding


def _encoding_for(transfer_syntax: str | None, data: bytes) -> tuple[bool, bool, bool, str, str | None]:
    """Return (implicit, little, deflated, name, note) for ``transfer_syntax``."""
    if transfer_syntax:
        ts = transfer_syntax.strip("\x00 ")
        if ts in _ENCODINGS:
            return (*_ENCODINGS[ts], None)
        uid = _make_uid(ts)
        if uid.is_transfer_syntax:
            # Compressed-pixel syntaxes encode the data set itself as Explicit VR LE.
            return uid.is_implicit_VR, uid.is_little_endian, uid.is_deflated, uid.name, None
        reason = f"transfer syntax {ts} is not known"
    else:
        reason = "transfer syntax unknown"
    # Guess from the bytes: an explicit VR data set has two upper-case letters after the tag.
    explicit = len(data) >= 6 and data[4:6].isalpha() and data[4:6].isupper()
    name = "Explicit VR Little Endian" if explicit else "Implicit VR Little Endian"
    return not explicit, True, False, name, f"{reason}; identifier read as {name}"


def _inflate(data: bytes, limit: int) -> tuple[bytes, list[str]]:
    """Inflate a deflated data set; PS3.5 A.5 requires raw deflate (no zlib header). At most
    ``limit`` bytes are inflated (a deflate bomb inflates a thousandfold): the rest is cut."""
    notes: list[str] = []
    try:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        inflated = inflater.decompress(data, limit + 1)
    except zlib.error as raw_error:
        try:
            # Some senders wrap the stream in a zlib/gzip header; wbits 32+ auto-detects both.
            inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)
            inflated = inflater.decompress(data, limit + 1)
        except zlib.error:
            raise raw_error from None
        notes.append("deflated identifier has a zlib/gzip header; PS3.5 A.5 requires raw deflate")
    if len(inflated) > limit:
        notes.append(f"deflated identifier of {len(data)} bytes {INFLATION_CUT} {limit} bytes: only the "
                     f"first {limit} were inflated and decoded (limit inflated-bytes={limit})")
        return inflated[:limit], notes
    inflated += inflater.flush()
    if not inflater.eof:
        # zlib returns what it could without complaint when the stream is cut short.
        notes.append("deflated identifier stream ends before its final block (truncated)")
    return inflated, notes


_UNDEFINED_LENGTH = 0xFFFFFFFF


def _materialise(dataset: Dataset, problems: list[str]) -> None:
    # pydicom silently shortens a value that runs past the end of the data
    # (a cut capture, a lying length): compare each raw length with the bytes read.
    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.value is not None and raw.length != _UNDEFINED_LENGTH:
            if len(raw.value) < raw.length:
                problems.append(
                    f"identifier element {raw.tag} declares {raw.length} bytes but only "
                    f"{len(raw.value)} are present (truncated)"
                )
    # read_dataset converts values lazily; touch every element now so that a
    # bad value fails here, inside our guard, and not later in a report.
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _materialise(item, problems)


def decode_identifier(data: bytes, transfer_syntax: str | None) -> tuple[Dataset | None, list[str]]:
    """Decode a data set in ``transfer_syntax``; never raises.

    Returns the dataset (``None`` when it could not be decoded) and a list
    of problems: decoding errors, pydicom warnings about invalid values, and
    a note when the transfer syntax had to be guessed.
    """
    problems: list[str] = []
    implicit, little, deflated, name, note = _encoding_for(transfer_syntax, data)
    if note:
        problems.append(note)
    if deflated:
        try:
            data, notes = _inflate(data, active_limits().inflated_bytes)
        except zlib.error as exc:
            problems.append(f"identifier could not be inflated ({name}): {exc}")
            return None, problems
        problems.extend(notes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = read_dataset(BytesIO(data), implicit, little)
            _materialise(dataset, problems)
        except Exception as exc:  # hostile bytes can trip any pydicom error
            problems.append(f"identifier could not be decoded as {name}: {_type_name(exc)}: {exc}")
            return None, problems
    problems.extend(f"identifier: {warning.message}" for warning in caught)
    return dataset, problems


# ---------------------------------------------------------------------------
# Common base: trace context and loading from a DimseMessage

_P = TypeVar("_P", bound="_TracedPrimitive")


class _TracedPrimitive:
    """Trace context and wire record shared by every primitive."""

    # Slots: a capture holds one primitive per DIMSE message, often hundreds of thousands.
    __slots__ = ("capture", "frame", "time", "association", "sender", "context_id", "transfer_syntax",
                 "data_set_length", "data_set_complete", "data_frame", "elements", "wire", "_problems",
                 "_findings", "is_request", "is_response")

    _MSG_TYPE: ClassVar[str] = ""
    _REQUEST_FIELD: ClassVar[int | None] = None
    _RESPONSE_FIELD: ClassVar[int | None] = None
    # Command elements copied onto the primitive, by role. Elements outside
    # the role's list (Priority in a response, say) stay in ``wire`` only.
    _REQUEST_ELEMENTS: ClassVar[tuple[str, ...]] = ()
    _RESPONSE_ELEMENTS: ClassVar[tuple[str, ...]] = ()
    #: True when every parameter is a plain attribute defaulting to None, without setter
    #: checks and without a data set to take (C-STORE, C-CANCEL): from_message's fast path.
    _PLAIN: ClassVar[bool] = False

    def __init__(self) -> None:
        self.capture: str | None = None
        self.frame: int | None = None
        self.time: float | None = None
        self.association: int | None = None
        self.sender: str | None = None  # "requestor" or "acceptor": who sent it
        self.context_id: int | None = None
        self.transfer_syntax: str | None = None
        self.data_set_length: int | None = None
        self.data_set_complete: bool | None = None  # None when no data set was announced
        self.data_frame: int | None = None  # frame that completed the data set
        self.elements: tuple[str, ...] = ()  # keywords in wire order
        self.wire: dict[str, Any] = {}  # keyword -> value exactly as decoded
        # Made on first use: nearly every message has neither (two empty lists per message
        # were a tenth of the heap a retrieve of small instances keeps).
        self._problems: list[str] | None = None
        self._findings: list[Any] | None = None
        self.is_request: bool = False
        self.is_response: bool = False

    @property
    def direction(self) -> str | None:
        """Alias of ``sender``: "requestor" or "acceptor"."""
        return self.sender

    @direction.setter
    def direction(self, value: str | None) -> None:
        self.sender = value

    @property
    def problems(self) -> list[str]:
        """Refused wire values and identifier decoding faults, in the order met."""
        problems = self._problems
        if problems is None:
            problems = self._problems = []
        return problems

    @problems.setter
    def problems(self, value: list[str]) -> None:
        self._problems = value

    @property
    def findings(self) -> list[Any]:
        """The rules engine's findings about this message."""
        findings = self._findings
        if findings is None:
            findings = self._findings = []
        return findings

    @findings.setter
    def findings(self, value: list[Any]) -> None:
        self._findings = value

    @property
    def msg_type(self) -> str:
        """The DIMSE service name, e.g. "C-GET"."""
        return self._MSG_TYPE

    def __repr__(self) -> str:
        role = "RQ" if self.is_request else "RSP" if self.is_response else "?"
        return f"<{type(self).__name__} {role} frame={self.frame} association={self.association}>"

    @classmethod
    def from_message(cls: type[_P], msg: DimseMessage) -> _P:
        """Build the primitive from a decoded message, keeping refused wire values."""
        field_value = msg.command.command_field
        primitive = cls()
        if field_value is not None and field_value == cls._REQUEST_FIELD:
            primitive.is_request = True
            wanted = cls._REQUEST_ELEMENTS
        elif field_value is not None and field_value == cls._RESPONSE_FIELD:
            primitive.is_response = True
            wanted = cls._RESPONSE_ELEMENTS
        else:
            shown = "absent" if field_value is None else f"0x{field_value:04X}"
            raise ValueError(f"Command Field {shown} is not a {cls._MSG_TYPE} message")
        primitive._take_context(msg)
        by_keyword = msg.command._by_keyword
        if cls._PLAIN:
            # Every parameter is a plain attribute that __init__ set to None (absent): only
            # the elements on the wire need storing, and an int needs no checking.
            for keyword in wanted:
                element = by_keyword.get(keyword)
                if element is not None:
                    value = element.value
                    if type(value) is int:
                        setattr(primitive, keyword, value)
                    elif type(value) is str and element.vr == "UI":
                        setattr(primitive, keyword, _make_uid(value) if value else None)  # as _load
                    else:
                        primitive._load(keyword, element)
            return primitive
        for keyword in (*cls._REQUEST_ELEMENTS, *cls._RESPONSE_ELEMENTS):
            if keyword not in wanted:
                # Parameters of the other role are absent by definition; this
                # clears defaults such as Priority 2 on a response.
                primitive._store_raw(keyword, None)
        for keyword in wanted:
            element = by_keyword.get(keyword)
            if element is None:
                # Absent on the wire reads as None, never as a default: the
                # analyzer must tell "not sent" from "sent as 0" or "sent as 2".
                primitive._store_raw(keyword, None)
            else:
                primitive._load(keyword, element)
        primitive._take_data_set(msg)
        return primitive

    def _take_context(self, msg: DimseMessage) -> None:
        self.capture = msg.capture
        self.frame = msg.frame
        self.time = msg.time
        self.association = msg.association
        self.sender = msg.sender
        self.context_id = msg.context_id
        self.transfer_syntax = msg.transfer_syntax
        self.data_set_length = msg.data_set_length
        self.data_set_complete = msg.data_set_complete if msg.data_set_expected else None
        self.data_frame = msg.data_frame
        command = msg.command
        self.elements = keywords = command.keywords
        if command.layout is not None:
            # A layout's keywords are known and each is there once.
            self.wire = dict(zip(keywords, [element.value for element in command.elements], strict=True))
            return
        wire: dict[str, Any] = {}
        for element in command.elements:
            # A repeated element keeps its first value, as CommandSet.get does.
            wire.setdefault(element.keyword or element.tag_str, element.value)
        self.wire = wire

    def _take_data_set(self, msg: DimseMessage) -> None:
        """Hook for primitives that keep the data set (C-GET, C-MOVE, C-FIND)."""

    def _load(self, keyword: str, element: CommandElement) -> None:
        value = element.value
        if isinstance(value, (bytes, bytearray)):
            # commandset leaves a value as bytes when its length does not fit the VR.
            self._store_raw(keyword, bytes(value))
            shown = bytes(value[:16]).hex() + ("..." if len(value) > 16 else "")  # bound hostile lengths
            self.problems.append(
                f"{keyword} has {element.length} bytes on the wire (0x{shown}), "
                f"not a valid {element.vr} value; kept as raw bytes"
            )
            return
        if element.vr == "UI" and isinstance(value, str):
            value = _make_uid(value) if value else None
        elif element.vr == "AT":  # tags as pydicom Tags: equal to their int, printed (gggg,eeee)
            if isinstance(value, int):
                value = Tag(value)
            elif isinstance(value, (list, tuple)):
                value = [Tag(v) if isinstance(v, int) else v for v in value]
        try:
            setattr(self, keyword, value)
        except (TypeError, ValueError) as exc:
            self._store_raw(keyword, value)
            self.problems.append(str(exc))

    def _store_raw(self, keyword: str, value: Any) -> None:
        """Store ``value`` without validation (plain attributes by default)."""
        setattr(self, keyword, value)


# ---------------------------------------------------------------------------
# C-GET, C-MOVE, C-FIND: the Query/Retrieve primitives


class _QueryRetrieve(_TracedPrimitive):
    """What C-GET, C-MOVE and C-FIND share (PS3.7 9.1.2-9.1.4).

    Setters behave as pynetdicom's: MessageID / MessageIDBeingRespondedTo
    are ints in 0..65535, AffectedSOPClassUID a UID of at most 64 characters,
    Priority 0 (medium), 1 (high) or 2 (low, the default), Identifier a
    BytesIO, Status any int, the sub-operation counters ints >= 0. ``None``
    means "absent" everywhere except Priority. Two deliberate differences:
    bool is refused as an int, and Priority refuses 1.0.
    """

    __slots__ = ("_message_id", "_message_id_being_responded_to", "_affected_sop_class_uid", "_priority",
                 "_identifier", "_identifier_dataset", "_identifier_decoded", "_status", "_remaining",
                 "_completed", "_failed", "_warning", "OffendingElement", "ErrorComment")

    REQUEST_KEYWORDS: ClassVar[tuple[str, ...]] = (
        "MessageID", "AffectedSOPClassUID", "Priority", "Identifier",
    )
    RESPONSE_KEYWORDS: ClassVar[tuple[str, ...]] = ("MessageIDBeingRespondedTo", "Status")
    STATUS_OPTIONAL_KEYWORDS: ClassVar[tuple[str, ...]] = (
        "ErrorComment",
        "OffendingElement",
        "NumberOfRemainingSuboperations",
        "NumberOfCompletedSuboperations",
        "NumberOfFailedSuboperations",
        "NumberOfWarningSuboperations",
    )
    _REQUEST_ELEMENTS = ("MessageID", "AffectedSOPClassUID", "Priority")
    _RESPONSE_ELEMENTS = (
        "MessageIDBeingRespondedTo", "AffectedSOPClassUID", "Status", *STATUS_OPTIONAL_KEYWORDS,
    )

    # Keyword -> private slot behind the validating property.
    _SLOTS: ClassVar[dict[str, str]] = {
        "MessageID": "_message_id",
        "MessageIDBeingRespondedTo": "_message_id_being_responded_to",
        "AffectedSOPClassUID": "_affected_sop_class_uid",
        "Priority": "_priority",
        "Identifier": "_identifier",
        "Status": "_status",
        "NumberOfRemainingSuboperations": "_remaining",
        "NumberOfCompletedSuboperations": "_completed",
        "NumberOfFailedSuboperations": "_failed",
        "NumberOfWarningSuboperations": "_warning",
    }

    def __init__(self) -> None:
        super().__init__()
        self._message_id: Any = None
        self._message_id_being_responded_to: Any = None
        self._affected_sop_class_uid: Any = None
        self._priority: Any = 2
        self._identifier: BytesIO | None = None
        self._identifier_dataset: Dataset | None = None
        self._identifier_decoded = False
        self._status: Any = None
        self._remaining: Any = None
        self._completed: Any = None
        self._failed: Any = None
        self._warning: Any = None
        # Status-related fields are plain in pynetdicom too: no validation.
        self.OffendingElement: Any = None
        self.ErrorComment: Any = None

    def _store_raw(self, keyword: str, value: Any) -> None:
        slot = self._SLOTS.get(keyword)
        if slot is None:
            setattr(self, keyword, value)
        else:
            setattr(self, slot, value)
            if keyword == "Identifier":
                self._identifier_decoded = False

    def _take_data_set(self, msg: DimseMessage) -> None:
        if msg.data_set is not None:
            self.Identifier = BytesIO(msg.data_set)

    # -- validation helpers --------------------------------------------------

    @staticmethod
    def _checked_message_id(value: Any, name: str) -> int | None:
        if value is None:
            return None
        if not _is_int(value):
            raise TypeError(f"'{name}' must be an int or None, not '{_type_name(value)}'")
        if not 0 <= value <= _MAX_MESSAGE_ID:
            raise ValueError(f"{name} {value} is outside 0..65535")
        return value

    @staticmethod
    def _checked_counter(value: Any, name: str) -> int | None:
        if value is None:
            return None
        if not _is_int(value):
            raise TypeError(f"'{name}' must be an int or None, not '{_type_name(value)}'")
        if value < 0:
            raise ValueError(f"{name} {value} is negative")
        return value

    # -- request / response parameters -------------------------------------

    @property
    def MessageID(self) -> int | None:
        """The request's Message ID (0000,0110)."""
        return self._message_id

    @MessageID.setter
    def MessageID(self, value: int | None) -> None:
        self._message_id = self._checked_message_id(value, "MessageID")

    @property
    def MessageIDBeingRespondedTo(self) -> int | None:
        """The response's Message ID Being Responded To (0000,0120)."""
        return self._message_id_being_responded_to

    @MessageIDBeingRespondedTo.setter
    def MessageIDBeingRespondedTo(self, value: int | None) -> None:
        self._message_id_being_responded_to = self._checked_message_id(value, "MessageIDBeingRespondedTo")

    @property
    def AffectedSOPClassUID(self) -> UID | None:
        """The Q/R GET information model (0000,0002), as a pydicom UID."""
        return self._affected_sop_class_uid

    @AffectedSOPClassUID.setter
    def AffectedSOPClassUID(self, value: str | bytes | UID | None) -> None:
        if value is None:
            self._affected_sop_class_uid = None
            return
        if isinstance(value, (bytes, bytearray)):
            try:
                value = bytes(value).decode("ascii").rstrip("\x00 ")
            except UnicodeDecodeError as exc:
                raise ValueError(f"AffectedSOPClassUID bytes are not ASCII: {bytes(value)!r}") from exc
        if not isinstance(value, str):
            raise TypeError(
                f"'AffectedSOPClassUID' must be str, bytes, UID or None, not '{_type_name(value)}'"
            )
        if not value:
            # pynetdicom treats an empty UID as absent.
            self._affected_sop_class_uid = None
            return
        if len(value) > _MAX_UID_LENGTH:
            raise ValueError(f"AffectedSOPClassUID is {len(value)} characters long, more than 64")
        # Read at call time so tests and callers can flip the switch.
        if config.ENFORCE_UID_CONFORMANCE and not _CONFORMANT_UID.fullmatch(value):
            raise ValueError(f"AffectedSOPClassUID {value!r} is not a conformant UID")
        self._affected_sop_class_uid = _make_uid(value)

    @property
    def Priority(self) -> int | None:
        """0 medium, 1 high, 2 low (default); may hold a refused wire value."""
        return self._priority

    @Priority.setter
    def Priority(self, value: int) -> None:
        # pynetdicom raises ValueError for any bad Priority, even a wrong type.
        if not _is_int(value) or value not in (0, 1, 2):
            raise ValueError(f"Priority {value!r} is not 0, 1 or 2")
        self._priority = value

    @property
    def Identifier(self) -> BytesIO | None:
        """The encoded Identifier data set, as sent."""
        return self._identifier

    @Identifier.setter
    def Identifier(self, value: BytesIO | None) -> None:
        if value is not None and not isinstance(value, BytesIO):
            raise TypeError("'Identifier' parameter must be a BytesIO object")
        self._identifier = value
        self._identifier_decoded = False

    @property
    def Status(self) -> int | None:
        """The response status (0000,0900); any int is accepted, as in pynetdicom."""
        return self._status

    @Status.setter
    def Status(self, value: int | None) -> None:
        if value is not None and not _is_int(value):
            raise TypeError(f"'Status' must be an int or None, not '{_type_name(value)}'")
        self._status = value

    @property
    def NumberOfRemainingSuboperations(self) -> int | None:
        """(0000,1020); None when absent."""
        return self._remaining

    @NumberOfRemainingSuboperations.setter
    def NumberOfRemainingSuboperations(self, value: int | None) -> None:
        self._remaining = self._checked_counter(value, "NumberOfRemainingSuboperations")

    @property
    def NumberOfCompletedSuboperations(self) -> int | None:
        """(0000,1021); None when absent."""
        return self._completed

    @NumberOfCompletedSuboperations.setter
    def NumberOfCompletedSuboperations(self, value: int | None) -> None:
        self._completed = self._checked_counter(value, "NumberOfCompletedSuboperations")

    @property
    def NumberOfFailedSuboperations(self) -> int | None:
        """(0000,1022); None when absent."""
        return self._failed

    @NumberOfFailedSuboperations.setter
    def NumberOfFailedSuboperations(self, value: int | None) -> None:
        self._failed = self._checked_counter(value, "NumberOfFailedSuboperations")

    @property
    def NumberOfWarningSuboperations(self) -> int | None:
        """(0000,1023); None when absent."""
        return self._warning

    @NumberOfWarningSuboperations.setter
    def NumberOfWarningSuboperations(self, value: int | None) -> None:
        self._warning = self._checked_counter(value, "NumberOfWarningSuboperations")

    # -- derived -------------------------------------------------------------

    @property
    def is_valid_request(self) -> bool:
        """True when every REQUEST_KEYWORDS parameter is set (pynetdicom's test)."""
        return all(getattr(self, keyword) is not None for keyword in self.REQUEST_KEYWORDS)

    @property
    def is_valid_response(self) -> bool:
        """True when every RESPONSE_KEYWORDS parameter is set (pynetdicom's test)."""
        return all(getattr(self, keyword) is not None for keyword in self.RESPONSE_KEYWORDS)

    @property
    def identifier_dataset(self) -> Dataset | None:
        """The Identifier decoded in ``transfer_syntax``, decoded on first use.

        ``None`` when there is no Identifier or it cannot be decoded; in the
        latter case ``problems`` says why. Never raises.
        """
        if not self._identifier_decoded:
            self._identifier_decoded = True
            self._identifier_dataset = None
            if self._identifier is not None:
                dataset, problems = decode_identifier(self._identifier.getvalue(), self.transfer_syntax)
                self._identifier_dataset = dataset
                self.problems.extend(problems)
        return self._identifier_dataset

    def __repr__(self) -> str:
        if self.is_response or (not self.is_request and self._status is not None):
            responded_to = self._message_id_being_responded_to
            detail = f"MessageIDBeingRespondedTo={responded_to} Status={self._status!r}"
        else:
            detail = f"MessageID={self._message_id} Priority={self._priority!r}"
        return f"<{type(self).__name__} {detail} frame={self.frame} association={self.association}>"


class C_GET(_QueryRetrieve):
    """A C-GET request or response (PS3.7 9.1.3, Table 9.1-3); see :class:`_QueryRetrieve`
    for the setters."""

    __slots__ = ()
    _MSG_TYPE = "C-GET"
    _REQUEST_FIELD = C_GET_RQ
    _RESPONSE_FIELD = C_GET_RSP


_AE_FORBIDDEN = re.compile(r"[\\\x00-\x1f\x7f]")


class C_MOVE(_QueryRetrieve):
    """A C-MOVE request or response (PS3.7 9.1.4, Table 9.1-4): C-GET's parameters plus
    Move Destination (0000,0600), the AE title the SCP is to send the sub-operations to.

    MoveDestination behaves as pynetdicom's: a str (bytes are decoded) of at most 16
    characters, not empty or all spaces, without backslash or control characters.
    """

    __slots__ = ("_move_destination",)
    _MSG_TYPE = "C-MOVE"
    _REQUEST_FIELD = C_MOVE_RQ
    _RESPONSE_FIELD = C_MOVE_RSP
    REQUEST_KEYWORDS: ClassVar[tuple[str, ...]] = (
        "MessageID", "AffectedSOPClassUID", "Priority", "Identifier", "MoveDestination",
    )
    _REQUEST_ELEMENTS = ("MessageID", "AffectedSOPClassUID", "Priority", "MoveDestination")
    _SLOTS: ClassVar[dict[str, str]] = {**_QueryRetrieve._SLOTS, "MoveDestination": "_move_destination"}

    def __init__(self) -> None:
        super().__init__()
        self._move_destination: Any = None

    @property
    def MoveDestination(self) -> str | None:
        """(0000,0600): the AE title of the move destination; None when absent."""
        return self._move_destination

    @MoveDestination.setter
    def MoveDestination(self, value: str | bytes | None) -> None:
        if value is None:
            self._move_destination = None
            return
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("ascii", "replace").strip(" \x00")
        if not isinstance(value, str):
            raise TypeError(f"'Move Destination' must be str or None, not '{_type_name(value)}'")
        if not value.strip():
            raise ValueError("Invalid 'Move Destination' value - must not be empty or only spaces")
        if len(value) > 16:
            raise ValueError(f"Invalid 'Move Destination' value '{value}' - longer than 16 characters")
        if _AE_FORBIDDEN.search(value):
            raise ValueError(f"Invalid 'Move Destination' value {value!r} - backslash or control character")
        self._move_destination = value


class C_FIND(_QueryRetrieve):
    """A C-FIND request or response (PS3.7 9.1.2, Table 9.1-2): no sub-operations; each
    Pending response carries one match as its Identifier."""

    __slots__ = ()
    _MSG_TYPE = "C-FIND"
    _REQUEST_FIELD = C_FIND_RQ
    _RESPONSE_FIELD = C_FIND_RSP
    STATUS_OPTIONAL_KEYWORDS: ClassVar[tuple[str, ...]] = ("OffendingElement", "ErrorComment")
    _RESPONSE_ELEMENTS = ("MessageIDBeingRespondedTo", "AffectedSOPClassUID", "Status",
                          "OffendingElement", "ErrorComment")


# ---------------------------------------------------------------------------
# Lighter records for the other messages of a C-GET exchange


class C_STORE(_TracedPrimitive):
    """A C-STORE sub-operation request or response; plain attributes, no bulk data.

    The data set of a C-STORE-RQ is only counted (``data_set_length``), never
    kept: it is the retrieved image, not something the analyzer checks.
    """

    __slots__ = ("MessageID", "MessageIDBeingRespondedTo", "AffectedSOPClassUID", "AffectedSOPInstanceUID",
                 "Priority", "Status", "MoveOriginatorApplicationEntityTitle", "MoveOriginatorMessageID",
                 "ErrorComment", "OffendingElement")
    _MSG_TYPE = "C-STORE"
    _PLAIN = True
    _REQUEST_FIELD = C_STORE_RQ
    _RESPONSE_FIELD = C_STORE_RSP
    _REQUEST_ELEMENTS = (
        "MessageID",
        "AffectedSOPClassUID",
        "AffectedSOPInstanceUID",
        "Priority",
        "MoveOriginatorApplicationEntityTitle",
        "MoveOriginatorMessageID",
    )
    _RESPONSE_ELEMENTS = (
        "MessageIDBeingRespondedTo",
        "AffectedSOPClassUID",
        "AffectedSOPInstanceUID",
        "Status",
        "ErrorComment",
        "OffendingElement",
    )

    def __init__(self) -> None:
        super().__init__()
        self.MessageID: Any = None
        self.MessageIDBeingRespondedTo: Any = None
        self.AffectedSOPClassUID: Any = None
        self.AffectedSOPInstanceUID: Any = None
        self.Priority: Any = None
        self.Status: Any = None
        self.MoveOriginatorApplicationEntityTitle: Any = None
        self.MoveOriginatorMessageID: Any = None
        self.ErrorComment: Any = None
        self.OffendingElement: Any = None


class C_ECHO(_TracedPrimitive):
    """A C-ECHO request or response (PS3.7 9.1.5); plain attributes."""

    __slots__ = ("MessageID", "MessageIDBeingRespondedTo", "AffectedSOPClassUID", "Status", "ErrorComment")
    _MSG_TYPE = "C-ECHO"
    _PLAIN = True
    _REQUEST_FIELD = C_ECHO_RQ
    _RESPONSE_FIELD = C_ECHO_RSP
    _REQUEST_ELEMENTS = ("MessageID", "AffectedSOPClassUID")
    _RESPONSE_ELEMENTS = ("MessageIDBeingRespondedTo", "AffectedSOPClassUID", "Status", "ErrorComment")

    def __init__(self) -> None:
        super().__init__()
        self.MessageID: Any = None
        self.MessageIDBeingRespondedTo: Any = None
        self.AffectedSOPClassUID: Any = None
        self.Status: Any = None
        self.ErrorComment: Any = None


class C_CANCEL(_TracedPrimitive):
    """A C-CANCEL-RQ (PS3.7 9.3.3.3): names the C-GET, C-MOVE or C-FIND it cancels; gets no
    response."""

    __slots__ = ("MessageIDBeingRespondedTo",)
    _MSG_TYPE = "C-CANCEL"
    _PLAIN = True
    _REQUEST_FIELD = C_CANCEL_RQ
    _REQUEST_ELEMENTS = ("MessageIDBeingRespondedTo",)

    def __init__(self) -> None:
        super().__init__()
        self.MessageIDBeingRespondedTo: Any = None


_BY_COMMAND_FIELD: dict[int, type[_TracedPrimitive]] = {
    C_GET_RQ: C_GET,
    C_GET_RSP: C_GET,
    C_STORE_RQ: C_STORE,
    C_STORE_RSP: C_STORE,
    C_CANCEL_RQ: C_CANCEL,
    C_MOVE_RQ: C_MOVE,
    C_MOVE_RSP: C_MOVE,
    C_FIND_RQ: C_FIND,
    C_FIND_RSP: C_FIND,
    C_ECHO_RQ: C_ECHO,
    C_ECHO_RSP: C_ECHO,
}

#: Every primitive the analyzer makes.
Primitive = C_GET | C_MOVE | C_FIND | C_ECHO | C_STORE | C_CANCEL


def primitive_from_message(msg: DimseMessage) -> Primitive | None:
    """Return the primitive for ``msg``, or None for messages of other services (N-...)."""
    field_value = msg.command.command_field
    if field_value is None:
        return None
    cls = _BY_COMMAND_FIELD.get(field_value)
    return None if cls is None else cls.from_message(msg)
