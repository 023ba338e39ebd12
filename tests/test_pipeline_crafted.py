"""End-to-end checks of the pipeline on conversations built byte by byte.

Each capture here is made by tests/builders.py, so the expected facts are
known independently of the decoder: how many C-GETs, which statuses, which
frames.
"""

from __future__ import annotations

import gzip
import shutil
import struct

import pytest
from builders import (
    CT,
    PATIENT_ROOT_GET,
    abort,
    associate,
    c_cancel,
    c_get_rq,
    c_get_rsp,
    c_store_rq,
    c_store_rsp,
    conversation_packets,
    release_rp,
    release_rq,
    retrieve,
    write_conversation,
)
from scapy.utils import wrpcap

import trace_analyzer


def _analyze(tmp_path, exchanges=None, packets=None, name="c.pcap", **options):
    path = tmp_path / name
    if packets is None:
        packets = conversation_packets(exchanges, **options)
    wrpcap(str(path), packets)
    return trace_analyzer.analyze(str(path))


def _frame_of(packets, needle: bytes) -> int:
    """1-based frame number of the packet whose payload ends the given bytes' first match."""
    for index, packet in enumerate(packets, 1):
        if needle in bytes(packet["TCP"].payload):
            return index
    raise AssertionError("needle not found")


def test_conforming_retrieve_is_rebuilt(tmp_path):
    exchanges = retrieve(get_id=7, instances=3)
    packets = conversation_packets(exchanges)
    analysis = _analyze(tmp_path, packets=packets)
    [association] = analysis.rows("associations")
    assert association["calling_ae"] == "GETSCU" and association["called_ae"] == "QRSCP"
    assert association["requestor_implementation_class_uid"] == "1.2.3.4.5"
    assert association["requestor_implementation_version"] == "BUILDER_1"
    assert association["requestor_max_pdu"] == 16384
    assert association["outcome"] == "released"
    assert association["client"] == "127.0.0.1:40001"
    [operation] = analysis.rows("operations")
    assert operation["message_id"] == 7
    assert operation["final_status"] == 0x0000 and operation["status_category"] == "Success"
    assert operation["pending_responses"] == 3
    assert operation["sub_operations"] == 3 and operation["sub_operations_completed"] == 3
    assert operation["remaining"] is None  # absent on the wire in the final response: not 0
    assert operation["completed"] == 3 and operation["failed"] == 0
    assert operation["query_retrieve_level"] == "STUDY"
    assert operation["priority"] == 0
    # The request's frame: the packet that carried its identifier's last byte (one PDU per packet here).
    assert operation["request_frame"] == 6
    progress = analysis.rows("progress")
    assert [row["remaining"] for row in progress] == [2, 1, 0, None]
    subs = analysis.rows("sub_operations")
    assert [row["affected_sop_instance_uid"] for row in subs] == ["1.2.3.4.1", "1.2.3.4.2", "1.2.3.4.3"]
    assert all(row["get_message_id"] == 7 and row["status"] == 0 for row in subs)
    assert all(row["dataset_bytes"] > 2000 for row in subs)
    contexts = {row["context_id"]: row for row in analysis.rows("contexts")}
    assert contexts[3]["requestor_scp_role"] == 1 and contexts[3]["acceptor_scp_role"] == 1
    assert contexts[1]["abstract_syntax"] == PATIENT_ROOT_GET
    assert analysis.rows("problems") == []


def test_dataframes_keep_absent_apart_from_zero(tmp_path):
    analysis = _analyze(tmp_path, retrieve(instances=2))
    progress = analysis.progress
    assert str(progress["remaining"].dtype) == "Int64"
    assert progress["remaining"].isna().tolist() == [False, False, True]
    assert progress["remaining"].tolist()[1] == 0


def test_failure_with_error_comment_and_offending_elements(tmp_path):
    contexts = [(1, PATIENT_ROOT_GET, 0)]
    exchanges = [("c", associate(True, contexts)), ("s", associate(False, contexts)),
                 ("c", c_get_rq(3)),
                 ("s", c_get_rsp(3, 0xA900, (None, 0, 1, 0), error_comment="Bad level",
                                 offending=[0x00080052, 0x00100020], failed_uids=[])),
                 ("c", release_rq()), ("s", release_rp())]
    analysis = _analyze(tmp_path, exchanges)
    [operation] = analysis.rows("operations")
    assert operation["final_status"] == 0xA900
    assert operation["status_meaning"] and "match" in operation["status_meaning"].lower()
    assert operation["error_comment"] == "Bad level"
    assert operation["offending_element"] == "(0008,0052) (0010,0020)"
    rows = analysis.rows("offending_elements")
    assert [(r["tag"], r["keyword"]) for r in rows] == [("(0008,0052)", "QueryRetrieveLevel"),
                                                         ("(0010,0020)", "PatientID")]
    [status] = analysis.rows("statuses")
    assert (status["service"], status["status_hex"], status["category"]) == ("C-GET", "0xA900", "Failure")


