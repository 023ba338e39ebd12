"""DIMSE status codes: class (PS3.7 Annex C) and per-service meaning.

Layer: DIMSE. Pure tables, no I/O. The same code can mean different things
in different services (B000 is "Coercion of data elements" in a C-STORE-RSP
but "Sub-operations complete, one or more failures or warnings" in a
C-GET-RSP), so every lookup names the service. Wireshark uses one
service-agnostic table and gets C-GET FF00 wrong; we do not.
"""

from __future__ import annotations

SUCCESS = "Success"
WARNING = "Warning"
FAILURE = "Failure"
CANCEL = "Cancel"
PENDING = "Pending"
UNKNOWN = "Unknown"

#: Every value :func:`status_category` can return.
CATEGORIES: tuple[str, ...] = (SUCCESS, WARNING, FAILURE, CANCEL, PENDING, UNKNOWN)

#: PS3.7 Annex C codes shared by all services. 0x01xx and 0x02xx are fixed by
#: the standard, so a service may not give them another meaning.
GENERAL_STATUS: dict[int, str] = {
    0x0000: "Success",
    0x0001: "Warning",
    0x0105: "No such attribute",
    0x0106: "Invalid attribute value",
    0x0107: "Attribute list error",
    0x0110: "Processing failure",
    0x0111: "Duplicate SOP Instance",
    0x0112: "No such SOP Instance",
    0x0113: "No such event type",
    0x0114: "No such argument",
    0x0115: "Invalid argument value",
    0x0116: "Attribute value out of range",
    0x0117: "Invalid SOP Instance",
    0x0118: "No such SOP Class",
    0x0119: "Class-instance conflict",
    0x0120: "Missing attribute",
    0x0121: "Missing attribute value",
    0x0122: "Refused: SOP Class not supported",
    0x0123: "No such action type",
    0x0124: "Refused: Not authorized",
    0x0210: "Duplicate invocation",
    0x0211: "Unrecognized operation",
    0x0212: "Mistyped argument",
    0x0213: "Resource limitation",
    0xFE00: "Cancel",
}

#: A range rule: (first code, last code, meaning), both ends inclusive.
StatusRange = tuple[int, int, str]

# Query/Retrieve GET (PS3.4 C.4.3.1.4 Table C.4-3; AA0x from Z.4.2.1.4, the
# Composite Instance Root model). Wording follows the standard's tables.
C_GET_STATUS: dict[int, str] = {
    0x0000: "Sub-operations complete, no failures or warnings",
    0xA701: "Refused: Out of resources, unable to calculate number of matches",
    0xA702: "Refused: Out of resources, unable to perform sub-operations",
    0xA900: "Error: Identifier does not match SOP Class",
    0xAA00: "Failed: None of the frames requested were found in the SOP Instance",
    0xAA01: "Failed: Unable to create new object for this SOP Class",
    0xAA02: "Failed: Unable to extract frames",
    0xAA03: "Failed: Time-based request received for a non-time-based original SOP Instance",
    0xAA04: "Failed: Invalid request",
    0xB000: "Sub-operations complete, one or more failures or warnings",
    0xFE00: "Sub-operations terminated due to Cancel indication",
    0xFF00: "Sub-operations are continuing",
}
C_GET_RANGES: tuple[StatusRange, ...] = (
    # The SCP picks the low 12 bits; an SCU must read the whole range alike.
    (0xC000, 0xCFFF, "Failed: Unable to process"),
)

# Query/Retrieve MOVE (PS3.4 C.4.2.1.5): C-GET's codes plus A801.
C_MOVE_STATUS: dict[int, str] = {
    **C_GET_STATUS,
    0xA801: "Refused: Move Destination unknown",
}
C_MOVE_RANGES: tuple[StatusRange, ...] = C_GET_RANGES

