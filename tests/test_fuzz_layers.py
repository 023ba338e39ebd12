"""Arbitrary bytes never make a low layer raise."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ul_builders import c_get_rq_message, p_data_pdus

from trace_analyzer.commandset import decode_command_set
from trace_analyzer.dimse import DimseMessage, DimseProblem, MessageAssembler
from trace_analyzer.pdu import P_DATA_TF, Pdu, PduReader, UlProblem, split_pdvs
from trace_analyzer.pdu_items import decode_abort, decode_associate, decode_reject

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Bytes that look like the protocol often enough to reach the deep branches.
chunks = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"\x04\x00", b"\x01\x00", b"\x00\x00\x00\x00\x04\x00\x00\x00", b"\x01\x03",
                         b"\x50\x00\x00\x08", b"\x51\x00\x00\x04", b"\x58\x00\x00\x02"]),
        st.just(b"".join(p_data_pdus(c_get_rq_message(), max_pdu=40))),
    ),
    max_size=12,
).map(b"".join)


@FAST
@given(chunks, st.lists(st.integers(1, 50), max_size=10), st.booleans(), st.booleans())
def test_pdu_reader_never_raises(data, cuts, synced, require_command):
    reader = PduReader(synced=synced, require_command=require_command)
    offset, frame = 0, 0
    for cut in [*cuts, len(data)]:
        frame += 1
        for result in reader.feed(data[offset:offset + cut], frame, float(frame)):
            assert isinstance(result, (Pdu, UlProblem))
            if isinstance(result, Pdu):
                assert result.first_frame <= result.frame
                assert len(result.body) == result.length
                if result.type == P_DATA_TF:
                    split_pdvs(result.body)
        offset += cut
        if frame == 3:
            reader.lose_sync(7)
    assert reader.pending >= 0


@FAST
@given(chunks)
def test_split_pdvs_never_raises(body):
    pdvs, fault = split_pdvs(body)
    assert fault is not None or pdvs
    assert sum(4 + 2 + len(p.data) for p in pdvs) <= len(body)


@FAST
@given(chunks)
def test_decode_command_set_never_raises(data):
    command = decode_command_set(data)
    assert isinstance(command.problems, list)
    command.command_name  # noqa: B018 - properties must not raise either
    command.has_data_set  # noqa: B018


@FAST
@given(chunks, st.booleans())
def test_decode_associate_never_raises(body, is_request):
    decode_associate(body, is_request)
    decode_associate(b"\x00\x01" + b"\x20" * 66 + body, is_request)
    decode_reject(body).text  # noqa: B018
    decode_abort(body).text  # noqa: B018


@FAST
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), chunks), max_size=12))
def test_message_assembler_never_raises(pdvs):
    assembler = MessageAssembler()
    for frame, (context_id, control, fragment) in enumerate(pdvs, start=1):
        for result in assembler.feed_pdv(context_id, control, fragment, frame, float(frame)):
            assert isinstance(result, (DimseMessage, DimseProblem))
    for result in assembler.close(len(pdvs) + 1, 0.0):
        assert isinstance(result, (DimseMessage, DimseProblem))
    assert not assembler.busy