def test_cancel_is_linked(tmp_path):
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    exchanges = [("c", associate(True, contexts, roles=[(CT, 0, 1)])),
                 ("s", associate(False, contexts, roles=[(CT, 0, 1)])),
                 ("c", c_get_rq(5)),
                 ("s", c_store_rq(9, "1.2.9.1")), ("c", c_store_rsp(9, 0, "1.2.9.1")),
                 ("s", c_get_rsp(5, 0xFF00, (2, 1, 0, 0))),
                 ("c", c_cancel(5)),
                 ("s", c_get_rsp(5, 0xFE00, (2, 1, 0, 0), failed_uids=[])),
                 ("c", release_rq()), ("s", release_rp())]
    packets = conversation_packets(exchanges)
    analysis = _analyze(tmp_path, packets=packets)
    [operation] = analysis.rows("operations")
    assert operation["cancel_requested"] is True
    assert operation["cancel_frame"] == _frame_of(packets, c_cancel(5))
    assert operation["final_status"] == 0xFE00 and operation["status_category"] == "Cancel"
    assert operation["remaining"] == 2 and operation["sub_operations"] == 1


def test_two_outstanding_gets_are_marked_ambiguous(tmp_path):
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    exchanges = [("c", associate(True, contexts, roles=[(CT, 0, 1)])),
                 ("s", associate(False, contexts, roles=[(CT, 0, 1)])),
                 ("c", c_get_rq(1)), ("c", c_get_rq(2)),
                 ("s", c_store_rq(50, "1.2.50")), ("c", c_store_rsp(50, 0, "1.2.50")),
                 ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0))),
                 ("s", c_store_rq(51, "1.2.51")), ("c", c_store_rsp(51, 0, "1.2.51")),
                 ("s", c_get_rsp(2, 0x0000, (None, 1, 0, 0)))]
    analysis = _analyze(tmp_path, exchanges)
    operations = {row["message_id"]: row for row in analysis.rows("operations")}
    assert operations[1]["linking"] == "ambiguous" and operations[2]["linking"] == "ambiguous"
    assert operations[1]["sub_operations_ambiguous"] == 1
    subs = analysis.rows("sub_operations")
    assert len(subs) == 2
    first, second = subs
    assert first["ambiguous"] is True and first["get_message_id"] is None
    assert first["candidate_get_message_ids"] == "1 2"
    # Once C-GET 1 is final, only C-GET 2 is outstanding: the second link is certain.
    assert second["ambiguous"] is False and second["get_message_id"] == 2


def test_capture_starting_mid_association(tmp_path):
    exchanges = retrieve(get_id=4, instances=3)
    packets = conversation_packets(exchanges)
    # Drop the handshake, the A-ASSOCIATE pair, the C-GET-RQ and the first C-STORE-RQ.
    cut = _frame_of(packets, exchanges[4][1][:40]) + 1
    analysis = _analyze(tmp_path, packets=packets[cut - 1:])
    [association] = analysis.rows("associations")
    assert association["mid_stream"] is True and association["calling_ae"] is None
    assert association["client"] == "127.0.0.1:40001"  # inferred from who sends C-STORE-RSPs
    [operation] = analysis.rows("operations")
    assert operation["message_id"] == 4 and operation["request_frame"] is None
    assert operation["final_status"] == 0 and operation["pending_responses"] == 3
    assert operation["sub_operations"] == 2  # the two whose request is in the capture
    assert association["outcome"] == "released"


def test_capture_starting_mid_association_on_an_unusual_port(tmp_path):
    exchanges = retrieve(instances=2)
    packets = conversation_packets(exchanges, server=("127.0.0.2", 4242))
    analysis = _analyze(tmp_path, packets=packets[6:])
    assert len(analysis.rows("associations")) == 1
    assert analysis.rows("operations")[0]["final_status"] == 0


