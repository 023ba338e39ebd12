"""GET-CNT rules, each with a capture that triggers it and one that does not."""

from __future__ import annotations

import glob
import json
import os

import pytest
from builders import c_store_rq, c_store_rsp, command_set, message
from rules_helpers import analyze_exchanges, findings

import trace_analyzer
from rules.rsp_builders import SCP, conformant_body, rsp, session, store
from trace_analyzer.rules import CATALOG, IMPLEMENTED, NOT_CHECKABLE, load_families

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "sample_pcaps")
CNT_RULES = [f"GET-CNT-{n:03d}" for n in range(1, 10)]


def one(analysis, rule_id, severity):
    found = findings(analysis, rule_id)
    assert len(found) == 1, [(f.rule, f.frame, f.detail) for f in found]
    finding = found[0]
    assert finding.severity == severity and finding.message_id == 1
    assert finding.peer == SCP and finding.peer_side == "acceptor"
    return finding


def cnt_findings(analysis):
    return [(f.rule, f.detail) for f in analysis.findings if f.rule.startswith("GET-CNT")]


def pending(counters):
    return ("s", rsp(1, 0xFF00, counters))


def cancel():
    return ("c", message(1, command_set({0x0100: 0x0FFF, 0x0120: 1, 0x0800: 0x0101})))


def test_every_get_cnt_rule_is_implemented_or_declared():
    load_families()
    for rule_id in CNT_RULES:
        assert rule_id in CATALOG
        assert rule_id in IMPLEMENTED or rule_id in NOT_CHECKABLE, rule_id


@pytest.mark.parametrize("statuses", [(0x0000, 0x0000, 0x0000), (0x0000, 0xA700, 0xB000, 0xC000), ()])
def test_conformant_exchanges_have_no_get_cnt_finding(tmp_path, statuses):
    body = conformant_body(statuses=statuses) if statuses else [("s", rsp(1, 0x0000, (None, 0, 0, 0)))]
    assert cnt_findings(analyze_exchanges(tmp_path, session(body))) == []


