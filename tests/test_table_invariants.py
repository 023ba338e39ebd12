"""The tables agree with each other, on every capture.

A count in one table equals the rows it summarises in another:

* an ``operations`` row's ``sub_operations`` equals the ``sub_operations`` rows linked to it
  (by capture and ``operation``, the join key: Message IDs repeat and may be absent), with the
  same Message ID, and its completed/warning/failed/unanswered counts split them; a C-STORE is
  linked to at most one C-GET (one row, one ``operation``);
* its ``pending_responses`` equals its ``progress`` rows that are not final;
* its final counters equal those of its final ``progress`` row (its first final one, the one
  that ended it), all null when there is none;
* every finding's Message ID names a message in ``messages`` of its association, a finding about
  a DIMSE message is at a frame of a message of its association (where its command set or its
  data set ended), and every other finding (an Upper Layer PDU or association item, an abort or
  release that left operations open) at a frame of the capture.

Checked on every sample capture and on hypothesis-generated conversations, damage included.
"""

from __future__ import annotations

import glob
from collections import Counter, defaultdict
from pathlib import Path

import builders
import pytest
from fuzz_support import FUZZ, Conversation, feed_frames
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_pipeline import _mutate as mutate
from test_fuzz_pipeline import edits

import trace_analyzer
from trace_analyzer import Analysis, CaptureAnalyzer

SAMPLES = sorted(glob.glob(str(Path(__file__).resolve().parent.parent / "sample_pcaps" / "*.pcap*")))
COUNTERS = ("remaining", "completed", "failed", "warning")
#: Rule families whose findings are about one DIMSE message.
MESSAGE_RULES = ("CMD-", "GET-RQ-", "GET-ID-", "GET-RSP-", "GET-CNT-", "GET-SUB-", "GET-CAN-",
                 "MOVE-", "FIND-")


def check_invariants(analysis: Analysis) -> None:
    operations = analysis.rows("operations")
    subs = analysis.rows("sub_operations")
    progress = analysis.rows("progress")
    messages = analysis.rows("messages")

    linked = Counter((s["capture"], s["operation"]) for s in subs if s["operation"] is not None)
    by_outcome: dict[tuple, Counter] = defaultdict(Counter)
    for s in subs:
        if s["operation"] is None:
            assert s["get_message_id"] is None or not s["ambiguous"], s
            continue
        assert not s["ambiguous"], s  # an ambiguous sub-operation belongs to no C-GET
        key = (s["capture"], s["operation"])
        category = s["status_category"] if s["status"] is not None else "unanswered"
        by_outcome[key][category] += 1
    rows_of = defaultdict(list)
    for row in progress:
        rows_of[(row["capture"], row["operation"])].append(row)
    message_id_of = {(o["capture"], o["operation"]): o["message_id"] for o in operations}
    assert len(message_id_of) == len(operations)  # the join key is unique
    for s in subs:
        if s["operation"] is not None:
            assert s["get_message_id"] == message_id_of[(s["capture"], s["operation"])], s
    for row in progress:
        assert row["message_id"] == message_id_of[(row["capture"], row["operation"])], row

    for o in operations:
        key = (o["capture"], o["operation"])
        assert o["sub_operations"] == linked[key], o
        outcome = by_outcome[key]
        assert o["sub_operations_completed"] == outcome["Success"], o
        assert o["sub_operations_warning"] == outcome["Warning"], o
        assert o["sub_operations_failed"] == sum(n for c, n in outcome.items()
                                                 if c not in ("Success", "Warning", "unanswered")), o
        assert o["sub_operations_unanswered"] == outcome["unanswered"], o
        rows = rows_of[key]
        assert o["pending_responses"] == sum(1 for r in rows if r["final"] is False), (o, rows)
        finals = [r for r in rows if r["final"]]
        if finals:
            assert o["final_status"] == finals[0]["status"] and o["final_frame"] == finals[0]["frame"]
            assert all(o[c] == finals[0][c] for c in COUNTERS), (o, finals[0])
        else:
            assert o["final_status"] is None and all(o[c] is None for c in COUNTERS), o

    ids = defaultdict(set)
    frames = defaultdict(set)
    for m in messages:
        where = (m["capture"], m["association"])
        ids[where].update(v for v in (m["message_id"], m["message_id_being_responded_to"]) if v is not None)
        frames[where].update(v for v in (m["frame"], m["data_frame"]) if v is not None)
    total = {c["capture"]: c["frames"] for c in analysis.rows("captures")}
    for f in analysis.findings:
        where = (f.capture, f.association)
        if f.message_id is not None:
            assert f.message_id in ids[where], f
        if f.frame is None:
            continue
        assert 1 <= f.frame <= total[f.capture], f
        if f.rule.startswith(MESSAGE_RULES) and f.message_id is not None:
            assert f.frame in frames[where], f


