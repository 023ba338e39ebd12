"""Tests for trace_analyzer.primitives.

The first class re-states pynetdicom 3.0.4's ``TestPrimitive_C_GET`` checks
(prior-art.md 2.6) against our C_GET; the rest build real command sets with
pynetdicom's encoder or by hand, decode them with our command-set decoder
and check what ``from_message`` records.
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import dimse_messages, dimse_primitives
from pynetdicom.dsutils import encode

from trace_analyzer import config, primitives
from trace_analyzer.commandset import decode_command_set
from trace_analyzer.dimse import DimseMessage
from trace_analyzer.primitives import (
    C_CANCEL,
    C_GET,
    C_STORE,
    decode_identifier,
    primitive_from_message,
)

GET_PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.3"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"


@pytest.fixture(autouse=True)
def _restore_uid_conformance():
    saved = config.ENFORCE_UID_CONFORMANCE
    yield
    config.ENFORCE_UID_CONFORMANCE = saved


# ---------------------------------------------------------------------------
# helpers


def _query() -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = "*"
    return ds


def _encode_with_pynetdicom(primitive, message_class) -> tuple[bytes, bytes | None]:
    """Return (command set bytes, data set bytes or None) as pynetdicom sends them."""
    message = message_class()
    message.primitive_to_message(primitive)
    command, data = b"", b""
    has_data = False
    for p_data in message.encode_msg(1, 16382):
        for _context_id, pdv in p_data.presentation_data_value_list:
            control, fragment = pdv[0], pdv[1:]
            if control & 0x01:
                command += fragment
            else:
                has_data = True
                data += fragment
    return command, (data if has_data else None)


def _element(element: int, vr: str, value) -> bytes:
    """One group 0000 element, Implicit VR LE; bytes values are sent as they are."""
    if isinstance(value, bytes):
        raw = value
    elif vr == "US":
        raw = struct.pack("<H", value)
    elif vr == "UL":
        raw = struct.pack("<I", value)
    elif vr == "AT":
        raw = b"".join(struct.pack("<HH", tag >> 16, tag & 0xFFFF) for tag in value)
    else:
        raw = value.encode("ascii")
        if len(raw) % 2:
            raw += b"\x00" if vr == "UI" else b" "
    return struct.pack("<HHI", 0x0000, element, len(raw)) + raw


def _command(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return _element(0x0000, "UL", len(body)) + body


def _message(command: bytes, data: bytes | None = None, transfer_syntax: str | None = IMPLICIT_LE,
             sender: str = "requestor") -> DimseMessage:
    return DimseMessage(
        decode_command_set(command),
        context_id=1,
        frame=42,
        time=1700000000.25,
        sender=sender,
        data_set=data,
        data_set_length=len(data) if data is not None else 0,
        capture="loopback.pcapng",
        association=3,
        transfer_syntax=transfer_syntax,
    )


def _get_rq(priority: int = 2, uid: str = GET_PATIENT_ROOT) -> bytes:
    return _command(
        _element(0x0002, "UI", uid),
        _element(0x0100, "US", 0x0010),
        _element(0x0110, "US", 7),
        _element(0x0700, "US", priority),
        _element(0x0800, "US", 0x0001),
    )


# ---------------------------------------------------------------------------
# pynetdicom 3.0.4 TestPrimitive_C_GET, restated


class TestPynetdicomCompatibility:
    def test_assignment(self):
        primitive = C_GET()

        primitive.MessageID = 11
        assert primitive.MessageID == 11

        primitive.MessageIDBeingRespondedTo = 13
        assert primitive.MessageIDBeingRespondedTo == 13

        primitive.AffectedSOPClassUID = "1.1.1"
        assert primitive.AffectedSOPClassUID == UID("1.1.1")
        assert isinstance(primitive.AffectedSOPClassUID, UID)
        primitive.AffectedSOPClassUID = UID("1.1.2")
        assert primitive.AffectedSOPClassUID == UID("1.1.2")
        assert isinstance(primitive.AffectedSOPClassUID, UID)
        primitive.AffectedSOPClassUID = b"1.1.3"
        assert primitive.AffectedSOPClassUID == UID("1.1.3")
        assert isinstance(primitive.AffectedSOPClassUID, UID)

        primitive.Priority = 0x02
        assert primitive.Priority == 0x02

        ref = Dataset()
        ref.PatientID = "1234567"
        primitive.Identifier = BytesIO(encode(ref, True, True))

        primitive.Status = 0x0000
        assert primitive.Status == 0x0000
        primitive.Status = 0xC123
        assert primitive.Status == 0xC123
        primitive.Status = 0xEE01  # not a valid class, still accepted
        assert primitive.Status == 0xEE01

        primitive.NumberOfRemainingSuboperations = 1
        assert primitive.NumberOfRemainingSuboperations == 1
        primitive.NumberOfCompletedSuboperations = 2
        assert primitive.NumberOfCompletedSuboperations == 2
        primitive.NumberOfFailedSuboperations = 3
        assert primitive.NumberOfFailedSuboperations == 3
        primitive.NumberOfWarningSuboperations = 4
        assert primitive.NumberOfWarningSuboperations == 4

    def test_uid_exceptions_false(self):
        config.ENFORCE_UID_CONFORMANCE = False
        primitive = C_GET()
        primitive.AffectedSOPClassUID = "abc"
        assert primitive.AffectedSOPClassUID == "abc"
        with pytest.raises(ValueError):
            primitive.AffectedSOPClassUID = "abc" * 22

    def test_uid_exceptions_true(self):
        config.ENFORCE_UID_CONFORMANCE = True
        primitive = C_GET()
        with pytest.raises(ValueError):
            primitive.AffectedSOPClassUID = "abc"

    def test_exceptions(self):
        primitive = C_GET()

        for keyword in ("MessageID", "MessageIDBeingRespondedTo"):
            with pytest.raises(TypeError):
                setattr(primitive, keyword, "halp")
            with pytest.raises(TypeError):
                setattr(primitive, keyword, 1.111)
            with pytest.raises(ValueError):
                setattr(primitive, keyword, 65536)
            with pytest.raises(ValueError):
                setattr(primitive, keyword, -1)

        for keyword in (
            "NumberOfRemainingSuboperations",
            "NumberOfCompletedSuboperations",
            "NumberOfFailedSuboperations",
            "NumberOfWarningSuboperations",
        ):
            with pytest.raises(TypeError):
                setattr(primitive, keyword, "halp")
            with pytest.raises(TypeError):
                setattr(primitive, keyword, 1.111)
            with pytest.raises(ValueError):
                setattr(primitive, keyword, -1)

        with pytest.raises(TypeError):
            primitive.AffectedSOPClassUID = 45.2
        with pytest.raises(TypeError):
            primitive.AffectedSOPClassUID = 100

        for bad in (45.2, "abc", -1, 3):
            with pytest.raises(ValueError):
                primitive.Priority = bad

        with pytest.raises(TypeError, match="'Identifier' parameter must be a BytesIO object"):
            primitive.Identifier = "halp"
        for bad in (1.111, 50, [30, 10]):
            with pytest.raises(TypeError):
                primitive.Identifier = bad

        with pytest.raises(TypeError):
            primitive.Status = 19.4

    def test_is_valid_request(self):
        primitive = C_GET()
        assert not primitive.is_valid_request
        primitive.MessageID = 1
        assert not primitive.is_valid_request
        primitive.AffectedSOPClassUID = "1.2"
        assert not primitive.is_valid_request
        primitive.Priority = 2
        assert not primitive.is_valid_request
        primitive.Identifier = BytesIO()
        assert primitive.is_valid_request

    def test_is_valid_response(self):
        primitive = C_GET()
        assert not primitive.is_valid_response
        primitive.MessageIDBeingRespondedTo = 1
        assert not primitive.is_valid_response
        primitive.Status = 0x0000
        assert primitive.is_valid_response


class TestCGetPrimitiveExtras:
    def test_defaults_and_constants(self):
        primitive = C_GET()
        assert primitive.msg_type == "C-GET"
        assert primitive.Priority == 2
        assert primitive.Identifier is None
        assert primitive.NumberOfRemainingSuboperations is None
        assert primitive.ErrorComment is None and primitive.OffendingElement is None
        assert C_GET.REQUEST_KEYWORDS == ("MessageID", "AffectedSOPClassUID", "Priority", "Identifier")
        assert C_GET.RESPONSE_KEYWORDS == ("MessageIDBeingRespondedTo", "Status")
        assert C_GET.STATUS_OPTIONAL_KEYWORDS == (
            "ErrorComment",
            "OffendingElement",
            "NumberOfRemainingSuboperations",
            "NumberOfCompletedSuboperations",
            "NumberOfFailedSuboperations",
            "NumberOfWarningSuboperations",
        )
        # trace context starts empty
        assert primitive.frame is None and primitive.capture is None and primitive.sender is None
        assert primitive.elements == () and primitive.wire == {} and primitive.problems == []
        assert primitive.findings == []
        assert primitive.identifier_dataset is None

    def test_empty_uid_is_none_and_boundaries(self):
        primitive = C_GET()
        primitive.AffectedSOPClassUID = "1.2"
        primitive.AffectedSOPClassUID = ""
        assert primitive.AffectedSOPClassUID is None
        primitive.AffectedSOPClassUID = "1" * 64
        assert len(primitive.AffectedSOPClassUID) == 64
        primitive.MessageID = 0
        primitive.MessageID = 65535
        assert primitive.MessageID == 65535
        primitive.MessageID = None
        assert primitive.MessageID is None

    def test_conformance_read_at_call_time(self):
        primitive = C_GET()
        config.ENFORCE_UID_CONFORMANCE = True
        with pytest.raises(ValueError):
            primitive.AffectedSOPClassUID = "1.02.3"
        primitive.AffectedSOPClassUID = "1.0.3"
        config.ENFORCE_UID_CONFORMANCE = False
        primitive.AffectedSOPClassUID = "1.02.3"
        assert primitive.AffectedSOPClassUID == "1.02.3"

    def test_direction_is_sender(self):
        primitive = C_GET()
        primitive.direction = "acceptor"
        assert primitive.sender == "acceptor"


# ---------------------------------------------------------------------------
# from_message


class TestFromMessage:
    def test_request_from_pynetdicom(self):
        sent = dimse_primitives.C_GET()
        sent.MessageID = 7
        sent.AffectedSOPClassUID = GET_PATIENT_ROOT
        sent.Priority = 1
        sent.Identifier = BytesIO(encode(_query(), True, True))
        command, data = _encode_with_pynetdicom(sent, dimse_messages.C_GET_RQ)

        primitive = C_GET.from_message(_message(command, data))

        assert primitive.is_request and not primitive.is_response
        assert primitive.MessageID == 7
        assert primitive.AffectedSOPClassUID == GET_PATIENT_ROOT
        assert isinstance(primitive.AffectedSOPClassUID, UID)
        assert primitive.Priority == 1
        assert primitive.Identifier.getvalue() == data
        assert primitive.is_valid_request
        assert primitive.elements == (
            "CommandGroupLength",
            "AffectedSOPClassUID",
            "CommandField",
            "MessageID",
            "Priority",
            "CommandDataSetType",
        )
        assert primitive.wire["CommandField"] == 0x0010
        assert primitive.wire["Priority"] == 1
        assert primitive.problems == []
        # trace context
        assert primitive.capture == "loopback.pcapng"
        assert primitive.frame == 42
        assert primitive.time == 1700000000.25
        assert primitive.association == 3
        assert primitive.sender == primitive.direction == "requestor"
        assert primitive.context_id == 1
        assert primitive.transfer_syntax == IMPLICIT_LE
        assert primitive.data_set_length == len(data)
        assert primitive.findings == []
        # response-only fields stay absent
        assert primitive.MessageIDBeingRespondedTo is None
        assert primitive.Status is None
        ds = primitive.identifier_dataset
        assert ds.QueryRetrieveLevel == "PATIENT"
        assert ds.PatientID == "*"
        assert primitive.problems == []

    def test_pending_response_from_pynetdicom(self):
        sent = dimse_primitives.C_GET()
        sent.MessageIDBeingRespondedTo = 5
        sent.AffectedSOPClassUID = GET_PATIENT_ROOT
        sent.Status = 0xFF00
        sent.NumberOfRemainingSuboperations = 3
        sent.NumberOfCompletedSuboperations = 1
        sent.NumberOfFailedSuboperations = 2
        sent.NumberOfWarningSuboperations = 4
        command, data = _encode_with_pynetdicom(sent, dimse_messages.C_GET_RSP)
        assert data is None

        primitive = C_GET.from_message(_message(command, data, sender="acceptor"))

        assert primitive.is_response and not primitive.is_request
        assert primitive.MessageIDBeingRespondedTo == 5
        assert primitive.Status == 0xFF00
        assert (
            primitive.NumberOfRemainingSuboperations,
            primitive.NumberOfCompletedSuboperations,
            primitive.NumberOfFailedSuboperations,
            primitive.NumberOfWarningSuboperations,
        ) == (3, 1, 2, 4)
        assert primitive.is_valid_response
        assert primitive.elements == (
            "CommandGroupLength",
            "AffectedSOPClassUID",
            "CommandField",
            "MessageIDBeingRespondedTo",
            "CommandDataSetType",
            "Status",
            "NumberOfRemainingSuboperations",
            "NumberOfCompletedSuboperations",
            "NumberOfFailedSuboperations",
            "NumberOfWarningSuboperations",
        )
        assert primitive.sender == "acceptor"
        assert primitive.Identifier is None
        assert primitive.identifier_dataset is None
        assert primitive.data_set_length == 0
        assert primitive.problems == []
        # request-only fields are not taken from a response
        assert primitive.MessageID is None
        assert primitive.Priority is None

    def test_failure_response_absent_counters_are_none(self):
        failed = Dataset()
        failed.FailedSOPInstanceUIDList = ""
        data = encode(failed, True, True)
        command = _command(
            _element(0x0002, "UI", GET_PATIENT_ROOT),
            _element(0x0100, "US", 0x8010),
            _element(0x0120, "US", 9),
            _element(0x0800, "US", 0x0001),
            _element(0x0900, "US", 0xA900),
            _element(0x0901, "AT", [0x00100020, 0x00080052]),
            _element(0x0902, "LO", "Identifier does not match"),
        )
        primitive = C_GET.from_message(_message(command, data, sender="acceptor"))

        assert primitive.Status == 0xA900
        assert primitive.NumberOfRemainingSuboperations is None
        assert primitive.NumberOfCompletedSuboperations is None
        assert primitive.NumberOfFailedSuboperations is None
        assert primitive.NumberOfWarningSuboperations is None
        assert "NumberOfFailedSuboperations" not in primitive.wire
        assert primitive.OffendingElement == [0x00100020, 0x00080052]
        assert primitive.ErrorComment == "Identifier does not match"
        assert primitive.elements[-2:] == ("OffendingElement", "ErrorComment")
        assert "FailedSOPInstanceUIDList" in primitive.identifier_dataset
        assert primitive.problems == []

    def test_zero_counters_stay_zero(self):
        command = _command(
            _element(0x0100, "US", 0x8010),
            _element(0x0120, "US", 9),
            _element(0x0800, "US", 0x0101),
            _element(0x0900, "US", 0x0000),
            _element(0x1021, "US", 0),
            _element(0x1022, "US", 0),
            _element(0x1023, "US", 0),
        )
        primitive = C_GET.from_message(_message(command))
        assert primitive.NumberOfRemainingSuboperations is None
        assert primitive.NumberOfCompletedSuboperations == 0
        assert primitive.NumberOfFailedSuboperations == 0
        assert primitive.AffectedSOPClassUID is None

    def test_priority_7_is_recorded_with_a_problem(self):
        primitive = C_GET.from_message(_message(_get_rq(priority=7)))
        assert primitive.Priority == 7
        assert primitive.wire["Priority"] == 7
        assert any("Priority 7 is not 0, 1 or 2" in problem for problem in primitive.problems)
        # the setter itself still refuses it
        with pytest.raises(ValueError):
            primitive.Priority = 7

    def test_missing_priority_reads_none(self):
        command = _command(
            _element(0x0002, "UI", GET_PATIENT_ROOT),
            _element(0x0100, "US", 0x0010),
            _element(0x0110, "US", 7),
            _element(0x0800, "US", 0x0001),
        )
        primitive = C_GET.from_message(_message(command, encode(_query(), True, True)))
        assert primitive.Priority is None
        assert "Priority" not in primitive.elements
        assert not primitive.is_valid_request

    def test_long_uid_is_recorded_with_a_problem(self):
        long_uid = "1.2." + "3" * 62
        assert len(long_uid) == 66
        primitive = C_GET.from_message(_message(_get_rq(uid=long_uid)))
        assert primitive.AffectedSOPClassUID == long_uid
        assert primitive.wire["AffectedSOPClassUID"] == long_uid
        assert any("66 characters" in problem for problem in primitive.problems)

    def test_nonconformant_uid_depends_on_switch(self):
        config.ENFORCE_UID_CONFORMANCE = False
        primitive = C_GET.from_message(_message(_get_rq(uid="1.02.3")))
        assert primitive.AffectedSOPClassUID == "1.02.3"
        assert primitive.problems == []

        config.ENFORCE_UID_CONFORMANCE = True
        primitive = C_GET.from_message(_message(_get_rq(uid="1.02.3")))
        assert primitive.AffectedSOPClassUID == "1.02.3"
        assert any("not a conformant UID" in problem for problem in primitive.problems)

    def test_counter_with_wrong_length_is_kept_raw(self):
        command = _command(
            _element(0x0100, "US", 0x8010),
            _element(0x0120, "US", 9),
            _element(0x0800, "US", 0x0101),
            _element(0x0900, "US", 0xFF00),
            _element(0x1020, "US", b"\x02\x00\x00\x00"),  # a US sent with 4 bytes
            _element(0x1021, "US", 1),
            _element(0x1022, "US", 0),
            _element(0x1023, "US", 0),
        )
        primitive = C_GET.from_message(_message(command))
        assert primitive.NumberOfRemainingSuboperations == b"\x02\x00\x00\x00"
        assert primitive.wire["NumberOfRemainingSuboperations"] == b"\x02\x00\x00\x00"
        assert primitive.NumberOfCompletedSuboperations == 1
        assert any(
            "NumberOfRemainingSuboperations" in problem and "raw bytes" in problem
            for problem in primitive.problems
        )

    def test_wrong_command_field_raises(self):
        command = _command(_element(0x0100, "US", 0x0030), _element(0x0800, "US", 0x0101))
        with pytest.raises(ValueError):
            C_GET.from_message(_message(command))


class TestIdentifierDecoding:
    def _request(self, data: bytes, transfer_syntax: str | None) -> C_GET:
        return C_GET.from_message(_message(_get_rq(), data, transfer_syntax=transfer_syntax))

    def test_implicit_little_endian(self):
        primitive = self._request(encode(_query(), True, True), IMPLICIT_LE)
        assert primitive.identifier_dataset.PatientID == "*"
        assert primitive.identifier_dataset.QueryRetrieveLevel == "PATIENT"
        # decoded once and cached
        assert primitive.identifier_dataset is primitive.identifier_dataset

    def test_explicit_little_endian(self):
        primitive = self._request(encode(_query(), False, True), EXPLICIT_LE)
        assert primitive.identifier_dataset.QueryRetrieveLevel == "PATIENT"
        assert primitive.problems == []

    def test_explicit_big_endian(self):
        data = encode(_query(), False, False)
        assert data[:2] == b"\x00\x08"  # really big endian
        primitive = self._request(data, EXPLICIT_BE)
        assert primitive.identifier_dataset.PatientID == "*"
        assert primitive.identifier_dataset.QueryRetrieveLevel == "PATIENT"
        assert primitive.problems == []

    def test_deflated(self):
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = compressor.compress(encode(_query(), False, True)) + compressor.flush()
        primitive = self._request(data, DEFLATED_LE)
        assert primitive.identifier_dataset.PatientID == "*"
        assert primitive.identifier_dataset.QueryRetrieveLevel == "PATIENT"
        assert primitive.problems == []

    def test_deflated_with_zlib_header_is_decoded_and_flagged(self):
        data = zlib.compress(encode(_query(), False, True))
        primitive = self._request(data, DEFLATED_LE)
        assert primitive.identifier_dataset.PatientID == "*"
        assert any("zlib" in problem for problem in primitive.problems)

    def test_cut_deflate_stream_is_flagged(self):
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = compressor.compress(encode(_query(), False, True)) + compressor.flush()
        primitive = self._request(data[:-3], DEFLATED_LE)
        _ = primitive.identifier_dataset  # decoding must not raise
        assert any("truncated" in problem for problem in primitive.problems)

    def test_bad_deflate_gives_none_and_problem(self):
        primitive = self._request(b"\xff\xfe\xfd\xfc" * 4, DEFLATED_LE)
        assert primitive.identifier_dataset is None
        assert any("inflated" in problem for problem in primitive.problems)

    def test_truncated_value_is_flagged(self):
        # an explicit VR element whose length runs far past the data: pydicom
        # silently shortens the value, we say so
        data = b"\x08\x00\x52\x00CS\xff\x7fPATIENT"
        primitive = self._request(data, EXPLICIT_LE)
        assert primitive.identifier_dataset.QueryRetrieveLevel == "PATIENT"
        assert any("32767" in problem and "truncated" in problem for problem in primitive.problems)

    def test_wrong_vr_mode_is_flagged(self):
        # implicit VR bytes on an explicit VR context: pydicom copes and warns
        primitive = self._request(encode(_query(), True, True), EXPLICIT_LE)
        assert primitive.identifier_dataset.PatientID == "*"
        assert any("implicit VR" in problem for problem in primitive.problems)

    def test_decoder_failure_gives_none_and_problem(self, monkeypatch):
        def explode(*args, **kwargs):
            raise struct.error("unpack requires a buffer of 4 bytes")

        monkeypatch.setattr(primitives, "read_dataset", explode)
        primitive = self._request(encode(_query(), True, True), IMPLICIT_LE)
        assert primitive.identifier_dataset is None
        assert "could not be decoded" in primitive.problems[-1]
        # decoded once: asking again neither raises nor repeats the problem
        assert primitive.identifier_dataset is None
        assert len(primitive.problems) == 1

    def test_unknown_transfer_syntax_is_guessed(self):
        primitive = self._request(encode(_query(), True, True), None)
        assert primitive.identifier_dataset.PatientID == "*"
        assert any("transfer syntax unknown" in problem for problem in primitive.problems)
        dataset, problems = decode_identifier(encode(_query(), False, True), "1.2.3.4.5")
        assert dataset.PatientID == "*"
        assert "not known" in problems[0]

    def test_compressed_pixel_syntax_uses_explicit_le(self):
        dataset, problems = decode_identifier(encode(_query(), False, True), "1.2.840.10008.1.2.4.50")
        assert dataset.QueryRetrieveLevel == "PATIENT"
        assert problems == []

    def test_reassigning_identifier_resets_cache(self):
        primitive = self._request(encode(_query(), True, True), IMPLICIT_LE)
        assert primitive.identifier_dataset.PatientID == "*"
        other = Dataset()
        other.PatientID = "12345"
        primitive.Identifier = BytesIO(encode(other, True, True))
        assert primitive.identifier_dataset.PatientID == "12345"


class TestOtherPrimitives:
    def test_c_store_request_keeps_no_bulk(self):
        sent = dimse_primitives.C_STORE()
        sent.MessageID = 12
        sent.AffectedSOPClassUID = CT_IMAGE_STORAGE
        sent.AffectedSOPInstanceUID = "1.2.3.4.5"
        sent.Priority = 2
        image = Dataset()
        image.SOPClassUID = CT_IMAGE_STORAGE
        image.SOPInstanceUID = "1.2.3.4.5"
        sent.DataSet = BytesIO(encode(image, True, True))
        command, data = _encode_with_pynetdicom(sent, dimse_messages.C_STORE_RQ)
        msg = _message(command, None, sender="acceptor")
        msg.data_set_length = len(data)  # the assembler counts C-STORE data, never keeps it

        primitive = primitive_from_message(msg)

        assert isinstance(primitive, C_STORE)
        assert primitive.msg_type == "C-STORE"
        assert primitive.is_request
        assert primitive.MessageID == 12
        assert primitive.AffectedSOPClassUID == CT_IMAGE_STORAGE
        assert primitive.AffectedSOPInstanceUID == "1.2.3.4.5"
        assert primitive.Priority == 2
        assert primitive.MoveOriginatorApplicationEntityTitle is None
        assert primitive.MoveOriginatorMessageID is None
        assert primitive.data_set_length == len(data)
        assert primitive.sender == "acceptor"
        assert primitive.elements[:3] == ("CommandGroupLength", "AffectedSOPClassUID", "CommandField")
        assert not hasattr(primitive, "DataSet")

    def test_c_store_response(self):
        command = _command(
            _element(0x0002, "UI", CT_IMAGE_STORAGE),
            _element(0x0100, "US", 0x8001),
            _element(0x0120, "US", 12),
            _element(0x0800, "US", 0x0101),
            _element(0x0900, "US", 0xB000),
            _element(0x0902, "LO", "coerced"),
            _element(0x1000, "UI", "1.2.3.4.5"),
        )
        primitive = primitive_from_message(_message(command))
        assert isinstance(primitive, C_STORE)
        assert primitive.is_response
        assert primitive.MessageIDBeingRespondedTo == 12
        assert primitive.Status == 0xB000
        assert primitive.ErrorComment == "coerced"
        assert primitive.AffectedSOPInstanceUID == "1.2.3.4.5"
        assert primitive.MessageID is None

    def test_c_cancel(self):
        sent = dimse_primitives.C_CANCEL()
        sent.MessageIDBeingRespondedTo = 7
        command, data = _encode_with_pynetdicom(sent, dimse_messages.C_CANCEL_RQ)
        assert data is None
        primitive = primitive_from_message(_message(command))
        assert isinstance(primitive, C_CANCEL)
        assert primitive.msg_type == "C-CANCEL"
        assert primitive.is_request and not primitive.is_response
        assert primitive.MessageIDBeingRespondedTo == 7
        assert primitive.elements == (
            "CommandGroupLength", "CommandField", "MessageIDBeingRespondedTo", "CommandDataSetType",
        )

    def test_dispatch(self):
        assert isinstance(primitive_from_message(_message(_get_rq())), C_GET)
        echo = _command(_element(0x0100, "US", 0x0030), _element(0x0800, "US", 0x0101))
        assert type(primitive_from_message(_message(echo))).__name__ == "C_ECHO"
        n_get = _command(_element(0x0100, "US", 0x0110), _element(0x0800, "US", 0x0101))
        assert primitive_from_message(_message(n_get)) is None  # N- services stay messages only
        no_field = _command(_element(0x0800, "US", 0x0101))
        assert primitive_from_message(_message(no_field)) is None
