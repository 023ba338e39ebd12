"""GET-ID rules (the C-GET-RQ Identifier), each with a capture that triggers it and one that does not."""

from __future__ import annotations

import pytest
from builders import IMPLICIT, PATIENT_ROOT_GET
from rules_helpers import analyze_exchanges, findings

from rules.rq_builders import (
    EXPLICIT,
    STUDY_ROOT_GET,
    dataset_bytes,
    get_exchange,
    get_rq_command,
    get_rq_elements,
    identifier_exchange,
    sample_findings,
)

CIR_GET = "1.2.840.10008.5.1.4.1.2.4.3"
WBD_GET = "1.2.840.10008.5.1.4.1.2.5.3"
RQ_FRAME = 6
SCU = "GETSCU @ 127.0.0.1:40001"
PATIENT_STUDY = {"QueryRetrieveLevel": "STUDY", "PatientID": "PAT1", "StudyInstanceUID": "1.2.3"}


def _one(analysis, rule_id: str):
    found = findings(analysis, rule_id)
    assert len(found) == 1, found
    return found[0]


def _run(tmp_path, **options):
    return analyze_exchanges(tmp_path, identifier_exchange(**options))


def _family(analysis):
    return [f for f in analysis.findings if f.rule.startswith("GET-ID-")]


def _assert_blames_scu(finding, severity="error"):
    assert finding.severity == severity and finding.peer == SCU and finding.peer_side == "requestor"
    assert finding.peer_role == "C-GET SCU" and finding.message_id == 1 and finding.frame == RQ_FRAME


def test_conformant_identifiers_raise_nothing(tmp_path):
    cases = [
        {**PATIENT_STUDY},
        {"QueryRetrieveLevel": "PATIENT", "PatientID": "AB-12"},  # '-' is data in a Patient ID
        {"QueryRetrieveLevel": "STUDY", "PatientID": "P", "StudyInstanceUID": ["1.2.3", "1.2.4"]},
        {"QueryRetrieveLevel": "IMAGE", "PatientID": "P", "StudyInstanceUID": "1.2",
         "SeriesInstanceUID": "1.2.3", "SOPInstanceUID": ["1.2.3.4", "1.2.3.5"],
         "SpecificCharacterSet": "ISO_IR 100"},
    ]
    for keys in cases:
        assert _family(_run(tmp_path, **keys)) == [], keys
    study_root = _run(tmp_path, sop_class=STUDY_ROOT_GET, QueryRetrieveLevel="SERIES", StudyInstanceUID="1.2",
                      SeriesInstanceUID="1.2.3")
    assert _family(study_root) == []


def test_get_id_001_level_missing(tmp_path):
    finding = _one(_run(tmp_path, PatientID="PAT1", StudyInstanceUID="1.2.3"), "GET-ID-001")
    _assert_blames_scu(finding)
    assert "(0008,0052)" in finding.detail and "Patient Root" in finding.detail


def test_get_id_001_conformant(tmp_path):
    assert findings(_run(tmp_path, **PATIENT_STUDY), "GET-ID-001") == []


def test_get_id_002_level_not_in_model(tmp_path):
    analysis = _run(tmp_path, sop_class=STUDY_ROOT_GET, QueryRetrieveLevel="PATIENT", PatientID="PAT1")
    finding = _one(analysis, "GET-ID-002")
    _assert_blames_scu(finding)
    assert "'PATIENT'" in finding.detail and "Study Root" in finding.detail
    assert "STUDY, SERIES, IMAGE" in finding.detail