def test_reordered_and_duplicated_segments_give_the_same_tables(tmp_path):
    exchanges = retrieve(instances=3)
    packets = conversation_packets(exchanges, mss=300)
    reference = _analyze(tmp_path, packets=packets, name="ref.pcap")
    shuffled = list(packets)
    for index in range(10, len(shuffled) - 2, 7):
        shuffled[index], shuffled[index + 1] = shuffled[index + 1], shuffled[index]
    shuffled = shuffled[:20] + shuffled[15:20] + shuffled[20:]  # retransmissions
    analysis = _analyze(tmp_path, packets=shuffled, name="shuffled.pcap")
    strip = ("frame", "request_frame", "response_frame", "final_frame", "time", "request_time",
             "final_time", "duration_s", "elapsed_s", "latency_s", "capture", "capture_set", "cancel_frame")
    for table in ("operations", "progress", "sub_operations"):
        def clean(rows):
            return [{k: v for k, v in row.items() if k not in strip} for row in rows]
        assert clean(analysis.rows(table)) == clean(reference.rows(table)), table
    assert analysis.rows("problems") == []


def test_lost_segment_is_reported_and_analysis_goes_on(tmp_path):
    exchanges = retrieve(instances=3)
    packets = conversation_packets(exchanges, mss=500)
    # Lose a segment inside the second C-STORE-RQ data set.
    second_store = _frame_of(packets, exchanges[5][1][:60])
    del packets[second_store + 1]
    analysis = _analyze(tmp_path, packets=packets)
    problems = analysis.rows("problems")
    holes = [p for p in problems if p["code"] == "CAPTURE-HOLE"]
    assert len(holes) == 1 and "500 bytes" in holes[0]["detail"]
    [operation] = analysis.rows("operations")
    assert operation["final_status"] == 0x0000
    assert operation["pending_responses"] == 3
    # The damaged sub-operation's request is incomplete but its response still links.
    assert operation["sub_operations"] == 3


def test_snaplen_cut_capture_does_not_break(tmp_path):
    packets = conversation_packets(retrieve(instances=2), mss=1000)
    cut = [packet.__class__(bytes(packet)[:96]) for packet in packets]
    for original, new in zip(packets, cut, strict=True):
        new.time = original.time
        new.wirelen = len(original)
    path = tmp_path / "snap.pcap"
    wrpcap(str(path), cut, snaplen=96)
    analysis = trace_analyzer.analyze(str(path))
    # The A-ASSOCIATE-RQ header survives the cut: the association is reported, with its holes.
    [association] = analysis.rows("associations")
    assert association["client"] == "127.0.0.1:40001"
    holes = [p for p in analysis.rows("problems") if p["code"] == "CAPTURE-HOLE"]
    assert len(holes) >= 10 and all("snaplen" in p["detail"] for p in holes)
    analysis.to_json()  # every table builds


def test_truncated_file_keeps_what_came_before(tmp_path):
    path = tmp_path / "full.pcap"
    write_conversation(path, retrieve(instances=2))
    data = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-30])
    analysis = trace_analyzer.analyze(str(cut))
    problems = analysis.rows("problems")
    assert any(p["code"] == "CAPTURE-TRUNCATED" for p in problems)
    [operation] = analysis.rows("operations")
    assert operation["final_status"] == 0  # the release was lost, not the C-GET


def test_rejected_and_aborted_associations(tmp_path):
    contexts = [(1, PATIENT_ROOT_GET, 0)]
    rejected = [("c", associate(True, contexts)),
                ("s", b"\x03\x00\x00\x00\x00\x04\x00\x01\x01\x07")]
    aborted = [("c", associate(True, contexts)), ("s", associate(False, contexts)),
               ("c", c_get_rq(1)), ("s", abort(2, 6))]
    packets = (conversation_packets(rejected)
               + conversation_packets(aborted, client=("127.0.0.1", 40002)))
    analysis = _analyze(tmp_path, packets=packets)
    outcomes = {row["client"]: row for row in analysis.rows("associations")}
    assert outcomes["127.0.0.1:40001"]["outcome"] == "rejected"
    assert "called-AE-title-not-recognized" in outcomes["127.0.0.1:40001"]["reject"]
    assert outcomes["127.0.0.1:40002"]["outcome"] == "aborted"
    assert "invalid-PDU-parameter-value" in outcomes["127.0.0.1:40002"]["abort"]
    [operation] = analysis.rows("operations")
    assert operation["complete"] is False and operation["final_status"] is None


def test_non_dicom_tcp_is_ignored(tmp_path):
    http = [("c", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50), ("s", b"HTTP/1.1 200 OK\r\n\r\n" + bytes(5000))]
    analysis = _analyze(tmp_path, http)
    assert analysis.rows("associations") == []
    [capture] = analysis.rows("captures")
    assert capture["connections"] == 1 and capture["dicom_connections"] == 0


