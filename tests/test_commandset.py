"""decode_command_set on real (pynetdicom) and damaged command sets."""

from __future__ import annotations

import struct

from ul_builders import (
    CT_IMAGE,
    GET_STUDY,
    c_cancel_rq_message,
    c_get_rq_message,
    c_get_rsp_message,
    c_store_rq_message,
    command_bytes,
)

from trace_analyzer.commandset import (
    C_CANCEL_RQ,
    C_GET_RQ,
    C_GET_RSP,
    C_STORE_RQ,
    decode_command_set,
)


def element(group: int, elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", group, elem, len(value)) + value


def us(elem: int, value: int) -> bytes:
    return element(0, elem, struct.pack("<H", value))


def with_group_length(*elements: bytes) -> bytes:
    rest = b"".join(elements)
    return element(0, 0, struct.pack("<I", len(rest))) + rest


def test_c_get_rq():
    raw = command_bytes(c_get_rq_message(7))
    command = decode_command_set(raw)
    assert command.problems == []
    assert command.keywords == ("CommandGroupLength", "AffectedSOPClassUID", "CommandField", "MessageID",
                                "Priority", "CommandDataSetType")
    assert [e.tag for e in command.elements] == [0x0000, 0x0002, 0x0100, 0x0110, 0x0700, 0x0800]
    assert command.get("CommandGroupLength") == len(raw) - 12
    assert command.get("AffectedSOPClassUID") == GET_STUDY
    assert command.element("AffectedSOPClassUID").length == len(GET_STUDY) + 1  # NUL padded to even
    assert command.element("AffectedSOPClassUID").vr == "UI"
    assert command.command_field == C_GET_RQ
    assert command.command_name == "C-GET-RQ"
    assert command.get("MessageID") == 7
    assert command.get("Priority") == 0
    assert command.has_data_set
    assert all(e.length == 2 for e in command.elements if e.vr == "US")


def test_c_get_rsp_with_counters():
    command = decode_command_set(command_bytes(c_get_rsp_message(0xFF00, counters=True)))
    assert command.problems == []
    assert command.command_field == C_GET_RSP
    assert command.get("MessageIDBeingRespondedTo") == 7
    assert command.get("Status") == 0xFF00
    assert command.get("NumberOfRemainingSuboperations") == 3
    assert command.get("NumberOfFailedSuboperations") == 1
    assert command.get("NumberOfWarningSuboperations") == 2
    # A zero counter is present, with value 0.
    assert command.has("NumberOfCompletedSuboperations")
    assert command.get("NumberOfCompletedSuboperations") == 0
    assert command.get("CommandDataSetType") == 0x0101
    assert not command.has_data_set
    assert command.keywords[-4:] == ("NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
                                     "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")


def test_c_get_rsp_without_counters():
    command = decode_command_set(command_bytes(c_get_rsp_message(0x0000, counters=False)))
    assert command.problems == []
    assert command.get("Status") == 0
    assert command.has("Status")
    for keyword in ("NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations",
                    "NumberOfFailedSuboperations", "NumberOfWarningSuboperations"):
        assert not command.has(keyword)
        assert command.get(keyword) is None
        assert command.element(keyword) is None
    assert command.get("NumberOfFailedSuboperations", "absent") == "absent"


def test_c_store_rq():
    command = decode_command_set(command_bytes(c_store_rq_message()))
    assert command.problems == []
    assert command.command_field == C_STORE_RQ
    assert command.get("AffectedSOPClassUID") == CT_IMAGE
    assert command.get("AffectedSOPInstanceUID") == "1.2.3.4.5.6"
    assert command.get("MoveOriginatorApplicationEntityTitle") == "GETSCU"
    assert command.get("MoveOriginatorMessageID") == 7
    assert command.has_data_set
    tags = [e.tag for e in command.elements]
    assert tags == sorted(tags)


def test_c_cancel_rq():
    raw = command_bytes(c_cancel_rq_message(7))
    command = decode_command_set(raw)
    assert command.problems == []
    assert command.command_field == C_CANCEL_RQ
    assert command.command_name == "C-CANCEL-RQ"
    assert command.keywords == ("CommandGroupLength", "CommandField", "MessageIDBeingRespondedTo",
                                "CommandDataSetType")
    assert command.get("CommandGroupLength") == 30


def test_unknown_command_field_named_by_value():
    command = decode_command_set(with_group_length(us(0x0100, 0x4242), us(0x0800, 0x0101)))
    assert command.command_name == "0x4242"
    assert decode_command_set(b"").command_name == "unknown"


def test_odd_length():
    raw = with_group_length(element(0, 0x0002, b"1.2.3"), us(0x0100, 0x0010))
    command = decode_command_set(raw)
    assert any("odd length 5" in p for p in command.problems)
    assert command.get("CommandField") == 0x0010  # decoding went on


def test_wrong_us_length():
    raw = with_group_length(element(0, 0x0100, b"\x10\x00\x00\x00"), us(0x0110, 1))
    command = decode_command_set(raw)
    assert any("US has length 4, expected 2" in p for p in command.problems)
    assert command.command_field is None  # not an int: raw bytes kept
    assert command.get("CommandField") == b"\x10\x00\x00\x00"
    assert command.get("MessageID") == 1


def test_wrong_at_length():
    raw = with_group_length(us(0x0100, 0x8120), element(0, 0x0901, b"\x10\x00\x20\x00\x30\x00"))
    command = decode_command_set(raw)
    assert any("AT" in p and "multiple of 4" in p for p in command.problems)
    good = decode_command_set(with_group_length(element(0, 0x0901, b"\x10\x00\x20\x00")))
    assert good.problems == []
    assert good.get("OffendingElement") == [0x00100020]


def test_truncated_element():
    raw = with_group_length(us(0x0100, 0x0010), us(0x0110, 5))
    command = decode_command_set(raw[:-1])
    assert any("only 1 bytes remain" in p for p in command.problems)
    assert command.get("CommandField") == 0x0010
    assert not command.has("MessageID")
    short_header = decode_command_set(raw + b"\x00\x00\x00")
    assert any("too short for an element header" in p for p in short_header.problems)


def test_out_of_order_and_duplicate_tags():
    raw = with_group_length(us(0x0110, 1), us(0x0100, 0x0010), us(0x0100, 0x0020))
    command = decode_command_set(raw)
    assert sum("out of ascending order" in p for p in command.problems) == 2
    assert any("appears more than once" in p for p in command.problems)
    assert command.get("CommandField") == 0x0010  # the first one counts
    assert [e.tag for e in command.elements] == [0, 0x0110, 0x0100, 0x0100]  # wire order kept


def test_group_length_mismatch():
    raw = bytearray(command_bytes(c_get_rq_message()))
    raw[8] += 2
    command = decode_command_set(bytes(raw))
    assert any("Command Group Length" in p for p in command.problems)
    missing = decode_command_set(us(0x0100, 0x0010))
    assert missing.problems == []  # absence is for the rules to judge
    assert not missing.has("CommandGroupLength")


def test_element_outside_group_0000():
    raw = with_group_length(us(0x0100, 0x0010), element(0x0008, 0x0018, b"1.2\x00"))
    command = decode_command_set(raw)
    assert any("(0008,0018) is not in group 0000" in p for p in command.problems)
    assert command.elements[-1].tag == 0x00080018
    assert command.elements[-1].tag_str == "(0008,0018)"
    assert command.elements[-1].vr == "UN"


def test_unknown_and_retired_group_0000_elements():
    raw = with_group_length(element(0, 0x0001, b"\x00\x00\x00\x00"), us(0x0100, 0x0010),
                            element(0, 0x0FFE, b"ab"), element(0, 0x5010, b"x "))
    command = decode_command_set(raw)
    assert command.has("CommandLengthToEnd")  # retired, but known
    assert command.get("MessageSetID") == "x"  # retired ACR-NEMA element, still named
    assert any("(0000,0FFE) is not a known command element" in p for p in command.problems)
    assert not any("5010" in p for p in command.problems)


def test_garbage_never_raises():
    import random

    rng = random.Random(3)
    for _ in range(300):
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
        decode_command_set(raw)
        decode_command_set(memoryview(raw))
