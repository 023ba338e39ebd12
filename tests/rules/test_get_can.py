"""GET-CAN rules: each with a capture that triggers it and one that does not."""

from __future__ import annotations

import glob
import json
import os

import pytest
from builders import c_get_rsp, c_store_rsp
from rules_helpers import analyze_exchanges, findings

import trace_analyzer
from rules.sub_builders import cancel, get_rq, retrieve_with, store_rq, sub_operations
from trace_analyzer.rules import IMPLEMENTED, NOT_CHECKABLE, load_families

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "sample_pcaps")
SCP = "QRSCP @ 127.0.0.2:11112"
SCU = "GETSCU @ 127.0.0.1:40001"
FAMILY = [f"GET-CAN-{n:03d}" for n in range(1, 10)]


def _cancelled(cancel_message: bytes | None = None, final=None, after_cancel=()) -> list[tuple[str, bytes]]:
    """One C-GET of three instances, cancelled after the first sub-operation."""
    final = final if final is not None else c_get_rsp(1, 0xFE00, (2, 1, 0, 0))
    middle = [("c", get_rq(1)), *sub_operations(1, 1)]
    middle[-1] = ("s", c_get_rsp(1, 0xFF00, (2, 1, 0, 0)))
    middle.append(("c", cancel(1) if cancel_message is None else cancel_message))
    middle += list(after_cancel)
    middle.append(("s", final))
    return retrieve_with(middle)


def _one(analysis, rule_id: str):
    found = findings(analysis, rule_id)
    assert len(found) == 1, found
    return found[0]


def test_every_rule_is_implemented_or_declared():
    load_families()
    for rule_id in FAMILY:
        assert rule_id in IMPLEMENTED or rule_id in NOT_CHECKABLE, rule_id


@pytest.mark.parametrize("rule_id", FAMILY)
def test_conformant_cancel_triggers_nothing(tmp_path, rule_id):
    analysis = analyze_exchanges(tmp_path, _cancelled())
    assert analysis.operation_records[0].cancels  # the cancel was linked
    assert findings(analysis, rule_id) == []


def test_get_can_001_cancel_with_data_set(tmp_path):
    bad = cancel(1, extra={0x0800: 0x0001}, data=b"\x08\x00\x52\x00\x00\x00\x00\x00")
    finding = _one(analyze_exchanges(tmp_path, _cancelled(bad)), "GET-CAN-001")
    assert finding.severity == "error" and finding.peer == SCU
    assert finding.peer_side == "requestor" and finding.peer_role == "C-GET SCU" and finding.message_id == 1
    assert "(0000,0800) = 0x0001" in finding.detail and "8-byte data set" in finding.detail


def test_get_can_001_cancel_without_message_id(tmp_path):
    exchanges = _cancelled(cancel(None), final=c_get_rsp(1, 0x0000, (None, 3, 0, 0)),
                           after_cancel=sub_operations(1, 2, 101))
    finding = _one(analyze_exchanges(tmp_path, exchanges), "GET-CAN-001")
    assert "lacks (0000,0120)" in finding.detail


def test_get_can_002_extra_fields(tmp_path):
    finding = _one(analyze_exchanges(tmp_path, _cancelled(cancel(1, extra={0x0110: 9}))), "GET-CAN-002")
    assert finding.severity == "warning" and finding.peer_side == "requestor" and finding.message_id == 1
    assert "MessageID" in finding.detail


def test_get_can_003_cancel_for_unknown_get(tmp_path):
    exchanges = _cancelled(cancel(42), final=c_get_rsp(1, 0x0000, (None, 3, 0, 0)),
                           after_cancel=sub_operations(1, 2, 101))
    finding = _one(analyze_exchanges(tmp_path, exchanges), "GET-CAN-003")
    assert finding.severity == "warning" and finding.peer == SCU and finding.peer_role == "C-GET SCU"
    assert finding.message_id == 42 and "= 42 matches no C-GET-RQ" in finding.detail


def test_get_can_003_cancel_after_final_is_noted_as_info(tmp_path):
    middle = [("c", get_rq(1)), *sub_operations(1, 1), ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0))),
              ("c", cancel(1))]
    finding = _one(analyze_exchanges(tmp_path, retrieve_with(middle)), "GET-CAN-003")
    assert finding.message_id == 1 and "after its final response" in finding.detail
    assert finding.severity == "info"


def test_get_can_004_cancel_from_the_performer(tmp_path):
    exchanges = _cancelled(cancel(1))
    index = next(i for i, (side, data) in enumerate(exchanges) if data == cancel(1))
    exchanges[index] = ("s", cancel(1))
    analysis = analyze_exchanges(tmp_path, exchanges)
    finding = _one(analysis, "GET-CAN-004")
    assert finding.severity == "error" and finding.peer == SCP
    assert finding.peer_side == "acceptor" and finding.peer_role == "C-GET SCP" and finding.message_id == 1
    assert "only the invoker may cancel" in finding.detail
    assert findings(analysis, "GET-CAN-003") == []  # one fact, one rule
    assert _one(analysis, "GET-CAN-005").message_id == 1  # and the FE00 now has no cancel behind it


