"""A-ASSOCIATE, A-ASSOCIATE-RJ and A-ABORT PDU contents (PS3.8 9.3.2-9.3.8, Annex D; PS3.7 D.3.3).

Layer: Upper Layer. Pure functions from a PDU body to records. Every item is
bounds-checked; a fault is noted in ``problems`` and decoding goes on with
the next item, so one bad item never hides the rest. Passwords and
passcodes of User Identity items are never kept: only the identity type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from struct import error as StructError
from struct import unpack_from

PC_RESULTS = {
    0: "acceptance",
    1: "user-rejection",
    2: "no-reason (provider rejection)",
    3: "abstract-syntax-not-supported (provider rejection)",
    4: "transfer-syntaxes-not-supported (provider rejection)",
}

USER_IDENTITY_TYPES = {1: "username", 2: "username and passcode", 3: "Kerberos", 4: "SAML", 5: "JWT"}

REJECT_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
REJECT_SOURCES = {1: "service-user", 2: "service-provider (ACSE)", 3: "service-provider (Presentation)"}
REJECT_REASONS = {
    1: {1: "no-reason-given", 2: "application-context-name-not-supported",
        3: "calling-AE-title-not-recognized", 7: "called-AE-title-not-recognized"},
    2: {1: "no-reason-given", 2: "protocol-version-not-supported"},
    3: {1: "temporary-congestion", 2: "local-limit-exceeded"},
}
ABORT_SOURCES = {0: "service-user", 1: "reserved", 2: "service-provider"}
ABORT_REASONS = {
    0: "reason-not-specified", 1: "unrecognized-PDU", 2: "unexpected-PDU", 4: "unrecognized-PDU-parameter",
    5: "unexpected-PDU-parameter", 6: "invalid-PDU-parameter-value",
}


@dataclass(slots=True)
class PresentationContext:
    id: int
    abstract_syntax: str | None = None  # RQ only
    transfer_syntaxes: list[str] = field(default_factory=list)  # RQ: offered; AC: the one accepted
    result: int | None = None  # AC only

    @property
    def result_text(self) -> str | None:
        return None if self.result is None else PC_RESULTS.get(self.result, f"unknown ({self.result})")


@dataclass(frozen=True, slots=True)
class RoleSelection:
    sop_class_uid: str
    scu_role: int
    scp_role: int


@dataclass(frozen=True, slots=True)
class ExtendedNegotiation:
    sop_class_uid: str
    application_information: bytes


@dataclass(slots=True)
class AssociateParameters:
    """A-ASSOCIATE-RQ or -AC, fully decoded."""

    is_request: bool
    protocol_version: int = 0
    called_ae: str = ""
    calling_ae: str = ""
    application_context: str | None = None
    contexts: list[PresentationContext] = field(default_factory=list)
    max_length: int | None = None
    implementation_class_uid: str | None = None
    implementation_version_name: str | None = None
    async_window: tuple[int, int] | None = None  # (max invoked, max performed)
    roles: list[RoleSelection] = field(default_factory=list)
    extended_negotiation: list[ExtendedNegotiation] = field(default_factory=list)
    common_extended_negotiation: list[str] = field(default_factory=list)  # SOP class UIDs
    user_identity_type: int | None = None
    user_identity_response_requested: bool | None = None
    user_identity_server_response: bool | None = None  # AC: a 0x59 item was present
    #: (item type, length) of every item and user-information sub-item, in order
    items: list[tuple[int, int]] = field(default_factory=list)
    user_items: list[tuple[int, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def context(self, context_id: int) -> PresentationContext | None:
        for context in self.contexts:
            if context.id == context_id:
                return context
        return None


def _text(raw: bytes) -> str:
    # surrogateescape: a byte that is not ASCII is kept, not replaced; the tables give it in hex.
    return raw.decode("ascii", "surrogateescape")


def _uid(raw: bytes) -> str:
    return raw.decode("ascii", "surrogateescape").rstrip("\x00 ")


def decode_associate(body: bytes, is_request: bool) -> AssociateParameters:
    """Decode the body (after the 6-byte header) of an A-ASSOCIATE-RQ or -AC."""
    params = AssociateParameters(is_request)
    if len(body) < 68:
        params.problems.append(f"A-ASSOCIATE body is {len(body)} bytes, shorter than its 68-byte fixed part")
        return params
    params.protocol_version = unpack_from(">H", body, 0)[0]
    params.called_ae = _text(body[4:20]).strip()
    params.calling_ae = _text(body[20:36]).strip()
    offset = 68
    while offset < len(body):
        if len(body) - offset < 4:
            params.problems.append(f"{len(body) - offset} stray bytes after the last item")
            break
        item_type = body[offset]
        length = unpack_from(">H", body, offset + 2)[0]
        value = body[offset + 4:offset + 4 + length]
        params.items.append((item_type, length))
        if len(value) < length:
            params.problems.append(f"item 0x{item_type:02X} of length {length} runs past the end of the PDU")
            break
        if item_type == 0x10:
            params.application_context = _uid(value)
        elif item_type in (0x20, 0x21):
            _decode_context(value, item_type, params)
        elif item_type == 0x50:
            _decode_user_information(value, params)
        else:
            params.problems.append(f"unknown item type 0x{item_type:02X} skipped")
        offset += 4 + length
    return params


def _decode_context(value: bytes, item_type: int, params: AssociateParameters) -> None:
    if len(value) < 4:
        params.problems.append(f"presentation context item 0x{item_type:02X} is {len(value)} bytes long")
        return
    context = PresentationContext(value[0])
    if item_type == 0x21:
        context.result = value[2]
    offset = 4
    while offset + 4 <= len(value):
        sub_type = value[offset]
        length = unpack_from(">H", value, offset + 2)[0]
        raw = value[offset + 4:offset + 4 + length]
        if len(raw) < length:
            params.problems.append(f"sub-item 0x{sub_type:02X} in context {context.id} is cut short")
            break
        if sub_type == 0x30:
            if context.abstract_syntax is not None:
                params.problems.append(f"context {context.id} has more than one abstract syntax")
            context.abstract_syntax = _uid(raw)
        elif sub_type == 0x40:
            context.transfer_syntaxes.append(_uid(raw))
        else:
            params.problems.append(f"unknown sub-item 0x{sub_type:02X} in context {context.id}")
        offset += 4 + length
    params.contexts.append(context)


def _decode_user_information(value: bytes, params: AssociateParameters) -> None:
    offset = 0
    while offset + 4 <= len(value):
        sub_type = value[offset]
        length = unpack_from(">H", value, offset + 2)[0]
        raw = value[offset + 4:offset + 4 + length]
        params.user_items.append((sub_type, length))
        if len(raw) < length:
            params.problems.append(f"user information sub-item 0x{sub_type:02X} is cut short")
            return
        try:
            _decode_user_item(sub_type, raw, params)
        except (IndexError, ValueError, StructError) as exc:  # struct.error is not a ValueError
            params.problems.append(f"user information sub-item 0x{sub_type:02X} is malformed ({exc})")
        offset += 4 + length
    if offset != len(value):
        params.problems.append("stray bytes at the end of the user information item")


def _prefixed_uid(raw: bytes) -> tuple[str, int]:
    """A UID with a 2-byte length before it, and the offset after it."""
    uid_length = unpack_from(">H", raw, 0)[0]
    end = 2 + uid_length
    if end > len(raw):
        raise ValueError(f"UID length {uid_length} runs past the sub-item")
    return _uid(raw[2:end]), end


def _decode_user_item(sub_type: int, raw: bytes, params: AssociateParameters) -> None:
    if sub_type == 0x51:
        params.max_length = unpack_from(">I", raw, 0)[0]
    elif sub_type == 0x52:
        params.implementation_class_uid = _uid(raw)
    elif sub_type == 0x53:
        params.async_window = unpack_from(">HH", raw, 0)
    elif sub_type == 0x54:
        uid, end = _prefixed_uid(raw)
        params.roles.append(RoleSelection(uid, raw[end], raw[end + 1]))
    elif sub_type == 0x55:
        params.implementation_version_name = _text(raw).strip()
    elif sub_type == 0x56:
        uid, end = _prefixed_uid(raw)
        params.extended_negotiation.append(ExtendedNegotiation(uid, bytes(raw[end:])))
    elif sub_type == 0x57:
        params.common_extended_negotiation.append(_prefixed_uid(raw)[0])
    elif sub_type == 0x58:
        # Type and the response flag only: the identity and passcode stay on the wire.
        params.user_identity_type = raw[0]
        params.user_identity_response_requested = bool(raw[1])
    elif sub_type == 0x59:
        params.user_identity_server_response = True
    else:
        params.problems.append(f"unknown user information sub-item 0x{sub_type:02X} skipped")


@dataclass(frozen=True, slots=True)
class AssociateReject:
    result: int
    source: int
    reason: int

    @property
    def text(self) -> str:
        reason = REJECT_REASONS.get(self.source, {}).get(self.reason, f"reason {self.reason}")
        return (f"{REJECT_RESULTS.get(self.result, f'result {self.result}')}, "
                f"{REJECT_SOURCES.get(self.source, f'source {self.source}')}, {reason}")


@dataclass(frozen=True, slots=True)
class Abort:
    source: int
    reason: int

    @property
    def text(self) -> str:
        source = ABORT_SOURCES.get(self.source, f"source {self.source}")
        if self.source != 2:
            return source
        return f"{source}, {ABORT_REASONS.get(self.reason, f'reason {self.reason}')}"


def decode_reject(body: bytes) -> AssociateReject:
    padded = body + b"\x00" * max(0, 4 - len(body))
    return AssociateReject(padded[1], padded[2], padded[3])


def decode_abort(body: bytes) -> Abort:
    padded = body + b"\x00" * max(0, 4 - len(body))
    return Abort(padded[2], padded[3])