def test_small_pdus_fragment_commands_and_identifiers(tmp_path):
    contexts = [(1, PATIENT_ROOT_GET, 0)]
    from builders import command_set, identifier, message

    command = command_set({0x0002: PATIENT_ROOT_GET, 0x0100: 0x0010, 0x0110: 1, 0x0700: 2, 0x0800: 1})
    data = identifier(QueryRetrieveLevel="SERIES", StudyInstanceUID="1.2.3", SeriesInstanceUID="1.2.3.4")
    fragmented = message(1, command, data, max_pdu=26)  # 20-byte fragments
    assert fragmented.count(b"\x04\x00") > 5
    exchanges = [("c", associate(True, contexts)), ("s", associate(False, contexts)), ("c", fragmented),
                 ("s", c_get_rsp(1, 0x0000, (None, 0, 0, 0)))]
    analysis = _analyze(tmp_path, exchanges)
    [operation] = analysis.rows("operations")
    assert operation["query_retrieve_level"] == "SERIES"
    assert "SeriesInstanceUID=1.2.3.4" in operation["identifier"]
    assert operation["priority"] == 2


def test_several_captures_and_gzip(tmp_path):
    first = tmp_path / "a.pcap"
    write_conversation(first, retrieve(instances=1))
    second = tmp_path / "b.pcap.gz"
    plain = tmp_path / "b.pcap"
    write_conversation(plain, retrieve(get_id=2, instances=2))
    with open(plain, "rb") as source, gzip.open(second, "wb") as target:
        shutil.copyfileobj(source, target)
    analysis = trace_analyzer.analyze([str(first), str(second)])
    associations = analysis.rows("associations")
    # Numbered within each capture set, whatever else the call holds (shared/spec/linking.md).
    assert [row["association"] for row in associations] == [1, 1]
    assert [row["capture"] for row in associations] == [str(first), str(second)]
    assert [row["sub_operations"] for row in analysis.rows("operations")] == [1, 2]


def test_unreadable_file_is_reported_and_others_still_analysed(tmp_path):
    good = tmp_path / "good.pcap"
    write_conversation(good, retrieve(instances=1))
    bad = tmp_path / "bad.pcap"
    bad.write_text("this is not a capture\n")
    analysis = trace_analyzer.analyze([str(bad), str(good), str(tmp_path / "missing.pcap")])
    assert len(analysis.errors) == 2
    assert any("bad.pcap" in e for e in analysis.errors) and any("missing.pcap" in e for e in analysis.errors)
    assert len(analysis.rows("operations")) == 1


def test_json_is_plain_and_complete(tmp_path):
    import json

    analysis = _analyze(tmp_path, retrieve(instances=1))
    data = json.loads(analysis.to_json())
    assert set(data) == set(trace_analyzer.TABLES)
    assert data["operations"][0]["final_status"] == 0 and data["operations"][0]["remaining"] is None


@pytest.mark.parametrize("value", [7, 0xFFFF])
def test_out_of_range_priority_from_the_wire_is_kept(tmp_path, value):
    from builders import command_set, identifier, message

    command = command_set({0x0002: PATIENT_ROOT_GET, 0x0100: 0x0010, 0x0110: 1, 0x0700: value, 0x0800: 1})
    contexts = [(1, PATIENT_ROOT_GET, 0)]
    exchanges = [("c", associate(True, contexts)), ("s", associate(False, contexts)),
                 ("c", message(1, command, identifier(QueryRetrieveLevel="PATIENT", PatientID="X")))]
    analysis = _analyze(tmp_path, exchanges)
    [request] = analysis.c_gets
    assert request.Priority == value and request.problems
    assert analysis.rows("operations")[0]["priority"] == value


def test_long_frames_are_not_cut(tmp_path):
    """Loopback frames exceed 65535 bytes; a PDU inside one must come back whole."""
    big_store = c_store_rq(77, "1.2.77", size=90_000)
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    exchanges = [("c", associate(True, contexts, roles=[(CT, 0, 1)])),
                 ("s", associate(False, contexts, roles=[(CT, 0, 1)])),
                 ("c", c_get_rq(1)),
                 ("s", big_store), ("c", c_store_rsp(77, 0, "1.2.77")),
                 ("s", c_get_rsp(1, 0, (None, 1, 0, 0)))]
    # The largest IPv4 packet: 65535 bytes, so 65549 with the Ethernet header.
    analysis = _analyze(tmp_path, exchanges, mss=65535 - 40)
    [sub] = analysis.rows("sub_operations")
    assert sub["status"] == 0 and sub["dataset_bytes"] > 90_000
    assert analysis.rows("problems") == []


def test_command_set_fields_follow_struct_layout():
    """Guard the builders themselves: the group length covers the rest of the command set."""
    from builders import command_set

    raw = command_set({0x0100: 0x0FFF, 0x0120: 1, 0x0800: 0x0101})
    assert struct.unpack_from("<I", raw, 8)[0] == len(raw) - 12
