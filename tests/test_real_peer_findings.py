"""What the rules say about real pynetdicom and DCMTK traffic: only what the catalog explains.

The conformant sample recordings (kind "real" in the manifest, and the
crafted variants of them) may only give findings that catalog section 6
documents as known deviations of these implementations, or that the
scenario provokes on purpose. DCMTK against DCMTK gives no error at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trace_analyzer

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"
MANIFEST = {entry["file"]: entry for entry in json.loads((SAMPLES / "manifest.json").read_text())["captures"]}

#: rule -> (side at fault, why it is expected)
EXPLAINED = {
    "GET-RSP-008": ("acceptor", "catalog 6.1: pynetdicom's SCP keeps Remaining = 0 in the final response"),
    "GET-SUB-003": ("acceptor", "catalog 6.2: pynetdicom's SCP sends sub-operations at Priority 2 (LOW)"),
    "GET-RSP-012": ("acceptor", "catalog 6.3/6.15: pynetdicom folds unperformed matches into Failed and "
                                "sends an empty Failed SOP Instance UID List"),
    # The C-MOVE SCP is the requestor of the association to the Move Destination.
    "MOVE-SUB-002": ("requestor", "pynetdicom's Move SCP writes its own AE title as Move Originator AE Title "
                                  "(its destination's handler logged 'QRSCP', manifest)"),
}
#: Findings a scenario provokes on purpose (its manifest description says so).
PROVOKED = {
    "pynetdicom_failure_error_comment.pcap": {"GET-ID-002", "GET-ID-007"},  # a PATIENT-level Study Root GET
    "dcmtk_move_unknown_destination.pcap": {"MOVE-RSP-004"},  # a Move Destination dcmqrscp does not know
    "pynetdicom_move_destination_down.pcap": {"MOVE-RSP-004"},  # nothing listens at the destination
}
#: Which implementation each explained deviation belongs to.
IMPLEMENTATION = {"GET-RSP-008": "PYNETDICOM", "GET-SUB-003": "PYNETDICOM", "GET-RSP-012": "PYNETDICOM",
                  "MOVE-SUB-002": "PYNETDICOM"}

CONFORMANT = sorted(name for name, entry in MANIFEST.items() if entry["kind"] in ("real", "crafted"))


@pytest.mark.parametrize("name", CONFORMANT)
def test_findings_on_real_peers_are_explained(name):
    analysis = trace_analyzer.analyze(str(SAMPLES / name))
    acceptor_versions = {row["association"]: row["acceptor_implementation_version"]
                         for row in analysis.rows("associations")}
    for finding in analysis.findings:
        if finding.rule in PROVOKED.get(name, set()):
            continue
        assert finding.rule in EXPLAINED, f"{name}: unexplained {finding.rule}: {finding.detail}"
        side, _ = EXPLAINED[finding.rule]
        assert finding.peer_side == side, finding
        version = acceptor_versions.get(finding.association)
        if version is not None:  # a mid-stream capture has no A-ASSOCIATE-AC to name the acceptor
            assert IMPLEMENTATION[finding.rule] in version, (finding, version)


def test_dcmtk_to_dcmtk_has_no_error_and_conformant_verdicts():
    analysis = trace_analyzer.analyze(str(SAMPLES / "dcmtk_to_dcmtk_success.pcap"))
    assert [f for f in analysis.findings if f.severity == "error"] == []
    assert {row["verdict"] for row in analysis.rows("peers")} == {"conformant"}


def test_pynetdicom_scp_is_judged_non_conformant_for_its_documented_deviation():
    analysis = trace_analyzer.analyze(str(SAMPLES / "pynetdicom_to_pynetdicom_success.pcap"))
    verdicts = {row["roles"]: (row["verdict"], row["rules_broken"]) for row in analysis.rows("peers")}
    scp = next(v for roles, v in verdicts.items() if "C-GET SCP" in roles)
    scu = next(v for roles, v in verdicts.items() if "C-GET SCU" in roles)
    assert scp == ("non-conformant", "GET-RSP-008")
    assert scu == ("conformant", None)