def test_get_cnt_001_remaining_rises(tmp_path):
    body = store(100) + [pending((2, 1, 0, 0))] + store(101) + [pending((3, 2, 0, 0))]
    body += [("s", rsp(1, 0xA702, (None, 2, 3, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    finding = one(analysis, "GET-CNT-001", "error")
    assert "Remaining rose from 2" in finding.detail and "to 3" in finding.detail
    assert finding.peer_role == "C-GET SCP"
    # The same step moved the total: GET-CNT-003 leaves it to GET-CNT-001.
    assert findings(analysis, "GET-CNT-003") == []


def test_get_cnt_002_completed_falls(tmp_path):
    body = store(100) + [pending((2, 1, 0, 0))] + store(101) + [pending((1, 0, 2, 0))]
    body += store(102) + [("s", rsp(1, 0xB000, (None, 1, 2, 0), failed_uids=["1.2.3.4.1", "1.2.3.4.2"]))]
    finding = one(analyze_exchanges(tmp_path, session(body)), "GET-CNT-002", "error")
    assert "Completed 1 -> 0" in finding.detail


def test_get_cnt_003_total_jumps(tmp_path):
    body = store(100) + [pending((3, 1, 0, 0))] + store(101) + [pending((0, 2, 0, 0))]
    body += [("s", rsp(1, 0x0000, (None, 2, 0, 0)))]
    finding = one(analyze_exchanges(tmp_path, session(body)), "GET-CNT-003", "warning")
    assert "from 4" in finding.detail and "to 2" in finding.detail and "window of 1" in finding.detail


def test_get_cnt_004_completed_differs_from_successes(tmp_path):
    body = conformant_body(2)[:-1] + [("s", rsp(1, 0x0000, (None, 3, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    finding = one(analysis, "GET-CNT-004", "error")
    assert "Completed = 3 but 2 linked C-STORE-RSP(s)" in finding.detail
    assert finding.frame == analysis.operation_records[0].final.frame


def test_get_cnt_004_needs_the_request(tmp_path):
    # Mid-stream: sub-operations before the capture began are unknown, so no count is judged.
    exchanges = [("s", c_store_rq(100, "1.2.3.4.1", size=64)), ("c", c_store_rsp(100, 0, "1.2.3.4.1")),
                 ("s", rsp(1, 0xFF00, (0, 4, 0, 0))), ("s", rsp(1, 0x0000, (None, 4, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, exchanges, handshake=False)
    assert findings(analysis, "GET-CNT-004") == []


def test_get_cnt_004_final_before_last_store_response(tmp_path):
    # The last C-STORE-RSP comes after the final: Completed may count it (GET-SUB-015's concern).
    body = store(100) + [pending((1, 1, 0, 0)), ("s", c_store_rq(101, "1.2.3.4.101", size=64)),
                         ("s", rsp(1, 0x0000, (None, 2, 0, 0))), ("c", c_store_rsp(101, 0, "1.2.3.4.101"))]
    assert findings(analyze_exchanges(tmp_path, session(body)), "GET-CNT-004") == []


def test_get_cnt_005_warning_differs(tmp_path):
    body = conformant_body(statuses=(0x0000, 0xB000))[:-1]
    body.append(("s", rsp(1, 0xB000, (None, 1, 0, 2))))
    finding = one(analyze_exchanges(tmp_path, session(body)), "GET-CNT-005", "error")
    assert "Warning = 2 but 1 linked C-STORE-RSP(s)" in finding.detail


def test_get_cnt_006_failed_below_failures(tmp_path):
    body = conformant_body(statuses=(0x0000, 0xC000))[:-1]
    body.append(("s", rsp(1, 0x0000, (None, 1, 0, 0))))
    finding = one(analyze_exchanges(tmp_path, session(body)), "GET-CNT-006", "error")
    assert "Failed = 0 but 1 linked C-STORE-RSP(s) had a Failure status" in finding.detail


def test_get_cnt_006_failures_without_c_store_are_fine(tmp_path):
    # Failed may exceed what is on the wire: sub-ops that never started count as failed.
    body = conformant_body(statuses=(0x0000, 0xC000))[:-1]
    body.append(("s", rsp(1, 0xB000, (None, 1, 3, 0), failed_uids=["1.2.3.4.101", "1.2.3.9", "1.2.3.8"])))
    assert findings(analyze_exchanges(tmp_path, session(body)), "GET-CNT-006") == []


def test_get_cnt_007_more_stores_than_announced(tmp_path):
    body = store(100) + [pending((1, 1, 0, 0))] + store(101) + store(102)
    body += [pending((0, 3, 0, 0)), ("s", rsp(1, 0x0000, (None, 3, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    finding = one(analysis, "GET-CNT-007", "warning")
    assert "sub-operation 3 of C-GET 1" in finding.detail and "implied 2" in finding.detail
    assert finding.peer_role == "Storage SCU"
    assert finding.frame == analysis.operation_records[0].sub_operations[2].request.frame


def test_get_cnt_008_store_after_remaining_zero(tmp_path):
    body = store(100) + [pending((0, 1, 0, 0))] + store(101) + [("s", rsp(1, 0x0000, (None, 2, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, session(body))
    finding = one(analysis, "GET-CNT-008", "warning")
    assert "Remaining = 0" in finding.detail
    assert finding.frame == analysis.operation_records[0].sub_operations[1].request.frame


def test_get_cnt_009_cancel_total_differs(tmp_path):
    body = store(100) + [pending((3, 1, 0, 0)), cancel(), ("s", rsp(1, 0xFE00, (1, 1, 0, 0), failed_uids=[]))]
    finding = one(analyze_exchanges(tmp_path, session(body)), "GET-CNT-009", "warning")
    assert "1+1+0+0 = 2" in finding.detail and "implied 4" in finding.detail


def test_get_cnt_009_cancel_total_kept(tmp_path):
    body = store(100) + [pending((3, 1, 0, 0)), cancel(), ("s", rsp(1, 0xFE00, (3, 1, 0, 0), failed_uids=[]))]
    assert cnt_findings(analyze_exchanges(tmp_path, session(body))) == []


# ---------------------------------------------------------------------------
# Real captures: no GET-CNT finding on conformant peers; fault captures give their own.


def test_sample_captures_have_only_expected_get_cnt_findings():
    with open(os.path.join(SAMPLES, "manifest.json")) as handle:
        manifest = {entry["file"]: entry for entry in json.load(handle)["captures"]}
    paths = sorted(glob.glob(os.path.join(SAMPLES, "*.pcap*")))
    assert paths
    for path in paths:
        name = os.path.basename(path)
        found = [f for f in trace_analyzer.analyze(path).findings if f.rule.startswith("GET-CNT")]
        entry = manifest.get(name, {})
        if entry.get("kind") == "fault":
            wanted = {r for r in entry["expected_rules"] if r.startswith("GET-CNT")}
            assert {f.rule for f in found} == wanted, (name, [(f.rule, f.detail) for f in found])
            assert all(f.peer_side == "acceptor" for f in found)
        else:
            # Neither pynetdicom nor DCMTK deviates here (catalog 6); gap_lost_segment and
            # truncated lose sub-operations to the capture, so their counts are not judged.
            assert found == [], (name, [(f.rule, f.detail) for f in found])
