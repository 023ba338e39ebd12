"""PduReader framing, resynchronisation and split_pdvs."""

from __future__ import annotations

import pytest
from pynetdicom.pdu import A_ASSOCIATE_RQ as PynetAssociateRq
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context
from ul_builders import (
    GET_STUDY,
    abort,
    c_get_rq_message,
    c_store_rq_message,
    p_data,
    p_data_pdus,
    release_rp,
    release_rq,
)

from trace_analyzer.pdu import (
    A_ABORT,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
    Pdu,
    PduReader,
    UlProblem,
    plausible_pdu_at,
    split_pdvs,
)


def associate_rq() -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "GETSCU"
    primitive.called_ae_title = "ARCHIVE"
    context = build_context(GET_STUDY, ["1.2.840.10008.1.2"])
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16382
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0.4"
    primitive.user_information = [max_length, class_uid]
    pdu = PynetAssociateRq()
    pdu.from_primitive(primitive)
    return pdu.encode()


def conversation() -> list[bytes]:
    return [associate_rq(), *p_data_pdus(c_get_rq_message(), max_pdu=40), release_rq(), release_rp()]


def pdus_of(results) -> list[Pdu]:
    return [r for r in results if isinstance(r, Pdu)]


def test_several_pdus_in_one_feed():
    stream = b"".join(conversation())
    reader = PduReader()
    results = reader.feed(stream, 5, 0.5)
    assert all(isinstance(r, Pdu) for r in results)
    expected = conversation()
    assert [bytes([r.type]) + b"\x00" + r.length.to_bytes(4, "big") + r.body for r in results] == expected
    assert [r.type for r in results][0] == A_ASSOCIATE_RQ
    assert [r.type for r in results][-2:] == [A_RELEASE_RQ, A_RELEASE_RP]
    offsets = [r.offset for r in results]
    assert offsets == [sum(len(p) for p in expected[:i]) for i in range(len(expected))]
    assert reader.pending == 0
    assert reader.position == len(stream)


def test_byte_by_byte():
    expected = conversation()
    stream = b"".join(expected)
    reader = PduReader()
    got = []
    for i in range(len(stream)):
        got.extend(reader.feed(stream[i:i + 1], i + 1, float(i)))
    assert all(isinstance(r, Pdu) for r in got)
    assert len(got) == len(expected)
    start = 0
    for pdu, raw in zip(got, expected, strict=True):
        assert pdu.body == raw[6:]
        assert pdu.first_frame == start + 1  # frame i+1 holds byte i
        assert pdu.frame == start + len(raw)  # the frame with the last byte
        assert pdu.time == float(start + len(raw) - 1)
        assert pdu.offset == start
        start += len(raw)


@pytest.mark.parametrize("cut", range(1, 40))
def test_split_at_every_boundary(cut):
    stream = release_rq() + abort() + release_rp() + p_data((1, 3, b"\x00" * 12))
    reader = PduReader()
    got = reader.feed(stream[:cut], 1, 1.0) + reader.feed(stream[cut:], 2, 2.0)
    assert [p.type for p in got] == [A_RELEASE_RQ, A_ABORT, A_RELEASE_RP, P_DATA_TF]
    for pdu, begin, end in zip(got, (0, 10, 20, 30), (10, 20, 30, len(stream)), strict=True):
        assert pdu.first_frame == (1 if begin < cut else 2)
        assert pdu.frame == (1 if end <= cut else 2)


def test_frame_attribution_first_and_completing_frame():
    first, second = release_rq(), abort()
    reader = PduReader()
    assert reader.feed(first + second[:3], 10, 1.0)[0].frame == 10
    assert reader.feed(second[3:5], 11, 1.1) == []
    pdu = reader.feed(second[5:], 12, 1.2)[0]
    assert (pdu.type, pdu.first_frame, pdu.frame, pdu.time) == (A_ABORT, 10, 12, 1.2)


def test_lose_sync_in_p_data_then_next_pdu_found():
    data_pdus = p_data_pdus(c_get_rq_message(), max_pdu=40)
    reader = PduReader()
    head = data_pdus[0][:17]
    assert reader.feed(head, 1, 1.0) == []
    assert reader.pending == 17
    dropped = reader.lose_sync(30)
    assert dropped == 17 and not reader.synced and reader.pending == 0
    # The rest of the broken PDU arrives after the hole, then whole PDUs.
    tail = data_pdus[0][47:]
    rest = b"".join(data_pdus[1:]) + release_rq()
    results = reader.feed(tail + rest, 2, 2.0)
    assert all(isinstance(r, Pdu) for r in results)
    assert [bytes([p.type]) + b"\x00" + p.length.to_bytes(4, "big") + p.body for p in results] \
        == [*data_pdus[1:], release_rq()]
    assert reader.synced
    assert reader.skipped_bytes == len(tail)
    assert results[0].offset == 17 + 30 + len(tail)
    assert results[0].first_frame == 2


def test_resync_first_frame_is_frame_of_first_byte():
    # While hunting, bytes wait across frames; the PDU found starts in an earlier frame.
    reader = PduReader(synced=False)
    garbage = b"\xff\xee" * 5
    pdu = release_rq()
    assert reader.feed(garbage + pdu[:4], 1, 1.0) == []
    got = reader.feed(pdu[4:], 2, 2.0)
    assert len(got) == 1
    assert (got[0].type, got[0].first_frame, got[0].frame) == (A_RELEASE_RQ, 1, 2)
    assert reader.skipped_bytes == len(garbage)


