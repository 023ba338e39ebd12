"""GET-SUB rules: each with a capture that triggers it and one that does not."""

from __future__ import annotations

import glob
import json
import os

import pytest
from builders import CT, c_get_rsp, c_store_rsp, conversation_packets, identifier, message, retrieve
from rules_helpers import analyze_exchanges, findings
from scapy.utils import wrpcap

import trace_analyzer
from rules.sub_builders import (
    MR,
    WITHOUT_BULK_DATA_GET,
    get_rq,
    pdv_pdu,
    retrieve_with,
    split_pdus,
    store_command,
    store_data,
    store_rq,
    store_rsp,
    sub_operations,
)
from trace_analyzer.rules import IMPLEMENTED, NOT_CHECKABLE, load_families

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "sample_pcaps")
SCP = "QRSCP @ 127.0.0.2:11112"
SCU = "GETSCU @ 127.0.0.1:40001"
FAMILY = [f"GET-SUB-{n:03d}" for n in range(1, 17)]


def _sub(analysis, index: int):
    [operation] = analysis.operation_records
    return operation.sub_operations[index]


def _one(analysis, rule_id: str):
    found = findings(analysis, rule_id)
    assert len(found) == 1, found
    return found[0]


def test_every_rule_is_implemented_or_declared():
    load_families()
    for rule_id in FAMILY:
        assert rule_id in IMPLEMENTED or rule_id in NOT_CHECKABLE, rule_id
    assert "GET-SUB-013" in NOT_CHECKABLE


@pytest.mark.parametrize("rule_id", [r for r in FAMILY if r != "GET-SUB-013"])
def test_conformant_retrieve_triggers_nothing(tmp_path, rule_id):
    analysis = analyze_exchanges(tmp_path, retrieve(instances=3))
    assert findings(analysis, rule_id) == []


def test_get_sub_001_store_without_scp_role(tmp_path):
    # No role selection at all: the acceptor is Storage SCP only, so it may not send C-STORE-RQs.
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), *sub_operations(1, 1), ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))],
        rq_roles=[], ac_roles=[]))
    finding = _one(analysis, "GET-SUB-001")
    assert finding.severity == "error" and finding.peer == SCP
    assert finding.peer_side == "acceptor" and finding.peer_role == "Storage SCU"
    assert finding.message_id == 1 and finding.frame == _sub(analysis, 0).request.frame
    assert "PC 3" in finding.detail and "SCP-role = 1" in finding.detail


def test_get_sub_002_sop_class_not_the_context(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1", sop_class=MR)),
         ("c", c_store_rsp(100, 0x0000, "1.2.3.4.1")), ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]))
    finding = _one(analysis, "GET-SUB-002")
    assert finding.severity == "error" and finding.peer_side == "acceptor"
    assert MR in finding.detail and CT in finding.detail


def test_get_sub_003_priority_differs_from_get(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1, priority=1)), *sub_operations(1, 2),
         ("s", c_get_rsp(1, 0x0000, (None, 2, 0, 0)))]))
    found = findings(analysis, "GET-SUB-003")
    assert len(found) == 2  # one per sub-operation
    assert found[0].severity == "error" and found[0].peer == SCP and found[0].peer_role == "Storage SCU"
    assert found[0].message_id == 1 and found[0].frame == _sub(analysis, 0).request.frame
    assert "Priority 0 (MEDIUM)" in found[0].detail and "1 (HIGH)" in found[0].detail


def test_get_sub_004_move_originator_fields(tmp_path):
    store = store_rq(100, "1.2.3.4.1", extra={0x1030: b"MOVESCU ", 0x1031: 7})
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store), ("c", c_store_rsp(100, 0x0000, "1.2.3.4.1")),
         ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]))
    finding = _one(analysis, "GET-SUB-004")
    assert finding.severity == "warning" and finding.peer_side == "acceptor" and finding.message_id == 1
    assert "(0000,1030) and (0000,1031)" in finding.detail


