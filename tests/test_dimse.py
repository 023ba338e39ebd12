"""MessageAssembler: PDVs in, DIMSE messages out."""

from __future__ import annotations

from ul_builders import (
    c_cancel_rq_message,
    c_get_rq_message,
    c_get_rsp_message,
    c_store_rq_message,
    command_bytes,
    identifier,
    p_data_pdus,
)

from trace_analyzer.commandset import C_CANCEL_RQ, C_GET_RQ, C_GET_RSP, C_STORE_RQ
from trace_analyzer.dimse import DimseMessage, DimseProblem, MessageAssembler
from trace_analyzer.pdu import split_pdvs

COMMAND, LAST_COMMAND, DATA, LAST_DATA = 0x01, 0x03, 0x00, 0x02


def feed_message(assembler: MessageAssembler, message, max_pdu: int = 16382, first_frame: int = 1) -> list:
    """Feed every PDV pynetdicom would send, one PDU per frame."""
    out = []
    for frame, pdu in enumerate(p_data_pdus(message, 1, max_pdu), start=first_frame):
        pdvs, fault = split_pdvs(pdu[6:])
        assert fault is None
        for pdv in pdvs:
            out.extend(assembler.feed_pdv(pdv.context_id, pdv.control, pdv.data, frame, frame / 10))
    return out


def messages(results) -> list[DimseMessage]:
    return [r for r in results if isinstance(r, DimseMessage)]


def problems(results) -> list[DimseProblem]:
    return [r for r in results if isinstance(r, DimseProblem)]


def test_command_in_one_pdv():
    assembler = MessageAssembler("acceptor")
    raw = command_bytes(c_cancel_rq_message())
    out = assembler.feed_pdv(1, LAST_COMMAND, raw, 4, 0.4)
    assert len(out) == 1
    message = out[0]
    assert isinstance(message, DimseMessage)
    assert message.command_field == C_CANCEL_RQ
    assert message.name == "C-CANCEL-RQ"
    assert (message.context_id, message.frame, message.time, message.sender) == (1, 4, 0.4, "acceptor")
    assert not message.data_set_expected
    assert message.data_set is None and message.data_set_length == 0
    assert not assembler.busy


def test_command_split_over_several_pdvs():
    assembler = MessageAssembler()
    raw = command_bytes(c_get_rsp_message())
    pieces = [raw[i:i + 10] for i in range(0, len(raw), 10)]
    out = []
    for i, piece in enumerate(pieces):
        control = LAST_COMMAND if i == len(pieces) - 1 else COMMAND
        out.extend(assembler.feed_pdv(3, control, piece, 10 + i, 1.0 + i))
        if i < len(pieces) - 1:
            assert out == [] and assembler.busy
    message, = out
    assert message.command_field == C_GET_RSP
    assert message.command.problems == []
    assert message.command.get("NumberOfRemainingSuboperations") == 3
    assert message.frame == 10 + len(pieces) - 1  # the frame holding the last fragment
    assert message.context_id == 3


def test_command_and_identifier_split_over_several_pdus():
    assembler = MessageAssembler()
    out = feed_message(assembler, c_get_rq_message(), max_pdu=24)
    assert problems(out) == []
    message, = messages(out)
    assert message.command_field == C_GET_RQ
    assert message.data_set_expected and message.data_set_complete
    assert message.data_set == identifier()  # an identifier is kept
    assert message.data_set_length == len(identifier())
    assert message.frame < message.data_frame
    assert message.data_time == message.data_frame / 10
    assert not assembler.busy


def test_store_data_counted_not_kept():
    payload = b"\x10\x00\x10\x00\x04\x00\x00\x00ABCD" * 300
    assembler = MessageAssembler()
    out = feed_message(assembler, c_store_rq_message(payload), max_pdu=1000)
    message, = messages(out)
    assert message.command_field == C_STORE_RQ
    assert message.data_set is None
    assert message.data_set_length == len(payload)
    assert message.data_set_complete


def test_orphan_data_pdv():
    assembler = MessageAssembler()
    out = assembler.feed_pdv(1, LAST_DATA, b"\x00" * 8, 2, 0.2)
    problem, = out
    assert problem.code == "UL-033"
    assert problem.frame == 2
    # After a message without a data set, data is an orphan too.
    assembler.feed_pdv(1, LAST_COMMAND, command_bytes(c_cancel_rq_message()), 3, 0.3)
    assert [p.code for p in assembler.feed_pdv(1, DATA, b"ab", 4, 0.4)] == ["UL-033"]