def test_unknown_pdu_type_ul001_then_recovery():
    reader = PduReader()
    bad = b"\x09\x00\x00\x00\x00\x04abcd"
    results = reader.feed(bad + release_rq() + abort(), 3, 0.3)
    problems = [r for r in results if isinstance(r, UlProblem)]
    assert len(problems) == 1
    assert problems[0].code == "UL-001"
    assert "0x09" in problems[0].detail and problems[0].frame == 3
    assert [p.type for p in pdus_of(results)] == [A_RELEASE_RQ, A_ABORT]
    assert reader.synced


def test_huge_length_is_a_problem():
    reader = PduReader()
    results = reader.feed(b"\x04\x00\xff\xff\xff\xff" + release_rq(), 1, 0.1)
    assert [r.code for r in results if isinstance(r, UlProblem)] == ["CAPTURE-RESYNC"]
    assert [p.type for p in pdus_of(results)] == [A_RELEASE_RQ]


def test_require_command_finds_command_p_data_only():
    rng = os_random(1234, 3000)
    store_pdus = p_data_pdus(c_store_rq_message(), max_pdu=16382)
    data_only = p_data((1, 0, b"\x00" * 64))  # a data PDV: not where a message starts
    get_pdus = p_data_pdus(c_get_rq_message())
    reader = PduReader(synced=False, require_command=True)
    stream = rng + release_rq() + abort() + data_only + b"".join(get_pdus) + store_pdus[0]
    results = reader.feed(stream, 1, 1.0)
    pdus = pdus_of(results)
    assert pdus, "the C-GET command PDV was not found"
    first = pdus[0]
    assert first.type == P_DATA_TF
    assert first.body == get_pdus[0][6:]
    assert reader.skipped_bytes == len(rng) + len(release_rq()) + len(abort()) + len(data_only)


def test_require_command_rejects_random_bytes():
    reader = PduReader(synced=False, require_command=True)
    noise = os_random(99, 20000)
    results = reader.feed(noise, 1, 0.1)
    assert pdus_of(results) == []
    assert reader.pending <= 1024 * 1024


def test_without_require_command_any_pdu_is_a_boundary():
    reader = PduReader(synced=False)
    results = reader.feed(b"\xaa\xbb\xcc" + release_rq(), 1, 0.1)
    assert [p.type for p in pdus_of(results)] == [A_RELEASE_RQ]
    assert reader.skipped_bytes == 3


def test_plausible_pdu_at():
    stream = bytearray(associate_rq())
    assert plausible_pdu_at(stream, 0) is True
    assert plausible_pdu_at(stream, 0, require_command=True) is False
    assert plausible_pdu_at(bytearray(b"\x01\x00\x00"), 0) is None
    assert plausible_pdu_at(bytearray(b"\x05\x00\x00\x00\x00\x05"), 0) is False  # release of length 5
    assert plausible_pdu_at(bytearray(b"\x08\x00\x00\x00\x00\x04"), 0) is False
    command = bytearray(p_data_pdus(c_get_rq_message())[0])
    assert plausible_pdu_at(command, 0, require_command=True) is True
    data = bytearray(p_data((1, 2, b"\x00" * 20)))
    assert plausible_pdu_at(data, 0) is True
    assert plausible_pdu_at(data, 0, require_command=True) is False
    even_context = bytearray(p_data((2, 3, b"\x00" * 20)))
    assert plausible_pdu_at(even_context, 0) is False


# -- split_pdvs -----------------------------------------------------------------

def test_split_pdvs_several():
    body = p_data((1, 1, b"abcd"), (1, 3, b"ef"), (3, 0, b""))[6:]
    pdvs, fault = split_pdvs(body)
    assert fault is None
    assert [(p.context_id, p.control, bytes(p.data)) for p in pdvs] == [
        (1, 1, b"abcd"), (1, 3, b"ef"), (3, 0, b"")]


def test_split_pdvs_length_below_two():
    body = p_data((1, 3, b"ab"))[6:] + b"\x00\x00\x00\x01\x01"
    pdvs, fault = split_pdvs(body + b"\x00")
    assert len(pdvs) == 1
    assert fault is not None and "less than 2" in fault


def test_split_pdvs_overrun():
    body = bytearray(p_data((1, 3, b"abcdef"))[6:])
    body[3] += 10  # item length beyond the PDU
    pdvs, fault = split_pdvs(bytes(body))
    assert pdvs == []
    assert fault is not None and "runs past the end" in fault


def test_split_pdvs_short_tail():
    body = p_data((1, 3, b"ab"))[6:] + b"\x00\x00\x00"
    pdvs, fault = split_pdvs(body)
    assert len(pdvs) == 1
    assert fault is not None and "too short" in fault


def test_split_pdvs_empty_p_data():
    pdvs, fault = split_pdvs(b"")
    assert pdvs == []
    assert fault == "P-DATA-TF without any PDV item"


def os_random(seed: int, size: int) -> bytes:
    import random

    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(size))


def test_hunt_accepts_a_short_whole_p_data_at_end_of_stream():
    # A P-DATA-TF whose only PDV is shorter than a command header is judged
    # once it is all there, not held back waiting for bytes after it.
    short = p_data((1, 2, b"\x00\x00"))
    assert len(short) == 14
    reader = PduReader(synced=False)
    results = reader.feed(b"\xee\xff" + short, 1, 0.1)
    assert [(p.type, p.body) for p in pdus_of(results)] == [(P_DATA_TF, short[6:])]