def test_get_sub_005_store_after_final(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), *sub_operations(1, 1), ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0))),
         ("s", store_rq(200, "1.2.3.4.9")), ("c", c_store_rsp(200, 0x0000, "1.2.3.4.9"))]))
    finding = _one(analysis, "GET-SUB-005")
    assert finding.severity == "error" and finding.peer == SCP and finding.peer_role == "Storage SCU"
    assert finding.message_id == 1
    assert "Message ID 200" in finding.detail and "0x0000" in finding.detail


def test_get_sub_006_two_stores_outstanding(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1")), ("s", store_rq(101, "1.2.3.4.2")),
         ("c", c_store_rsp(100, 0x0000, "1.2.3.4.1")), ("c", c_store_rsp(101, 0x0000, "1.2.3.4.2")),
         ("s", c_get_rsp(1, 0x0000, (None, 2, 0, 0)))]))
    finding = _one(analysis, "GET-SUB-006")
    assert finding.severity == "error" and finding.peer_side == "acceptor"
    assert finding.frame == _sub(analysis, 1).request.frame
    assert "Message ID 100" in finding.detail and "allows 1" in finding.detail


def test_get_sub_007_store_request_fields(tmp_path):
    no_instance = store_rq(100, "1.2.3.4.1", drop=(0x1000,))
    no_data = store_rq(101, "1.2.3.4.2", extra={0x0800: 0x0101}, data=None)
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", no_instance), ("c", c_store_rsp(100, 0x0000, "1.2.3.4.1")),
         ("s", no_data), ("c", c_store_rsp(101, 0xA700, "1.2.3.4.2")),
         ("s", c_get_rsp(1, 0xB000, (None, 1, 1, 0)))]))
    first, second = findings(analysis, "GET-SUB-007")
    assert first.severity == "error" and first.peer_side == "acceptor" and first.peer_role == "Storage SCU"
    assert "lacks (0000,1000)" in first.detail
    assert "0x0101" in second.detail and second.frame == _sub(analysis, 1).request.frame


def test_get_sub_008_store_response_fields(tmp_path):
    bad = store_rsp(100, 0x0000, "1.2.3.4.1", extra={0x0800: 0x0001}, data=identifier(PatientID="X"))
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1")), ("c", bad),
         ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]))
    finding = _one(analysis, "GET-SUB-008")
    assert finding.severity == "error" and finding.peer == SCU
    assert finding.peer_side == "requestor" and finding.peer_role == "Storage SCP"
    assert "(0000,0800) = 0x0001" in finding.detail and "data set" in finding.detail


def test_get_sub_008_missing_status(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1")), ("c", store_rsp(100, drop=(0x0900,))),
         ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]))
    assert "lacks (0000,0900)" in _one(analysis, "GET-SUB-008").detail


def test_get_sub_009_response_instance_differs(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1")), ("c", store_rsp(100, 0x0000, "1.2.3.4.77")),
         ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]))
    finding = _one(analysis, "GET-SUB-009")
    assert finding.severity == "error" and finding.peer_side == "requestor"
    assert finding.frame == _sub(analysis, 0).response.frame
    assert "(0000,1000) 1.2.3.4.77 (request: 1.2.3.4.1)" in finding.detail


def test_get_sub_010_response_to_nothing(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), *sub_operations(1, 1), ("c", c_store_rsp(555, 0x0000, "1.2.3.4.1")),
         ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]))
    finding = _one(analysis, "GET-SUB-010")
    assert finding.severity == "error" and finding.peer == SCU and finding.peer_role == "Storage SCP"
    assert finding.message_id == 555 and "= 555" in finding.detail
    assert finding.frame is not None and finding.frame > _sub(analysis, 0).response.frame


def test_get_sub_010_not_after_a_capture_hole(tmp_path):
    # The same stray response, but the capture lost bytes earlier: the request may be in the hole.
    exchanges = retrieve_with([("c", get_rq(1)), *sub_operations(1, 1),
                               ("c", c_store_rsp(555, 0x0000, "1.2.3.4.1")),
                               ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))])
    packets = conversation_packets(exchanges)
    del packets[7]  # a segment of the first C-STORE-RQ data set
    path = tmp_path / "hole.pcap"
    wrpcap(str(path), packets)
    analysis = trace_analyzer.analyze(str(path))
    assert any(p.code == "CAPTURE-HOLE" for p in analysis.problem_records)
    assert findings(analysis, "GET-SUB-010") == []