def test_get_id_002_conformant(tmp_path):
    analysis = _run(tmp_path, sop_class=STUDY_ROOT_GET, QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2")
    assert findings(analysis, "GET-ID-002") == []


def test_get_id_003_level_key_missing_or_empty(tmp_path):
    empty = _run(tmp_path, QueryRetrieveLevel="SERIES", PatientID="P", StudyInstanceUID="1.2",
                 SeriesInstanceUID="")
    finding = _one(empty, "GET-ID-003")
    _assert_blames_scu(finding)
    assert "SeriesInstanceUID (0020,000E) empty" in finding.detail
    absent = _one(_run(tmp_path, QueryRetrieveLevel="PATIENT"), "GET-ID-003")
    assert "PatientID (0010,0020) absent" in absent.detail


def test_get_id_003_conformant(tmp_path):
    assert findings(_run(tmp_path, QueryRetrieveLevel="PATIENT", PatientID="P"), "GET-ID-003") == []


def test_get_id_004_higher_keys_missing(tmp_path):
    finding = _one(_run(tmp_path, QueryRetrieveLevel="SERIES", SeriesInstanceUID="1.2.3"), "GET-ID-004")
    _assert_blames_scu(finding)
    assert "PatientID (0010,0020), StudyInstanceUID (0020,000D)" in finding.detail
    assert "relational retrieve was not accepted" in finding.detail


def test_get_id_004_conformant_when_relational_accepted(tmp_path):
    relational = [(PATIENT_ROOT_GET, b"\x01\x00")]
    analysis = _run(tmp_path, extended_ac=relational, QueryRetrieveLevel="SERIES", SeriesInstanceUID="1.2.3")
    assert findings(analysis, "GET-ID-004") == []
    # Offered but refused (0) is not accepted.
    refused = _run(tmp_path, extended_rq=relational, extended_ac=[(PATIENT_ROOT_GET, b"\x00\x00")],
                   QueryRetrieveLevel="SERIES", SeriesInstanceUID="1.2.3")
    assert len(findings(refused, "GET-ID-004")) == 1


def test_get_id_005_several_values_where_one_is_required(tmp_path):
    analysis = _run(tmp_path, QueryRetrieveLevel="SERIES", PatientID=["A", "B"],
                    StudyInstanceUID=["1.2", "1.3"], SeriesInstanceUID=["1.2.3", "1.2.4"])
    finding = _one(analysis, "GET-ID-005")
    _assert_blames_scu(finding)
    assert "PatientID (0010,0020) has 2" in finding.detail
    assert "StudyInstanceUID (0020,000D) has 2" in finding.detail
    assert "SeriesInstanceUID" not in finding.detail  # a UID list is allowed at the retrieve level


def test_get_id_005_frame_level_instance(tmp_path):
    analysis = _run(tmp_path, sop_class=CIR_GET, QueryRetrieveLevel="FRAME", SOPInstanceUID=["1.2", "1.3"],
                    SimpleFrameList=[1, 2])
    assert "SOPInstanceUID (0008,0018) has 2" in _one(analysis, "GET-ID-005").detail


def test_get_id_005_conformant(tmp_path):
    analysis = _run(tmp_path, QueryRetrieveLevel="STUDY", PatientID="A", StudyInstanceUID=["1.2", "1.3"])
    assert findings(analysis, "GET-ID-005") == []


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the bad UID is the point
def test_get_id_006_wildcards(tmp_path):
    analysis = _run(tmp_path, QueryRetrieveLevel="STUDY", PatientID="PAT*", StudyInstanceUID="1.2-1.9")
    finding = _one(analysis, "GET-ID-006")
    _assert_blames_scu(finding)
    assert "PatientID (0010,0020) 'PAT*'" in finding.detail and "'1.2-1.9'" in finding.detail


def test_get_id_006_conformant(tmp_path):
    assert findings(_run(tmp_path, QueryRetrieveLevel="PATIENT", PatientID="AB-12"), "GET-ID-006") == []


def test_get_id_007_extra_attributes(tmp_path):
    finding = _one(_run(tmp_path, **PATIENT_STUDY, PatientName="Doe^J", Modality="CT"), "GET-ID-007")
    _assert_blames_scu(finding)
    assert "PatientName (0010,0010)" in finding.detail and "Modality (0008,0060)" in finding.detail
    study_root = _run(tmp_path, sop_class=STUDY_ROOT_GET, **PATIENT_STUDY)
    assert "PatientID (0010,0020)" in _one(study_root, "GET-ID-007").detail


def test_get_id_007_conformant(tmp_path):
    analysis = _run(tmp_path, **PATIENT_STUDY, SpecificCharacterSet="ISO_IR 100")
    assert findings(analysis, "GET-ID-007") == []


def test_get_id_008_view_without_negotiation(tmp_path):
    finding = _one(_run(tmp_path, **PATIENT_STUDY, QueryRetrieveView="ENHANCED"), "GET-ID-008")
    _assert_blames_scu(finding)
    assert "Enhanced Multi-Frame Image Conversion was not accepted" in finding.detail


def test_get_id_008_bad_value(tmp_path):
    accepted = [(PATIENT_ROOT_GET, b"\x00\x01")]
    analysis = _run(tmp_path, extended_ac=accepted, **PATIENT_STUDY, QueryRetrieveView="FANCY")
    finding = _one(analysis, "GET-ID-008")
    assert "'FANCY' is not CLASSIC or ENHANCED" in finding.detail and "not accepted" not in finding.detail


def test_get_id_008_conformant(tmp_path):
    accepted = [(PATIENT_ROOT_GET, b"\x00\x01")]
    analysis = _run(tmp_path, extended_ac=accepted, **PATIENT_STUDY, QueryRetrieveView="CLASSIC")
    assert findings(analysis, "GET-ID-008") == []


def test_get_id_009_character_set_in_instance_root(tmp_path):
    analysis = _run(tmp_path, sop_class=CIR_GET, QueryRetrieveLevel="IMAGE", SOPInstanceUID="1.2.3",
                    SpecificCharacterSet="ISO_IR 100")
    finding = _one(analysis, "GET-ID-009")
    _assert_blames_scu(finding)
    assert "Composite Instance Root" in finding.detail and "(0008,0005)" in finding.detail
    assert findings(analysis, "GET-ID-007") == []  # one fact, one rule


def test_get_id_009_non_ascii_patient_id_without_character_set(tmp_path):
    finding = _one(_run(tmp_path, QueryRetrieveLevel="PATIENT", PatientID="M\u00fcller"), "GET-ID-009")
    assert "outside the default repertoire" in finding.detail and finding.severity == "warning"


def test_get_id_009_conformant(tmp_path):
    with_charset = _run(tmp_path, QueryRetrieveLevel="PATIENT", PatientID="M\u00fcller",
                        SpecificCharacterSet="ISO_IR 100")
    assert findings(with_charset, "GET-ID-009") == []
    instance_root = _run(tmp_path, sop_class=CIR_GET, QueryRetrieveLevel="IMAGE", SOPInstanceUID="1.2.3")
    assert findings(instance_root, "GET-ID-009") == []


def test_get_id_010_frame_keys(tmp_path):
    none = _run(tmp_path, sop_class=CIR_GET, QueryRetrieveLevel="FRAME", SOPInstanceUID="1.2.3")
    finding = _one(none, "GET-ID-010")
    _assert_blames_scu(finding)
    assert "0 frame-range keys (none)" in finding.detail
    two = _run(tmp_path, sop_class=CIR_GET, QueryRetrieveLevel="FRAME", SOPInstanceUID="1.2.3",
               SimpleFrameList=[1], TimeRange=[0.0, 1.0])
    assert "2 frame-range keys (SimpleFrameList, TimeRange)" in _one(two, "GET-ID-010").detail


def test_get_id_010_without_bulk_data_level(tmp_path):
    analysis = _run(tmp_path, sop_class=WBD_GET, QueryRetrieveLevel="SERIES", SeriesInstanceUID="1.2.3")
    finding = _one(analysis, "GET-ID-010")
    assert "Without Bulk Data" in finding.detail and "'SERIES'" in finding.detail
    assert findings(analysis, "GET-ID-002") == []  # one fact, one rule


def test_get_id_010_conformant(tmp_path):
    frames = _run(tmp_path, sop_class=CIR_GET, QueryRetrieveLevel="FRAME", SOPInstanceUID="1.2.3",
                  CalculatedFrameList=[1, 9, 2])
    assert _family(frames) == []
    image = _run(tmp_path, sop_class=WBD_GET, QueryRetrieveLevel="IMAGE", SOPInstanceUID="1.2.3")
    assert _family(image) == []


def test_get_id_011_lower_level_keys(tmp_path):
    finding = _one(_run(tmp_path, **PATIENT_STUDY, SOPInstanceUID="1.2.3.4"), "GET-ID-011")
    _assert_blames_scu(finding, "warning")
    assert "STUDY-level" in finding.detail and "SOPInstanceUID (0008,0018)" in finding.detail
    frames = _run(tmp_path, sop_class=CIR_GET, QueryRetrieveLevel="IMAGE", SOPInstanceUID="1.2",
                  SimpleFrameList=[1])
    assert "SimpleFrameList" in _one(frames, "GET-ID-011").detail


def test_get_id_011_conformant(tmp_path):
    assert findings(_run(tmp_path, **PATIENT_STUDY), "GET-ID-011") == []


def _mismatched(tmp_path, context_syntax: str, explicit_data: bool):
    data = dataset_bytes(explicit=explicit_data, **PATIENT_STUDY)
    command = get_rq_command(get_rq_elements())
    return analyze_exchanges(tmp_path, get_exchange(command, data, syntax=context_syntax))


def test_get_id_012_explicit_identifier_on_implicit_context(tmp_path):
    finding = _one(_mismatched(tmp_path, IMPLICIT, True), "GET-ID-012")
    _assert_blames_scu(finding)
    assert "VR 'CS'" in finding.detail and IMPLICIT in finding.detail


def test_get_id_012_implicit_identifier_on_explicit_context(tmp_path):
    finding = _one(_mismatched(tmp_path, EXPLICIT, False), "GET-ID-012")
    assert "has no VR" in finding.detail and "Explicit VR Little Endian" in finding.detail


def test_get_id_012_conformant(tmp_path):
    assert findings(_mismatched(tmp_path, EXPLICIT, True), "GET-ID-012") == []
    assert findings(_mismatched(tmp_path, IMPLICIT, False), "GET-ID-012") == []


def test_real_captures_show_only_the_deliberate_bad_identifier():
    # Catalog section 6 documents no identifier deviation. One real capture asks for a bad
    # identifier on purpose: pynetdicom_failure_error_comment.pcap sends a Study Root GET at
    # PATIENT level with Patient ID (manifest: "invalid for Study Root") to draw the A900.
    expected = {"pynetdicom_failure_error_comment.pcap": ["GET-ID-002", "GET-ID-007"]}
    for name, found in sample_findings().items():
        ours = sorted(f.rule for f in found if f.rule.startswith("GET-ID-"))
        assert ours == expected.get(name, []), name
    dcmtk = sample_findings()["dcmtk_to_dcmtk_success.pcap"]
    ours = [f for f in dcmtk if f.rule.startswith(("GET-ID-", "GET-RQ-", "CMD-"))]
    assert [f for f in ours if f.severity == "error"] == []
