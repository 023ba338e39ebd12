"""GET-RSP rules, each with a capture that triggers it and one that does not."""

from __future__ import annotations

import glob
import json
import os

import pytest
from builders import c_store_rq, c_store_rsp, command_set, identifier, message, retrieve
from rules_helpers import analyze_exchanges, findings

import trace_analyzer
from rules.rsp_builders import (
    COMPOSITE_INSTANCE_ROOT_GET,
    SCP,
    STUDY_ROOT_GET,
    conformant_body,
    data_pdu,
    rq,
    rq_command,
    rq_keys,
    rsp,
    session,
    store,
)
from trace_analyzer.rules import CATALOG, IMPLEMENTED, NOT_CHECKABLE, load_families

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "sample_pcaps")
RSP_RULES = [f"GET-RSP-{n:03d}" for n in range(1, 24)]


def test_get_rsp_007_pending_without_counters(tmp_path):
    from builders import c_get_rsp

    exchanges = retrieve(get_id=1, instances=2)
    # Replace the first Pending (after the first sub-operation) by one without Remaining.
    index = next(i for i, (_, data) in enumerate(exchanges) if data == c_get_rsp(1, 0xFF00, (1, 1, 0, 0)))
    exchanges[index] = ("s", c_get_rsp(1, 0xFF00, (None, 1, 0, 0)))
    analysis = analyze_exchanges(tmp_path, exchanges)
    [finding] = findings(analysis, "GET-RSP-007")
    assert finding.severity == "error" and "(0000,1020)" in finding.detail
    assert finding.peer == "QRSCP @ 127.0.0.2:11112" and finding.peer_role == "C-GET SCP"
    assert finding.message_id == 1


def test_get_rsp_007_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=2)), "GET-RSP-007") == []


def one(analysis, rule_id):
    found = findings(analysis, rule_id)
    assert len(found) == 1, [(f.rule, f.frame, f.detail) for f in found]
    return found[0]


def scp_finding(analysis, rule_id, severity="error"):
    finding = one(analysis, rule_id)
    assert finding.severity == severity
    assert finding.peer == SCP and finding.peer_side == "acceptor" and finding.peer_role == "C-GET SCP"
    return finding


def test_every_get_rsp_rule_is_implemented_or_declared():
    load_families()
    for rule_id in RSP_RULES:
        assert rule_id in CATALOG
        assert rule_id in IMPLEMENTED or rule_id in NOT_CHECKABLE, rule_id