def _store_cut_by_response(status: int) -> list[tuple[str, bytes]]:
    # Small PDUs so that the data set spans several and the response can come between them.
    pdus = split_pdus(message(3, store_command(100, "1.2.3.4.1"), store_data("1.2.3.4.1", size=6000),
                              max_pdu=2000))
    assert len(pdus) >= 4
    failed = 1 if status else 0
    return [("c", get_rq(1)), ("s", b"".join(pdus[:2])), ("c", c_store_rsp(100, status, "1.2.3.4.1")),
            ("s", b"".join(pdus[2:])), ("s", c_get_rsp(1, 0xFF00, (1, 1 - failed, failed, 0))),
            *sub_operations(1, 1, 101)[:2],  # a second sub-operation, without its Pending
            ("s", c_get_rsp(1, 0xB000 if failed else 0x0000, (None, 2 - failed, failed, 0)))]


def test_get_sub_011_success_before_data_set_complete(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(_store_cut_by_response(0x0000)))
    finding = _one(analysis, "GET-SUB-011")
    assert finding.severity == "error" and finding.peer == SCU and finding.peer_role == "Storage SCP"
    assert "Success (0x0000) to Message ID 100" in finding.detail and "still arriving" in finding.detail
    assert findings(analysis, "GET-SUB-010") == []  # one fact, one rule


def test_get_sub_011_early_failure_is_allowed(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(_store_cut_by_response(0xA700)))
    # The early answer leaves nothing behind: no stray response, no request awaiting one.
    for rule_id in ("GET-SUB-006", "GET-SUB-010", "GET-SUB-011", "GET-SUB-015"):
        assert findings(analysis, rule_id) == [], rule_id


def test_get_sub_011_success_for_data_set_that_never_ended(tmp_path):
    command = pdv_pdu(3, 0x03, store_command(100, "1.2.3.4.1"))
    data = pdv_pdu(3, 0x00, store_data("1.2.3.4.1", size=500))  # no last-fragment bit
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", command + data), ("s", c_get_rsp(1, 0xFF00, (0, 0, 0, 0))),
         ("c", c_store_rsp(100, 0x0000, "1.2.3.4.1")), ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]))
    finding = _one(analysis, "GET-SUB-011")
    assert finding.peer_side == "requestor" and "never ended" in finding.detail


def test_get_sub_012_data_set_instance_differs(tmp_path):
    data = identifier(SOPClassUID=CT, SOPInstanceUID="9.9.9") + bytes(100)
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1", data=data)),
         ("c", c_store_rsp(100, 0x0000, "1.2.3.4.1")), ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]))
    finding = _one(analysis, "GET-SUB-012")
    assert finding.severity == "warning" and finding.peer_side == "acceptor"
    assert finding.frame == _sub(analysis, 0).request.frame
    assert "(0008,0018)/(0000,1000) 9.9.9 vs 1.2.3.4.1" in finding.detail


def test_get_sub_014_without_bulk_data_refused(tmp_path):
    contexts = [(1, WITHOUT_BULK_DATA_GET, 0), (3, CT, 0)]
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1, sop_class=WITHOUT_BULK_DATA_GET)), ("s", store_rq(100, "1.2.3.4.1")),
         ("c", c_store_rsp(100, 0xA900, "1.2.3.4.1")), ("s", c_get_rsp(1, 0xA702, (None, 0, 1, 0)))],
        contexts=contexts))
    finding = _one(analysis, "GET-SUB-014")
    assert finding.severity == "warning" and finding.peer == SCU and finding.peer_role == "Storage SCP"
    assert finding.message_id == 1 and "0xA900" in finding.detail


def test_get_sub_014_other_models_may_refuse(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1")),
         ("c", c_store_rsp(100, 0xA900, "1.2.3.4.1")), ("s", c_get_rsp(1, 0xA702, (None, 0, 1, 0)))]))
    assert findings(analysis, "GET-SUB-014") == []


