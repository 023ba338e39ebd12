"""GET-ROLE rules: each with an association set-up that triggers it and one that does not."""

from __future__ import annotations

import glob
import json
import os

import pytest
from builders import CT, PATIENT_ROOT_GET, retrieve
from rules_helpers import analyze_exchanges, findings

import trace_analyzer
from rules.sub_builders import MR, open_association
from trace_analyzer.rules import IMPLEMENTED, NOT_CHECKABLE, load_families
from trace_analyzer.rules.get_role import is_storage_class

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "sample_pcaps")
SCP = "QRSCP @ 127.0.0.2:11112"
SCU = "GETSCU @ 127.0.0.1:40001"
FAMILY = [f"GET-ROLE-{n:03d}" for n in range(1, 5)]


def _one(analysis, rule_id: str):
    found = findings(analysis, rule_id)
    assert len(found) == 1, found
    return found[0]


#: Frames of the A-ASSOCIATE-RQ and -AC: the first two packets after the TCP handshake.
RQ_FRAME, AC_FRAME = 4, 5


def test_every_rule_is_implemented_or_declared():
    load_families()
    for rule_id in FAMILY:
        assert rule_id in IMPLEMENTED or rule_id in NOT_CHECKABLE, rule_id


@pytest.mark.parametrize("rule_id", FAMILY)
def test_conformant_set_up_triggers_nothing(tmp_path, rule_id):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=1)), rule_id) == []


def test_storage_classes():
    assert is_storage_class(CT) and is_storage_class("1.2.840.10008.5.1.4.38.1")
    assert is_storage_class("1.3.6.1.4.1.9999.1")  # a private class may be storage
    assert not is_storage_class(PATIENT_ROOT_GET) and not is_storage_class("1.2.840.10008.1.1")
    assert not is_storage_class("1.2.840.10008.1.20.1")  # Storage Commitment


def test_get_role_001_no_role_items(tmp_path):
    # Horos-style SCU (catalog 6.6): storage contexts but no role selection.
    analysis = analyze_exchanges(tmp_path, open_association(rq_roles=[], ac_roles=[]))
    finding = _one(analysis, "GET-ROLE-001")
    assert finding.severity == "warning" and finding.peer == SCU and finding.peer_side == "requestor"
    assert finding.frame == AC_FRAME
    assert "no role selection item" in finding.detail and "Patient Root" in finding.detail


def test_get_role_001_scp_role_not_accepted(tmp_path):
    analysis = analyze_exchanges(tmp_path, open_association(rq_roles=[(CT, 1, 1)], ac_roles=[(CT, 1, 0)]))
    finding = _one(analysis, "GET-ROLE-001")
    assert "SCP-role = 1 in both" in finding.detail
    assert finding.peer_side == "acceptor"  # it refused the role the requestor asked for


def test_get_role_002_role_item_for_unoffered_class(tmp_path):
    roles = [(CT, 0, 1), (MR, 0, 1)]
    analysis = analyze_exchanges(tmp_path, open_association(rq_roles=roles, ac_roles=[(CT, 0, 1)]))
    finding = _one(analysis, "GET-ROLE-002")
    assert finding.severity == "warning" and finding.peer == SCU
    assert finding.peer_role == "association requestor"
    assert finding.frame == RQ_FRAME
    assert MR in finding.detail and CT not in finding.detail


def test_get_role_003_get_without_storage_context(tmp_path):
    analysis = analyze_exchanges(tmp_path, open_association(contexts=[(1, PATIENT_ROOT_GET, 0)], rq_roles=[]))
    finding = _one(analysis, "GET-ROLE-003")
    assert finding.severity == "warning" and finding.peer_side == "requestor"
    assert finding.frame == RQ_FRAME and "not a single storage" in finding.detail
    assert _one(analysis, "GET-ROLE-001").detail.endswith("(PS3.4 C.4.3.2.1, C.5.3)")


def test_get_role_004_both_roles_rejected(tmp_path):
    analysis = analyze_exchanges(tmp_path, open_association(rq_roles=[(CT, 1, 1)], ac_roles=[(CT, 0, 0)]))
    finding = _one(analysis, "GET-ROLE-004")
    assert finding.severity == "warning" and finding.peer == SCP
    assert finding.peer_side == "acceptor" and finding.peer_role == "association acceptor"
    assert finding.frame == AC_FRAME and CT in finding.detail and "(0, 0)" in finding.detail


def test_get_role_004_plain_rejection_of_scp_role(tmp_path):
    analysis = analyze_exchanges(tmp_path, open_association(rq_roles=[(CT, 0, 1)], ac_roles=[(CT, 0, 0)]))
    assert findings(analysis, "GET-ROLE-004") == []


def _family(analysis) -> list:
    return [f for f in analysis.findings if f.rule.startswith("GET-ROLE-")]


def test_samples_show_only_planted_faults():
    with open(os.path.join(SAMPLES, "manifest.json")) as handle:
        manifest = {c["file"]: c for c in json.load(handle)["captures"]}
    planted = {"fault_store_without_role.pcap", "fault_role_refused.pcap", "fault_role_refused_getscu.pcap"}
    seen = set()
    for finding in _family(trace_analyzer.analyze(sorted(glob.glob(os.path.join(SAMPLES, "*.pcap*"))))):
        # Only the planted faults: their AC answers the role items with (1,0) or (0,0), so no
        # storage context lets the requestor act as Storage SCP (the cause of their GET-SUB-001).
        name = os.path.basename(finding.capture)
        assert name in planted, finding
        assert finding.rule == "GET-ROLE-001" and "GET-SUB-001" in manifest[name]["expected_rules"]
        assert finding.peer_side == "acceptor"  # the requestor asked for the SCP role; it was refused
        seen.add(name)
    assert seen == planted


def test_dcmtk_to_dcmtk_has_no_error():
    analysis = trace_analyzer.analyze(os.path.join(SAMPLES, "dcmtk_to_dcmtk_success.pcap"))
    assert [f for f in _family(analysis) if f.severity == "error"] == []
