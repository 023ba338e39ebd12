"""decode_associate / decode_reject / decode_abort on pynetdicom-encoded PDUs."""

from __future__ import annotations

import dataclasses
import random

import pytest
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import PresentationContext as PynetContext
from pynetdicom.presentation import build_context
from ul_builders import abort, reject

from trace_analyzer.pdu_items import decode_abort, decode_associate, decode_reject

GET_PATIENT = "1.2.840.10008.5.1.4.1.2.1.3"
GET_STUDY = "1.2.840.10008.5.1.4.1.2.2.3"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"
CLASS_UID = "1.2.826.0.1.3680043.9.3811.3.0.4"
USERNAME = b"alice-the-user"
PASSWORD = b"Pa55w0rd-XYZZY-secret"


def user_items(request: bool) -> list:
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16382 if request else 0
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = CLASS_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = "PYNETDICOM_304"
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = 5 if request else 3
    window.maximum_number_operations_performed = 2 if request else 1
    role = SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid = CT_IMAGE
    role.scu_role = False
    role.scp_role = True
    extended = SOPClassExtendedNegotiation()
    extended.sop_class_uid = GET_STUDY
    extended.service_class_application_information = b"\x01\x00\x01"
    items = [max_length, class_uid, version, window, role, extended]
    if request:
        common = SOPClassCommonExtendedNegotiation()
        common.sop_class_uid = CT_IMAGE
        common.service_class_uid = "1.2.840.10008.4.2"
        identity = UserIdentityNegotiation()
        identity.user_identity_type = 2
        identity.primary_field = USERNAME
        identity.secondary_field = PASSWORD
        identity.positive_response_requested = True
        items += [common, identity]
    else:
        identity = UserIdentityNegotiation()
        identity.server_response = b""
        items.append(identity)
    return items


def primitive() -> A_ASSOCIATE:
    p = A_ASSOCIATE()
    p.application_context_name = APP_CONTEXT
    p.calling_ae_title = "GETSCU"
    p.called_ae_title = "ARCHIVE"
    return p


def rq_bytes() -> bytes:
    p = primitive()
    contexts = [build_context(GET_STUDY, [IMPLICIT, EXPLICIT]), build_context(CT_IMAGE, [EXPLICIT]),
                build_context(GET_PATIENT, [IMPLICIT])]
    for i, context in enumerate(contexts):
        context.context_id = 2 * i + 1
    p.presentation_context_definition_list = contexts
    p.user_information = user_items(True)
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(p)
    return pdu.encode()


def ac_bytes() -> bytes:
    p = primitive()
    p.result = 0
    results = []
    for context_id, result, syntax in ((1, 0, IMPLICIT), (3, 0, EXPLICIT), (5, 3, IMPLICIT)):
        context = PynetContext()
        context.context_id = context_id
        context.result = result
        context.transfer_syntax = [syntax]
        results.append(context)
    p.presentation_context_definition_results_list = results
    p.user_information = user_items(False)
    pdu = A_ASSOCIATE_AC()
    pdu.from_primitive(p)
    return pdu.encode()


def test_request_fully_decoded():
    params = decode_associate(rq_bytes()[6:], True)
    assert params.problems == []
    assert params.is_request
    assert params.protocol_version == 1
    assert (params.called_ae, params.calling_ae) == ("ARCHIVE", "GETSCU")
    assert params.application_context == APP_CONTEXT
    assert [(c.id, c.abstract_syntax, c.transfer_syntaxes, c.result) for c in params.contexts] == [
        (1, GET_STUDY, [IMPLICIT, EXPLICIT], None),
        (3, CT_IMAGE, [EXPLICIT], None),
        (5, GET_PATIENT, [IMPLICIT], None),
    ]
    assert params.context(3).abstract_syntax == CT_IMAGE
    assert params.context(7) is None
    assert params.max_length == 16382
    assert params.implementation_class_uid == CLASS_UID
    assert params.implementation_version_name == "PYNETDICOM_304"
    assert params.async_window == (5, 2)
    assert [(r.sop_class_uid, r.scu_role, r.scp_role) for r in params.roles] == [(CT_IMAGE, 0, 1)]
    assert [(e.sop_class_uid, e.application_information) for e in params.extended_negotiation] == [
        (GET_STUDY, b"\x01\x00\x01")]
    assert params.common_extended_negotiation == [CT_IMAGE]
    assert params.user_identity_type == 2
    assert params.user_identity_response_requested is True
    assert params.user_identity_server_response is None
    assert [t for t, _ in params.items] == [0x10, 0x20, 0x20, 0x20, 0x50]
    assert [t for t, _ in params.user_items] == [0x51, 0x52, 0x55, 0x53, 0x54, 0x56, 0x57, 0x58]
    assert dict(params.user_items)[0x51] == 4


def _all_values(obj, seen=None):
    """Every leaf value reachable from a decoded record."""
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _all_values(getattr(obj, f.name))
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _all_values(item)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _all_values(key)
            yield from _all_values(value)
    else:
        yield obj


def _holds(value, secret: bytes) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return secret in bytes(value)
    return secret.decode() in str(value)