def test_get_sub_015_final_before_store_response(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1")), ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0))),
         ("c", c_store_rsp(100, 0x0000, "1.2.3.4.1"))]))
    finding = _one(analysis, "GET-SUB-015")
    assert finding.severity == "warning" and finding.peer == SCP and finding.peer_role == "C-GET SCP"
    assert finding.message_id == 1 and "Message ID 100" in finding.detail
    [operation] = analysis.operation_records
    assert finding.frame == operation.final.frame


def test_get_sub_016_response_on_another_context(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(
        [("c", get_rq(1)), ("s", store_rq(100, "1.2.3.4.1")),
         ("c", store_rsp(100, 0x0122, "1.2.3.4.1", context_id=1)),
         ("s", c_get_rsp(1, 0xA702, (None, 0, 1, 0)))]))
    finding = _one(analysis, "GET-SUB-016")
    assert finding.severity == "warning" and finding.peer_side == "requestor"
    assert finding.peer_role == "Storage SCP" and finding.message_id == 1
    assert "PC 1" in finding.detail and "PC 3" in finding.detail and "pynetdicom" in finding.detail


def _family(analysis) -> list:
    return [f for f in analysis.findings if f.rule.startswith("GET-SUB-")]


def _manifest() -> dict[str, dict]:
    with open(os.path.join(SAMPLES, "manifest.json")) as handle:
        return {c["file"]: c for c in json.load(handle)["captures"]}


def test_samples_show_only_documented_deviations_and_planted_faults():
    manifest = _manifest()
    paths = sorted(glob.glob(os.path.join(SAMPLES, "*.pcap*")))
    assert paths
    seen: dict[str, set[str]] = {}
    for finding in _family(trace_analyzer.analyze(paths)):
        name = os.path.basename(finding.capture)
        seen.setdefault(name, set()).add(finding.rule)
        if manifest[name]["kind"] != "fault":
            # Catalog 6.2: a pynetdicom C-GET SCP sends every sub-operation at Priority 2 (LOW);
            # only the DCMTK SCU's MEDIUM C-GET shows it.
            assert finding.rule == "GET-SUB-003", finding
            assert name == "dcmtk_scu_to_pynetdicom_scp.pcap" and "Priority 2 (LOW)" in finding.detail
        elif finding.rule not in manifest[name]["expected_rules"]:
            # Catalog 6.6: the pynetdicom C-GET SCU refuses a C-STORE it has no SCP role for
            # with 0x0122 on PC 1, whatever context the request used.
            assert name in ("fault_store_without_role.pcap", "fault_role_refused.pcap"), finding
            assert finding.rule == "GET-SUB-016" and "pynetdicom" in manifest[name]["scu"], finding
            assert "PC 1" in finding.detail
    for name, capture in manifest.items():
        wanted = {r for r in capture.get("expected_rules", ()) if r.startswith("GET-SUB-")}
        assert wanted <= seen.get(name, set()), name


def test_dcmtk_to_dcmtk_has_no_error():
    analysis = trace_analyzer.analyze(os.path.join(SAMPLES, "dcmtk_to_dcmtk_success.pcap"))
    assert [f for f in _family(analysis) if f.severity == "error"] == []


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"])
def test_data_set_head_in_each_byte_order(syntax):
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    from trace_analyzer.rules.get_sub import _head_uids

    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientID = CT, "1.2.3.4.5", "P1"
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = syntax == "1.2.840.10008.1.2"
    buffer.is_little_endian = syntax != "1.2.840.10008.1.2.2"
    write_dataset(buffer, ds)
    data = buffer.getvalue()
    assert _head_uids(data, syntax) == {0x00080016: CT, 0x00080018: "1.2.3.4.5"}
    assert _head_uids(data[:20], syntax) is None  # the kept head is too short to tell
    assert _head_uids(data, "1.2.840.10008.1.2.1.99") is None  # deflated: not read


def test_early_store_failure_links_response_and_request(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve_with(_store_cut_by_response(0xA700)))
    subs = [row for row in analysis.rows("sub_operations") if row["message_id"] == 100]
    assert len(subs) == 1 and subs[0]["status"] == 0xA700 and subs[0]["request_frame"] is not None
    assert analysis.rows("operations")[0]["sub_operations_unanswered"] == 0