# Query/Retrieve FIND (PS3.4 C.4.1.1.4), kept minimal.
C_FIND_STATUS: dict[int, str] = {
    0x0000: "Matching is complete, no final Identifier is supplied",
    0xA700: "Refused: Out of resources",
    0xA900: "Error: Identifier does not match SOP Class",
    0xFE00: "Matching terminated due to Cancel request",
    0xFF00: "Matches are continuing, current match is supplied and any Optional Keys were "
            "supported in the same manner as Required Keys",
    0xFF01: "Matches are continuing, warning that one or more Optional Keys were not supported "
            "for existence and/or matching for this Identifier",
}
C_FIND_RANGES: tuple[StatusRange, ...] = ((0xC000, 0xCFFF, "Failed: Unable to process"),)

# Storage (PS3.4 B.2.3): the statuses a C-GET sub-operation can return.
C_STORE_STATUS: dict[int, str] = {
    0x0000: "Success",
    0xB000: "Coercion of data elements",
    0xB006: "Elements discarded",
    0xB007: "Data Set does not match SOP Class",
}
C_STORE_RANGES: tuple[StatusRange, ...] = (
    (0xA700, 0xA7FF, "Refused: Out of resources"),
    (0xA900, 0xA9FF, "Error: Data Set does not match SOP Class"),
    (0xC000, 0xCFFF, "Error: Cannot understand"),
)

#: Service name -> (exact codes, range rules). Services not listed here
#: (C-ECHO, N-services) fall back to :data:`GENERAL_STATUS` alone.
SERVICE_TABLES: dict[str, tuple[dict[int, str], tuple[StatusRange, ...]]] = {
    "C-GET": (C_GET_STATUS, C_GET_RANGES),
    "C-STORE": (C_STORE_STATUS, C_STORE_RANGES),
    "C-FIND": (C_FIND_STATUS, C_FIND_RANGES),
    "C-MOVE": (C_MOVE_STATUS, C_MOVE_RANGES),
}


def status_category(code: int) -> str:
    """Return the PS3.7 Annex C class of ``code``.

    One of :data:`CATEGORIES`. Anything that is not an int in 0..0xFFFF
    (a raw-bytes value from a malformed command set, say) is "Unknown":
    this is called on wire values, so it must not raise.
    """
    if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 0xFFFF:
        return UNKNOWN
    if code == 0x0000:
        return SUCCESS
    if code in (0xFF00, 0xFF01):
        return PENDING
    if code == 0xFE00:
        return CANCEL
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return WARNING
    high = code >> 12
    if high in (0xA, 0xC) or (code >> 8) in (0x01, 0x02):
        return FAILURE
    return UNKNOWN


def _service_key(service: str) -> str:
    # Accept "c_get", "C-GET-RSP" and the like: callers pass message names too.
    key = service.strip().upper().replace("_", "-")
    for suffix in ("-RSP", "-RQ"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key


def status_meaning(service: str, code: int) -> str:
    """Return the meaning of ``code`` in a response of ``service``.

    ``service`` is "C-GET", "C-STORE", "C-FIND" or "C-MOVE" (other names use
    the general Annex C table only). The service's own table wins over the
    general one, so FF00 in a C-GET reads "Sub-operations are continuing"
    and B000 differs between C-GET and C-STORE. A code that neither table
    knows gives "Unknown status for <service> (<category>)".
    """
    key = _service_key(service)
    exact, ranges = SERVICE_TABLES.get(key, ({}, ()))
    if isinstance(code, int) and not isinstance(code, bool):
        if code in exact:
            return exact[code]
        for first, last, meaning in ranges:
            if first <= code <= last:
                return meaning
        if code in GENERAL_STATUS:
            return GENERAL_STATUS[code]
    return f"Unknown status for {key or service} ({status_category(code)})"


def status_hex(code: int) -> str:
    """Format a status as ``0xA702``; a non-int wire value is shown as-is."""
    if isinstance(code, int) and not isinstance(code, bool) and code >= 0:
        return f"0x{code:04X}"
    if isinstance(code, (bytes, bytearray)):
        return f"raw:{bytes(code).hex()}"
    return repr(code)


def is_final(code: int) -> bool:
    """True unless ``code`` is a Pending status (more responses will follow)."""
    return status_category(code) != PENDING