@pytest.mark.parametrize("instances", [0, 2])
def test_conformant_exchange_has_no_get_rsp_finding(tmp_path, instances):
    body = conformant_body(instances) if instances else [("s", rsp(1, 0x0000, (None, 0, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    assert [f for f in analysis.findings if f.rule.startswith("GET-RSP")] == []


def test_conformant_warning_with_failures_has_no_get_rsp_finding(tmp_path):
    body = conformant_body(statuses=(0x0000, 0xA700, 0xB000))
    analysis = analyze_exchanges(tmp_path, session(body))
    assert [f for f in analysis.findings if f.rule.startswith("GET-RSP")] == []


def test_get_rsp_001_missing_mandatory_fields(tmp_path):
    body = [("s", rsp(1, 0x0000, (None, 0, 0, 0), omit=(0x0800, 0x0900))),
            ("s", rsp(1, 0x0000, (None, 0, 0, 0)))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-001")
    assert "(0000,0800), (0000,0900)" in finding.detail and finding.message_id == 1


def test_get_rsp_002_response_to_unknown_message_id(tmp_path):
    # C-GET 1 is the only one outstanding: the response naming 9 is taken as its answer (a
    # final one here), so the response that names 1 afterwards comes after the final.
    body = [("s", rsp(9, 0xA702, (None, 0, 0, 0))), ("s", rsp(1, 0x0000, (None, 0, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    finding = scp_finding(analysis, "GET-RSP-002")
    assert finding.message_id == 1 and "answers Message ID 9" in finding.detail
    assert "Message ID 1 on PC 1" in finding.detail
    (operation,) = analysis.rows("operations")
    assert operation["final_status"] == 0xA702 and operation["misnumbered_responses"] == 1
    assert findings(analysis, "GET-RSP-004")


def _misnumbered_body(named: int = 42, instances: int = 3) -> list[tuple[str, bytes]]:
    """Each sub-operation followed by a Pending naming ``named``; the final names 1."""
    body = []
    for index in range(instances):
        body += store(100 + index)
        body.append(("s", rsp(named, 0xFF00, (instances - index - 1, index + 1, 0, 0))))
    return body + [("s", rsp(1, 0x0000, (None, instances, 0, 0)))]


def test_misnumbered_pending_responses_stay_with_their_c_get(tmp_path):
    analysis = analyze_exchanges(tmp_path, session(_misnumbered_body()))
    (operation,) = analysis.rows("operations")
    assert operation["message_id"] == 1 and operation["final_status"] == 0x0000
    assert operation["pending_responses"] == 3 and operation["sub_operations"] == 3
    assert operation["sub_operations_ambiguous"] == 0
    assert operation["linking"] == "misnumbered" and operation["misnumbered_responses"] == 3
    assert "named Message ID 42" in operation["linking_detail"]
    progress = analysis.rows("progress")
    assert [row["message_id"] for row in progress] == [1, 1, 1, 1]
    assert {row["get_message_id"] for row in analysis.rows("sub_operations")} == {1}
    found = findings(analysis, "GET-RSP-002")
    pending_frames = [row["frame"] for row in progress if row["final"] is False]
    assert sorted(f.frame for f in found) == pending_frames  # one per response, at its frame
    assert all(f.message_id == 1 and "answers Message ID 42" in f.detail for f in found)


def test_misnumbered_responses_stay_ambiguous_with_two_c_gets_outstanding(tmp_path):
    body = [("c", rq(3)), *store(100), ("s", rsp(42, 0xFF00, (1, 1, 0, 0))),
            ("s", rsp(1, 0x0000, (None, 1, 0, 0))), ("s", rsp(3, 0x0000, (None, 0, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    operations = {row["message_id"]: row for row in analysis.rows("operations")}
    assert set(operations) == {1, 3, 42}
    assert operations[42]["linking"] == "ambiguous" and operations[42]["misnumbered_responses"] == 0
    assert "may answer C-GET 1, 3" in operations[42]["linking_detail"]
    assert operations[1]["linking"] == operations[3]["linking"] == "ambiguous"
    (finding,) = findings(analysis, "GET-RSP-002")
    assert finding.message_id == 42


def test_misnumbered_responses_not_attached_mid_stream(tmp_path):
    # Without the association's start, the response may answer a C-GET sent before the capture.
    exchanges = session(_misnumbered_body())[2:]
    analysis = analyze_exchanges(tmp_path, exchanges)
    assert {row["message_id"] for row in analysis.rows("operations")} == {1, 42}
    assert {row["misnumbered_responses"] for row in analysis.rows("operations")} == {0}


def test_misnumbered_responses_not_attached_after_capture_loss(tmp_path):
    # The segment carrying C-GET-RQ 5 was never captured: its responses, which rightly name 5,
    # must not be taken for C-GET 1's just because C-GET 1 is the only request seen.
    from builders import conversation_packets
    from scapy.utils import wrpcap

    exchanges = session([("c", rq(5)), *_misnumbered_body(named=5)])
    packets = conversation_packets(exchanges)
    (lost,) = [i for i, p in enumerate(packets) if bytes(p["TCP"].payload) == rq(5)]
    del packets[lost]
    wrpcap(str(tmp_path / "lossy.pcap"), packets)
    analysis = trace_analyzer.analyze(str(tmp_path / "lossy.pcap"))
    assert any(p["code"] == "CAPTURE-HOLE" for p in analysis.rows("problems"))
    operations = {row["message_id"]: row for row in analysis.rows("operations")}
    assert set(operations) == {1, 5}
    assert operations[5]["pending_responses"] == 3 and operations[1]["misnumbered_responses"] == 0


def test_early_failure_of_a_second_c_get_is_not_misnumbered(tmp_path):
    # C-GET 1 outstanding; C-GET 2's identifier is still arriving when the SCP refuses it.
    body = [("c", message(1, rq_command(2))), ("s", rsp(2, 0xA900, None, failed_uids=[])),
            ("c", data_pdu(1, rq_keys())), ("s", rsp(1, 0x0000, (None, 0, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    operations = {row["message_id"]: row for row in analysis.rows("operations")}
    assert set(operations) == {1, 2}
    assert operations[2]["final_status"] == 0xA900 and operations[1]["final_status"] == 0x0000
    assert {row["misnumbered_responses"] for row in operations.values()} == {0}


def test_get_rsp_002_request_only_later(tmp_path):
    body = [("s", rsp(1, 0x0000, (None, 0, 0, 0))), *store(50), ("c", rq(1)),
            ("s", rsp(1, 0x0000, (None, 0, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body, with_request=False))
    assert "only later" in scp_finding(analysis, "GET-RSP-002").detail
    assert findings(analysis, "GET-RSP-017") == []


def test_get_rsp_002_not_for_mid_stream_capture(tmp_path):
    # The capture starts inside a C-GET: its request is simply not in the capture.
    exchanges = [("s", c_store_rq(100, "1.2.3.4.1", size=64)), ("c", c_store_rsp(100, 0, "1.2.3.4.1")),
                 ("s", rsp(1, 0xFF00, (0, 1, 0, 0))), ("s", rsp(1, 0x0000, (None, 1, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, exchanges, handshake=False)
    assert analysis.association_records[0].mid_stream
    assert findings(analysis, "GET-RSP-002") == [] and findings(analysis, "GET-RSP-017") == []


def test_get_rsp_003_sop_class_differs(tmp_path):
    body = [("s", rsp(1, 0x0000, (None, 0, 0, 0), sop_class=STUDY_ROOT_GET))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-003")
    assert STUDY_ROOT_GET in finding.detail


def test_get_rsp_003_absent_sop_class_is_fine(tmp_path):
    body = [("s", rsp(1, 0x0000, (None, 0, 0, 0), sop_class=None))]
    assert findings(analyze_exchanges(tmp_path, session(body)), "GET-RSP-003") == []


def test_get_rsp_004_response_after_final(tmp_path):
    body = conformant_body(1) + [("s", rsp(1, 0xB000, (None, 1, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    finding = scp_finding(analysis, "GET-RSP-004")
    assert "0xB000 follows the final response 0x0000" in finding.detail
    assert finding.frame == analysis.operation_records[0].late_responses[0].frame


def test_get_rsp_005_status_outside_annex_c(tmp_path):
    body = [("s", rsp(1, 0xD000, (None, 0, 0, 0)))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-005")
    assert "0xD000" in finding.detail


def test_get_rsp_005_undefined_general_code(tmp_path):
    body = [("s", rsp(1, 0x0150, (None, 0, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    assert "0x0150" in scp_finding(analysis, "GET-RSP-005").detail
    assert findings(analysis, "GET-RSP-006") == []


@pytest.mark.parametrize("status", [0xC123, 0xA701, 0x0122])
def test_get_rsp_005_006_defined_codes(tmp_path, status):
    analysis = analyze_exchanges(tmp_path, session([("s", rsp(1, status, None))]))
    assert findings(analysis, "GET-RSP-005") == [] and findings(analysis, "GET-RSP-006") == []


@pytest.mark.parametrize("status, text", [(0xA700, "A701, A702, A900"), (0xB007, "B000"),
                                          (0x0110, "0122, 0124"), (0xAA00, "Composite Instance Root")])
def test_get_rsp_006_status_not_for_c_get(tmp_path, status, text):
    analysis = analyze_exchanges(tmp_path, session([("s", rsp(1, status, None))]))
    finding = scp_finding(analysis, "GET-RSP-006", "warning")
    assert f"0x{status:04X}" in finding.detail and text in finding.detail


def test_get_rsp_006_composite_codes_allowed_for_composite_root(tmp_path):
    contexts = [(1, COMPOSITE_INSTANCE_ROOT_GET, 0), (3, "1.2.840.10008.5.1.4.1.1.2", 0)]
    body = [("s", rsp(1, 0xAA02, None, sop_class=COMPOSITE_INSTANCE_ROOT_GET))]
    analysis = analyze_exchanges(tmp_path, session(body, contexts, sop_class=COMPOSITE_INSTANCE_ROOT_GET))
    assert findings(analysis, "GET-RSP-006") == []


def test_get_rsp_008_remaining_in_final(tmp_path):
    body = store(100) + [("s", rsp(1, 0xFF00, (0, 1, 0, 0))), ("s", rsp(1, 0x0000, (0, 1, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    finding = scp_finding(analysis, "GET-RSP-008")
    assert "(0000,1020) = 0" in finding.detail and finding.severity == "error"
    assert finding.frame == analysis.operation_records[0].final.frame


def test_get_rsp_008_is_a_warning_for_composite_instance_root(tmp_path):
    contexts = [(1, COMPOSITE_INSTANCE_ROOT_GET, 0), (3, "1.2.840.10008.5.1.4.1.1.2", 0)]
    body = [("s", rsp(1, 0xA702, (0, 0, 1, 0), sop_class=COMPOSITE_INSTANCE_ROOT_GET))]
    analysis = analyze_exchanges(tmp_path, session(body, contexts, sop_class=COMPOSITE_INSTANCE_ROOT_GET))
    finding = one(analysis, "GET-RSP-008")
    assert finding.severity == "warning" and COMPOSITE_INSTANCE_ROOT_GET in finding.detail
    raised = analyze_exchanges(tmp_path, session(body, contexts, sop_class=COMPOSITE_INSTANCE_ROOT_GET),
                               rules={"GET-RSP-008": "error"})
    assert one(raised, "GET-RSP-008").severity == "error"  # the user's level wins


def test_get_rsp_008_remaining_allowed_in_cancel(tmp_path):
    body = store(100) + [("s", rsp(1, 0xFF00, (2, 1, 0, 0))), ("c", message(1, _cancel(1))),
                         ("s", rsp(1, 0xFE00, (2, 1, 0, 0), failed_uids=[]))]
    assert findings(analyze_exchanges(tmp_path, session(body)), "GET-RSP-008") == []


def _cancel(message_id):
    return command_set({0x0100: 0x0FFF, 0x0120: message_id, 0x0800: 0x0101})


def test_get_rsp_009_final_without_completed(tmp_path):
    body = [("s", rsp(1, 0xB000, (None, None, 1, 0), failed_uids=["1.2.3.9"]))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-009", "warning")
    assert "lacks (0000,1021)" in finding.detail


def test_get_rsp_009_not_for_other_failures(tmp_path):
    assert findings(analyze_exchanges(tmp_path, session([("s", rsp(1, 0xA900, None))])), "GET-RSP-009") == []


@pytest.mark.parametrize("status, counters", [(0xFF00, (1, 1, 0, 0)), (0x0000, (None, 2, 0, 0))])
def test_get_rsp_010_data_set_on_pending_or_success(tmp_path, status, counters):
    body = [("s", rsp(1, status, counters, failed_uids=[])), ("s", rsp(1, 0x0000, (None, 2, 0, 0)))]
    found = findings(analyze_exchanges(tmp_path, session(body)), "GET-RSP-010")
    assert found and f"0x{status:04X} has a data set" in found[0].detail


def test_get_rsp_011_failures_without_list(tmp_path):
    body = [("s", rsp(1, 0xB000, (None, 1, 2, 0)))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-011", "warning")
    assert "(0000,1022) = 2 but has no Identifier" in finding.detail


def test_get_rsp_012_list_length_differs(tmp_path):
    body = [("s", rsp(1, 0xB000, (None, 1, 2, 0), failed_uids=["1.2.3.9"]))]
    analysis = analyze_exchanges(tmp_path, session(body))
    finding = scp_finding(analysis, "GET-RSP-012", "warning")
    assert "lists 1 SOP Instance UID(s) but (0000,1022) = 2" in finding.detail
    assert findings(analysis, "GET-RSP-011") == []


def test_get_rsp_013_character_set_in_identifier(tmp_path):
    data = identifier(SpecificCharacterSet="ISO_IR 100", FailedSOPInstanceUIDList=["1.2.3.9"])
    body = [("s", rsp(1, 0xB000, (None, 1, 1, 0), data=data))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-013")
    assert "(0008,0005)" in finding.detail and finding.severity == "error"


def test_get_rsp_013_other_attributes_in_identifier(tmp_path):
    data = identifier(PatientName="Doe^Jo", FailedSOPInstanceUIDList=["1.2.3.9"])
    body = [("s", rsp(1, 0xB000, (None, 1, 1, 0), data=data))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-013", "warning")
    assert "(0010,0010)" in finding.detail and finding.severity == "warning"


def test_get_rsp_014_success_with_failures(tmp_path):
    body = [("s", rsp(1, 0x0000, (None, 2, 1, 0), failed_uids=["1.2.3.9"]))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-014")
    assert "Failed = 1" in finding.detail


@pytest.mark.parametrize("counters, text", [((None, 2, 0, 0), "should be Success"),
                                            ((None, 0, 2, 0), "should be Failure or Refused")])
def test_get_rsp_015_warning_not_matching_counters(tmp_path, counters, text):
    uids = ["1.2.3.8", "1.2.3.9"] if counters[2] else None
    body = [("s", rsp(1, 0xB000, counters, failed_uids=uids))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-015")
    assert text in finding.detail


def test_get_rsp_016_failure_after_successes(tmp_path):
    body = [("s", rsp(1, 0xA702, (None, 2, 1, 0), failed_uids=["1.2.3.9"]))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-016")
    assert "0xA702" in finding.detail and "Completed = 2" in finding.detail


def test_get_rsp_016_all_failed_is_fine(tmp_path):
    body = [("s", rsp(1, 0xA702, (None, 0, 2, 0), failed_uids=["1.2.3.8", "1.2.3.9"]))]
    assert findings(analyze_exchanges(tmp_path, session(body)), "GET-RSP-016") == []


def _split_request(response: bytes) -> list[tuple[str, bytes]]:
    """The C-GET-RQ command, then ``response`` from the SCP, then the RQ identifier."""
    return [("c", message(1, rq_command(1))), ("s", response), ("c", data_pdu(1, rq_keys()))]


def test_get_rsp_017_success_before_identifier(tmp_path):
    body = _split_request(rsp(1, 0x0000, (None, 0, 0, 0)))
    analysis = analyze_exchanges(tmp_path, session(body, with_request=False))
    finding = scp_finding(analysis, "GET-RSP-017")
    assert "Success response 0x0000" in finding.detail and finding.message_id == 1
    assert findings(analysis, "GET-RSP-002") == []


def test_get_rsp_017_early_failure_allowed(tmp_path):
    body = _split_request(rsp(1, 0xA900, None, failed_uids=[]))
    analysis = analyze_exchanges(tmp_path, session(body, with_request=False))
    assert findings(analysis, "GET-RSP-017") == [] and findings(analysis, "GET-RSP-002") == []


@pytest.mark.parametrize("status, extra, text", [
    (0xFF00, {0x0902: "busy"}, "(0000,0902)"),
    (0xA702, {0x0901: [0x00100020]}, "(0000,0901)"),
    (0x0000, {0x0903: 7}, "(0000,0903)"),
])
def test_get_rsp_018_status_fields_not_listed(tmp_path, status, extra, text):
    counters = (1, 0, 0, 0) if status == 0xFF00 else (None, 0, 0, 0)
    body = [("s", rsp(1, status, counters, extra=extra)), ("s", rsp(1, 0xA701, None))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-018", "warning")
    assert text in finding.detail and f"0x{status:04X}" in finding.detail


@pytest.mark.parametrize("status", [0xA900, 0xC001, 0xB000])
def test_get_rsp_018_listed_fields(tmp_path, status):
    body = [("s", rsp(1, status, None, extra={0x0901: [0x00080052], 0x0902: "bad level"}))]
    assert findings(analyze_exchanges(tmp_path, session(body)), "GET-RSP-018") == []


@pytest.mark.parametrize("comment, text", [("x" * 70, "70 characters"), ("caf\u00e9", "default repertoire")])
def test_get_rsp_019_error_comment_not_lo(tmp_path, comment, text):
    body = [("s", rsp(1, 0xC001, None, extra={0x0902: comment}))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-019")
    assert text in finding.detail


def test_get_rsp_019_64_characters_fine(tmp_path):
    body = [("s", rsp(1, 0xC001, None, extra={0x0902: "y" * 64}))]
    assert findings(analyze_exchanges(tmp_path, session(body)), "GET-RSP-019") == []


def test_get_rsp_020_error_id_on_other_status(tmp_path):
    body = [("s", rsp(1, 0xA900, None, extra={0x0903: 12}))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-020", "warning")
    assert "0xA900" in finding.detail and "= 12" in finding.detail


def test_get_rsp_020_error_id_on_processing_failure(tmp_path):
    body = [("s", rsp(1, 0x0110, None, extra={0x0903: 12}))]
    assert findings(analyze_exchanges(tmp_path, session(body)), "GET-RSP-020") == []


def test_get_rsp_021_message_id_in_response(tmp_path):
    body = [("s", rsp(1, 0x0000, (None, 0, 0, 0), extra={0x0110: 77}))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-021", "warning")
    assert "= 77" in finding.detail


def test_get_rsp_022_response_on_other_context(tmp_path):
    body = [("s", rsp(1, 0x0000, (None, 0, 0, 0), context_id=5))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-022", "warning")
    assert "context 5" in finding.detail and "context 1" in finding.detail


def test_get_rsp_023_elements_not_in_table(tmp_path):
    body = [("s", rsp(1, 0x0000, (None, 0, 0, 0), extra={0x0700: 0, 0x0600: b"DEST"}))]
    finding = scp_finding(analyze_exchanges(tmp_path, session(body)), "GET-RSP-023", "warning")
    assert "MoveDestination (0000,0600)" in finding.detail and "Priority (0000,0700)" in finding.detail


# ---------------------------------------------------------------------------
# Real captures: only the deviations catalog section 6 documents.

#: pynetdicom SCPs re-use one response object, so finals keep (0000,1020) = 0 (catalog 6.1).
PYNETDICOM_SCP_FINALS_WITH_REMAINING = {
    "dcmtk_scu_to_pynetdicom_scp.pcap", "ethernet_vlan.pcap", "gap_lost_segment.pcap",
    "interleaved_two_associations.pcap", "ipv6_success.pcap", "linux_sll.pcap", "midstream_start.pcap",
    "null_loopback.pcap", "pynetdicom_failed_warning_subops.pcap", "pynetdicom_success.pcapng",
    "pynetdicom_to_pynetdicom_success.pcap", "raw_ip.pcap", "reordered_retransmitted.pcap",
    "retrieve.pcap.gz", "small_max_pdu.pcap",
}
DCMTK_SCP = {"dcmtk_to_dcmtk_success.pcap", "pynetdicom_scu_to_dcmtk_scp.pcap"}


def _manifest() -> dict[str, dict]:
    with open(os.path.join(SAMPLES, "manifest.json")) as handle:
        return {entry["file"]: entry for entry in json.load(handle)["captures"]}


def test_sample_captures_show_only_documented_get_rsp_deviations():
    manifest = _manifest()
    paths = sorted(glob.glob(os.path.join(SAMPLES, "*.pcap*")))
    assert paths
    for path in paths:
        name = os.path.basename(path)
        found = [f for f in trace_analyzer.analyze(path).findings if f.rule.startswith("GET-RSP")]
        if manifest.get(name, {}).get("kind") == "fault":
            # A misbehaving SCP: exactly its documented GET-RSP faults, blamed on it.
            wanted = {r for r in manifest[name]["expected_rules"] if r.startswith("GET-RSP")}
            assert {f.rule for f in found} == wanted, (name, [(f.rule, f.detail) for f in found])
            assert all(f.peer_side == "acceptor" for f in found)
            continue
        rsp_008 = [f for f in found if f.rule == "GET-RSP-008"]
        others = [(f.rule, f.detail) for f in found if f.rule != "GET-RSP-008"]
        if name in PYNETDICOM_SCP_FINALS_WITH_REMAINING:
            assert rsp_008 and all("(0000,1020) = 0" in f.detail for f in rsp_008), name
            assert all(f.peer_role == "C-GET SCP" for f in rsp_008)
        else:
            assert rsp_008 == [], name
        if name == "pynetdicom_failure_error_comment.pcap":
            # pynetdicom folds the unperformed matches into Failed (6.15) and always sends
            # (0008,0058), empty here (6.3): the list cannot match (0000,1022).
            assert [rule for rule, _ in others] == ["GET-RSP-012"], others
            assert "lists 0 SOP Instance UID(s) but (0000,1022) = 3" in others[0][1]
        else:
            assert others == [], (name, others)
        if name in DCMTK_SCP:
            assert found == [], name