@pytest.mark.parametrize("path", SAMPLES, ids=[Path(p).name for p in SAMPLES])
def test_tables_agree_on_every_sample(path):
    check_invariants(trace_analyzer.analyze(path))


# -- generated conversations -------------------------------------------------------------------


def _body(draw) -> list[tuple[str, bytes]]:
    """The DIMSE part of an association: C-GETs (some overlapping, some answered under a wrong
    Message ID), sub-operations with any status, cancels."""
    out: list[tuple[str, bytes]] = []
    for get_id in range(1, draw(st.integers(1, 3)) + 1):
        out.append(("c", builders.c_get_rq(get_id)))
        named = draw(st.sampled_from([get_id, get_id, 42]))
        instances = draw(st.integers(0, 3))
        for index in range(instances):
            uid = f"1.2.3.{get_id}.{index}"
            out.append(("s", builders.c_store_rq(100 * get_id + index, uid, size=40)))
            status = draw(st.sampled_from([0x0000, 0xB000, 0xA700, 0xC000]))
            if draw(st.booleans()) or index < instances - 1:
                out.append(("c", builders.c_store_rsp(100 * get_id + index, status, uid)))
            out.append(("s", builders.c_get_rsp(named, 0xFF00, (instances - index - 1, index, 0, 0))))
        if draw(st.booleans()):
            out.append(("c", builders.c_cancel(get_id)))
        if draw(st.booleans()):
            final = draw(st.sampled_from([0x0000, 0xB000, 0xA702, 0xFE00]))
            out.append(("s", builders.c_get_rsp(draw(st.sampled_from([get_id, named])), final,
                                                (None, instances, 0, 0))))
    return out


@st.composite
def conversations(draw):
    contexts = [(1, builders.PATIENT_ROOT_GET, 0), (3, builders.CT, 0)]
    exchanges = [("c", builders.associate(True, contexts, roles=[(builders.CT, 0, 1)])),
                 ("s", builders.associate(False, contexts, roles=[(builders.CT, 0, 1)]))]
    exchanges += _body(draw)
    ending = draw(st.sampled_from(["release", "abort", "none"]))
    if ending == "release":
        exchanges += [("c", builders.release_rq()), ("s", builders.release_rp())]
    elif ending == "abort":
        exchanges.append(("c", builders.abort(0, 0)))
    if draw(st.booleans()):
        exchanges = exchanges[2:]  # the capture began mid-association
    return exchanges


def _analyze(frames: list[bytes]) -> Analysis:
    analyzer = CaptureAnalyzer("generated")
    feed_frames(analyzer, frames)
    analyzer.finish()
    return Analysis([analyzer], [])


@FUZZ
@given(conversations(), st.integers(60, 1460), st.booleans(), edits)
def test_tables_agree_on_generated_conversations(exchanges, mss, damaged, changes):
    conversation = Conversation(mss=mss)
    for side, data in exchanges:
        conversation.send(side, data)
    conversation.close()
    frames = mutate(conversation.frames, changes) if damaged else conversation.frames
    check_invariants(_analyze(frames))