def test_password_appears_nowhere():
    raw = rq_bytes()
    assert PASSWORD in raw  # it was on the wire
    params = decode_associate(raw[6:], True)
    assert PASSWORD.decode() not in repr(params)
    assert USERNAME.decode() not in repr(params)
    for value in _all_values(params):
        assert not _holds(value, PASSWORD)
        assert not _holds(value, USERNAME)
    for attribute in dir(params):
        if not attribute.startswith("__"):
            assert not _holds(getattr(params, attribute), PASSWORD)


def test_password_appears_nowhere_when_truncated():
    raw = rq_bytes()[6:]
    where = raw.index(PASSWORD)
    for cut in range(where - 12, where + len(PASSWORD) + 1):
        params = decode_associate(raw[:cut], True)
        assert PASSWORD[:4].decode() not in repr(params)


def test_accept_fully_decoded():
    params = decode_associate(ac_bytes()[6:], False)
    assert params.problems == []
    assert not params.is_request
    assert params.application_context == APP_CONTEXT
    contexts = [(c.id, c.result, c.result_text, c.transfer_syntaxes, c.abstract_syntax)
                for c in params.contexts]
    assert contexts == [
        (1, 0, "acceptance", [IMPLICIT], None),
        (3, 0, "acceptance", [EXPLICIT], None),
        (5, 3, "abstract-syntax-not-supported (provider rejection)", [IMPLICIT], None),
    ]
    assert params.max_length == 0
    assert params.implementation_class_uid == CLASS_UID
    assert params.async_window == (3, 1)
    assert [(r.sop_class_uid, r.scu_role, r.scp_role) for r in params.roles] == [(CT_IMAGE, 0, 1)]
    assert params.user_identity_server_response is True
    assert params.user_identity_type is None


def _top_level_boundaries(body: bytes) -> set[int]:
    offsets, offset = {68}, 68
    while offset + 4 <= len(body):
        offset += 4 + int.from_bytes(body[offset + 2:offset + 4], "big")
        offsets.add(offset)
    return offsets


@pytest.mark.parametrize("make", [rq_bytes, ac_bytes])
def test_every_truncation_reports_problems(make):
    body = make()[6:]
    boundaries = _top_level_boundaries(body)
    for cut in range(len(body)):
        params = decode_associate(body[:cut], make is rq_bytes)
        if cut < 68 or cut not in boundaries:
            assert params.problems, f"no problem reported for a body cut at {cut}"
        else:
            assert params.problems == []


def test_garbage_items_give_problems_never_raise():
    rng = random.Random(7)
    fixed = rq_bytes()[6:74]
    for _ in range(500):
        garbage = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 120)))
        decode_associate(fixed + garbage, True)
        decode_associate(fixed + garbage, False)


def _user_info(*sub_items: bytes) -> bytes:
    value = b"".join(sub_items)
    return rq_bytes()[6:74] + b"\x50\x00" + len(value).to_bytes(2, "big") + value


@pytest.mark.parametrize("sub_item", [
    b"\x51\x00\x00\x02\x00\x01",  # max length of 2 bytes
    b"\x53\x00\x00\x02\x00\x01",  # async window of 2 bytes
    b"\x54\x00\x00\x04\x00\x10ab",  # role selection whose UID length overruns
    b"\x56\x00\x00\x01\x00",  # extended negotiation without a UID length
    b"\x56\x00\x00\x04\x00\x09ab",  # extended negotiation whose UID length overruns
    b"\x57\x00\x00\x00",
    b"\x58\x00\x00\x01\x02",  # user identity without the response flag
])
def test_malformed_user_sub_items_are_problems(sub_item):
    params = decode_associate(_user_info(sub_item, b"\x52\x00\x00\x03" + b"1.2"), True)
    assert params.problems
    assert params.implementation_class_uid == "1.2"  # the next sub-item is still read


def test_unknown_items_reported_and_skipped():
    body = rq_bytes()[6:74] + b"\x33\x00\x00\x02ab" + b"\x10\x00\x00\x03" + b"1.2"
    params = decode_associate(body, True)
    assert any("0x33" in p for p in params.problems)
    assert params.application_context == "1.2"


def test_short_fixed_part():
    params = decode_associate(b"\x00\x01" + b" " * 20, True)
    assert params.problems and "68-byte" in params.problems[0]


def test_reject_text():
    body = reject(1, 1, 7)[6:]
    rj = decode_reject(body)
    assert (rj.result, rj.source, rj.reason) == (1, 1, 7)
    assert rj.text == "rejected-permanent, service-user, called-AE-title-not-recognized"
    assert decode_reject(reject(2, 3, 1)[6:]).text == \
        "rejected-transient, service-provider (Presentation), temporary-congestion"
    assert decode_reject(reject(1, 2, 2)[6:]).text == \
        "rejected-permanent, service-provider (ACSE), protocol-version-not-supported"
    assert decode_reject(b"\x00\x09\x08\x05").text == "result 9, source 8, reason 5"
    assert decode_reject(b"").text.startswith("result 0")


def test_abort_text():
    ab = decode_abort(abort(2, 1)[6:])
    assert (ab.source, ab.reason) == (2, 1)
    assert ab.text == "service-provider, unrecognized-PDU"
    assert decode_abort(abort(0, 0)[6:]).text == "service-user"
    assert decode_abort(b"\x00\x00\x02\x03").text == "service-provider, reason 3"
    assert decode_abort(b"\x00\x00\x05\x00").text == "source 5"
    assert decode_abort(b"\x00").source == 0