def test_get_can_005_cancel_status_without_cancel(tmp_path):
    middle = [("c", get_rq(1)), *sub_operations(1, 1), ("s", c_get_rsp(1, 0xFE00, (2, 1, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, retrieve_with(middle))
    finding = _one(analysis, "GET-CAN-005")
    assert finding.severity == "error" and finding.peer == SCP and finding.peer_role == "C-GET SCP"
    assert finding.frame == analysis.operation_records[0].final.frame
    assert "no C-CANCEL-RQ" in finding.detail


def test_get_can_006_cancel_status_without_counts(tmp_path):
    analysis = analyze_exchanges(tmp_path, _cancelled(final=c_get_rsp(1, 0xFE00, (2, 1, None, None))))
    finding = _one(analysis, "GET-CAN-006")
    assert finding.severity == "warning" and finding.peer_side == "acceptor" and finding.message_id == 1
    assert "(0000,1022), (0000,1023)" in finding.detail and "(0000,1021)" not in finding.detail


def test_get_can_007_stores_go_on_after_cancel(tmp_path):
    more = [("s", store_rq(101, "1.2.3.4.2")), ("c", c_store_rsp(101, 0, "1.2.3.4.2")),
            ("s", store_rq(102, "1.2.3.4.3")), ("c", c_store_rsp(102, 0, "1.2.3.4.3"))]
    exchanges = _cancelled(final=c_get_rsp(1, 0xFE00, (0, 3, 0, 0)), after_cancel=more)
    analysis = analyze_exchanges(tmp_path, exchanges)
    finding = _one(analysis, "GET-CAN-007")
    assert finding.severity == "warning" and finding.peer == SCP and finding.peer_role == "C-GET SCP"
    assert finding.message_id == 1
    assert finding.frame == analysis.operation_records[0].sub_operations[2].request.frame
    assert "Message ID 102" in finding.detail and "at most 1" in finding.detail


def test_get_can_007_one_store_in_flight_is_fine(tmp_path):
    more = [("s", store_rq(101, "1.2.3.4.2")), ("c", c_store_rsp(101, 0, "1.2.3.4.2"))]
    exchanges = _cancelled(final=c_get_rsp(1, 0xFE00, (1, 2, 0, 0)), after_cancel=more)
    analysis = analyze_exchanges(tmp_path, exchanges)
    assert findings(analysis, "GET-CAN-007") == []


def test_get_can_008_cancel_on_other_context(tmp_path):
    finding = _one(analyze_exchanges(tmp_path, _cancelled(cancel(1, context_id=3))), "GET-CAN-008")
    assert finding.severity == "warning" and finding.peer_side == "requestor" and finding.message_id == 1
    assert "PC 3" in finding.detail and "PC 1" in finding.detail


def test_get_can_009_repeated_cancel(tmp_path):
    analysis = analyze_exchanges(tmp_path, _cancelled(after_cancel=[("c", cancel(1))]))
    finding = _one(analysis, "GET-CAN-009")
    first = analysis.operation_records[0].cancels[0]
    assert finding.severity == "warning" and finding.peer == SCU and finding.message_id == 1
    assert finding.frame == analysis.operation_records[0].cancels[1].frame
    assert f"frame {first.frame}" in finding.detail


def _family(analysis) -> list:
    return [f for f in analysis.findings if f.rule.startswith("GET-CAN-")]


def test_samples_show_only_planted_faults():
    with open(os.path.join(SAMPLES, "manifest.json")) as handle:
        manifest = {c["file"]: c for c in json.load(handle)["captures"]}
    seen: dict[str, set[str]] = {}
    for finding in _family(trace_analyzer.analyze(sorted(glob.glob(os.path.join(SAMPLES, "*.pcap*"))))):
        name = os.path.basename(finding.capture)
        seen.setdefault(name, set()).add(finding.rule)
        # No documented deviation touches cancels: pynetdicom_cancel.pcap is clean.
        assert finding.rule in manifest[name].get("expected_rules", ()), finding
    for name, capture in manifest.items():
        wanted = {r for r in capture.get("expected_rules", ()) if r.startswith("GET-CAN-")}
        assert wanted <= seen.get(name, set()), name


def test_dcmtk_to_dcmtk_has_no_error():
    analysis = trace_analyzer.analyze(os.path.join(SAMPLES, "dcmtk_to_dcmtk_success.pcap"))
    assert [f for f in _family(analysis) if f.severity == "error"] == []
