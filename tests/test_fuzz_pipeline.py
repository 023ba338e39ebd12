"""Whole-pipeline fuzzing: frames in, tables out, nothing raises.

Frames go straight into :class:`CaptureAnalyzer` (Ethernet/IPv4/TCP built by
fuzz_support), so every layer from the TCP header down to the rules and the
tables sees the damage. ``TA_FUZZ_EXAMPLES`` sets the number of examples.
"""

from __future__ import annotations

import builders
from fuzz_support import FUZZ, Conversation, feed_frames, tcp_frame
from hypothesis import given
from hypothesis import strategies as st

from trace_analyzer import Analysis, CaptureAnalyzer
from trace_analyzer.tables import TABLES

#: Pieces that look like the protocol often enough to reach deep branches.
TOKENS = [
    b"\x04\x00", b"\x01\x00", b"\x02\x00", b"\x07\x00\x00\x00\x00\x04", b"\x00\x00\x00\x00\x04\x00\x00\x00",
    b"\x01\x03", b"\x01\x02", b"\x03\x00", b"\xff\xff\xff\xff", b"\x00\x01\x00\x00",
    builders.c_get_rq(1), builders.c_get_rsp(1, 0xFF00, (1, 1, 0, 0)), builders.c_get_rsp(1, 0x0000),
    builders.c_store_rq(100, "1.2.3.4.1", size=40), builders.c_store_rsp(100, 0, "1.2.3.4.1"),
    builders.c_cancel(1), builders.release_rq(), builders.abort(2, 1),
]
payloads = st.lists(st.one_of(st.binary(max_size=80), st.sampled_from(TOKENS)), max_size=10).map(b"".join)


def _analyze(frames: list[bytes]) -> Analysis:
    analyzer = CaptureAnalyzer("fuzz")
    feed_frames(analyzer, frames)
    analyzer.finish()
    frame_count = analyzer.summary.frames
    for problem in analyzer.problems:
        assert isinstance(problem.frame, int) and 0 <= problem.frame <= frame_count, problem
    for finding in analyzer.rules.findings:
        assert finding.frame is not None and 1 <= finding.frame <= frame_count, finding
    analysis = Analysis([analyzer], [])
    for table in TABLES:
        analysis.rows(table)
    return analysis


def _conversation_frames(exchanges, mss: int = 1460, handshake: bool = True, close: bool = True):
    conversation = Conversation(mss=mss, handshake=handshake)
    for side, data in exchanges:
        conversation.send(side, data)
    if close:
        conversation.close()
    return conversation.frames


def _outcome(analysis: Analysis) -> list[tuple]:
    """What a C-GET ended as, without frames or times."""
    out = []
    for op in analysis.operation_records:
        final = op.final
        out.append((op.message_id, final.Status if final else None,
                    final.NumberOfCompletedSuboperations if final else None,
                    len(op.pending_responses), len(op.cancels),
                    sorted((s.request.AffectedSOPInstanceUID if s.request else None,
                            s.response.Status if s.response else None) for s in op.sub_operations)))
    return out


@FUZZ
@given(st.lists(st.tuples(st.sampled_from("cs"), payloads), max_size=12), st.booleans(), st.booleans(),
       st.integers(20, 1460))
def test_random_streams(exchanges, handshake, start_with_associate, mss):
    if start_with_associate:
        contexts = [(1, builders.PATIENT_ROOT_GET, 0), (3, builders.CT, 0)]
        exchanges = [("c", builders.associate(True, contexts)), ("s", builders.associate(False, contexts)),
                     *exchanges]
    _analyze(_conversation_frames(exchanges, mss=mss, handshake=handshake))


@FUZZ
@given(st.lists(st.binary(min_size=0, max_size=200), max_size=30), st.integers(0, 255))
def test_random_frames(frames, linktype):
    """Bytes that are not even well-formed frames, under any link type."""
    analyzer = CaptureAnalyzer("fuzz")
    for frame, data in enumerate(frames, 1):
        analyzer.feed_frame(frame, float(frame), linktype, data)
    analyzer.finish()
    assert analyzer.summary.frames == len(frames)


def _mutate(frames: list[bytes], edits) -> list[bytes]:
    frames = list(frames)
    for kind, position, value in edits:
        if not frames:
            break
        index = position % len(frames)
        if kind == "flip" and frames[index]:
            data = bytearray(frames[index])
            data[value % len(data)] ^= (value >> 8) % 255 + 1
            frames[index] = bytes(data)
        elif kind == "drop":
            del frames[index]
        elif kind == "duplicate":
            frames.insert((index + value) % (len(frames) + 1), frames[index])
        elif kind == "swap":
            other = value % len(frames)
            frames[index], frames[other] = frames[other], frames[index]
        elif kind == "cut":  # a snaplen cut: the IP header still announces the whole segment
            frames[index] = frames[index][:value % (len(frames[index]) + 1)]
    return frames


edits = st.lists(st.tuples(st.sampled_from(["flip", "drop", "duplicate", "swap", "cut"]),
                           st.integers(0, 10_000), st.integers(0, 1 << 16)), min_size=1, max_size=8)


@FUZZ
@given(st.integers(0, 4), st.sampled_from([0x0000, 0xB000, 0xA702]), st.integers(60, 1460), edits)
def test_mutated_builder_conversations(instances, store_status, mss, changes):
    exchanges = builders.retrieve(get_id=3, instances=instances, store_status=store_status)
    exchanges.insert(-2, ("c", builders.c_cancel(3)))
    _analyze(_mutate(_conversation_frames(exchanges, mss=mss), changes))


def _runs(frames: list[bytes]) -> list[list[bytes]]:
    """Maximal runs of consecutive frames sent by the same side (source address and port)."""
    runs: list[list[bytes]] = []
    for frame in frames:
        source = frame[26:30] + frame[34:36]
        if runs and runs[-1][0][26:30] + runs[-1][0][34:36] == source:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return runs


@FUZZ
@given(st.integers(1, 3), st.integers(40, 400), st.randoms(use_true_random=False))
def test_segments_reordered_within_a_burst_change_nothing(instances, mss, rng):
    """Any order of the segments one side sends before the other answers: the same C-GETs."""
    exchanges = builders.retrieve(get_id=9, instances=instances, store_status=0xB000)
    frames = _conversation_frames(exchanges, mss=mss)
    expected = _outcome(_analyze(frames))
    shuffled = []
    for run in _runs(frames):
        rng.shuffle(run)
        shuffled.extend(run)
    analysis = _analyze(shuffled)
    assert _outcome(analysis) == expected
    assert not [p for p in analysis.problem_records if p.code.startswith("CAPTURE-")]


@FUZZ
@given(st.integers(1, 3), st.integers(40, 400), st.randoms(use_true_random=False))
def test_segments_in_any_order_never_raise(instances, mss, rng):
    frames = _conversation_frames(builders.retrieve(get_id=9, instances=instances), mss=mss)
    rng.shuffle(frames)
    _analyze(frames)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1 << 32), st.binary(min_size=1, max_size=60)), max_size=20))
def test_arbitrary_sequence_numbers(segments):
    """Segments anywhere in sequence space (wrapping, overlapping, far future) on a DICOM connection."""
    client, server = ("10.0.0.1", 40001), ("10.0.0.2", 11112)
    contexts = [(1, builders.PATIENT_ROOT_GET, 0)]
    frames = [tcp_frame(client, server, 0xFFFFFF00, 0, 0x18, builders.associate(True, contexts))]
    frames += [tcp_frame(client, server, seq, 0, 0x18, data) for seq, data in segments]
    _analyze(frames)