def test_new_command_while_data_set_pending():
    assembler = MessageAssembler()
    raw = command_bytes(c_get_rq_message())
    assert assembler.feed_pdv(1, LAST_COMMAND, raw, 1, 0.1) == []
    assert assembler.feed_pdv(1, DATA, b"\x08\x00\x52\x00", 2, 0.2) == []  # not the last fragment
    out = assembler.feed_pdv(1, LAST_COMMAND, command_bytes(c_cancel_rq_message()), 3, 0.3)
    assert [type(r) for r in out] == [DimseProblem, DimseMessage, DimseMessage]
    assert out[0].code == "UL-033"  # a command where the data set should continue
    unfinished, cancel = out[1], out[2]
    assert unfinished.command_field == C_GET_RQ
    assert not unfinished.data_set_complete
    assert unfinished.data_set == b"\x08\x00\x52\x00"
    assert unfinished.problems
    assert cancel.command_field == C_CANCEL_RQ


def test_close_mid_data_set():
    assembler = MessageAssembler()
    assembler.feed_pdv(1, LAST_COMMAND, command_bytes(c_get_rq_message()), 1, 0.1)
    assembler.feed_pdv(1, DATA, b"\x08\x00", 2, 0.2)
    out = assembler.close(9, 0.9)
    assert [type(r) for r in out] == [DimseProblem, DimseMessage]
    assert out[0].code == "CAPTURE-INCOMPLETE" and out[0].frame == 9
    assert out[1].data_set_length == 2 and not out[1].data_set_complete
    assert not assembler.busy
    assert assembler.close(10, 1.0) == []


def test_close_mid_command():
    assembler = MessageAssembler()
    raw = command_bytes(c_get_rq_message())
    assembler.feed_pdv(1, COMMAND, raw[:20], 1, 0.1)
    assert assembler.busy
    out = assembler.close(2, 0.2)
    assert [p.code for p in out] == ["CAPTURE-INCOMPLETE"]
    assert "20 bytes" in out[0].detail
    # The next message starts clean.
    out = assembler.feed_pdv(1, LAST_COMMAND, command_bytes(c_cancel_rq_message()), 3, 0.3)
    assert messages(out)[0].command.problems == []


def test_reset_is_a_close():
    assembler = MessageAssembler()
    assembler.feed_pdv(1, COMMAND, b"\x00" * 8, 1, 0.1)
    assert [p.code for p in assembler.reset(2, 0.2)] == ["CAPTURE-INCOMPLETE"]
    assert not assembler.busy


def test_reserved_control_bits_and_context_change():
    assembler = MessageAssembler()
    raw = command_bytes(c_cancel_rq_message())
    out = assembler.feed_pdv(1, COMMAND | 0x10, raw[:10], 1, 0.1)
    assert [p.code for p in out] == ["UL-029"]
    out = assembler.feed_pdv(3, LAST_COMMAND, raw[10:], 2, 0.2)
    assert [r.code for r in problems(out)] == ["UL-031"]
    assert messages(out)[0].command_field == C_CANCEL_RQ


def test_data_fragment_on_other_context_noted():
    assembler = MessageAssembler()
    assembler.feed_pdv(1, LAST_COMMAND, command_bytes(c_get_rq_message()), 1, 0.1)
    message, = assembler.feed_pdv(3, LAST_DATA, identifier(), 2, 0.2)
    assert any("context 3" in p for p in message.problems)


def test_oversized_command_discarded():
    assembler = MessageAssembler()
    chunk = b"\x00" * (512 * 1024)
    assert assembler.feed_pdv(1, COMMAND, chunk, 1, 0.1) == []
    assert assembler.feed_pdv(1, COMMAND, chunk, 2, 0.2) == []
    out = assembler.feed_pdv(1, COMMAND, b"\x00\x00", 3, 0.3)
    assert [p.code for p in out] == ["CAPTURE-RESYNC"]
    assert not assembler.busy


def test_messages_in_a_row():
    assembler = MessageAssembler()
    out = []
    for message in (c_get_rq_message(1), c_store_rq_message(), c_get_rsp_message(), c_cancel_rq_message()):
        out.extend(feed_message(assembler, message, max_pdu=64))
    assert problems(out) == []
    assert [m.name for m in messages(out)] == ["C-GET-RQ", "C-STORE-RQ", "C-GET-RSP", "C-CANCEL-RQ"]
