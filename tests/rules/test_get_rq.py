"""GET-RQ rules (the C-GET-RQ command, context, Message ID, window and identifier framing)."""

from __future__ import annotations

from builders import (
    CT,
    IMPLICIT,
    PATIENT_ROOT_GET,
    c_get_rq,
    c_get_rsp,
    message,
    release_rp,
    release_rq,
    retrieve,
)
from rules_helpers import analyze_exchanges, findings

from rules.rq_builders import (
    STUDY_ROOT_GET,
    associate,
    data_pdu,
    dataset_bytes,
    element,
    get_exchange,
    get_rq_command,
    get_rq_elements,
    raw_command,
    sample_findings,
    sub_operation,
)

RQ_FRAME = 6
SCU = "GETSCU @ 127.0.0.1:40001"
SCP = "QRSCP @ 127.0.0.2:11112"
STUDY = dataset_bytes(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3")


def _one(analysis, rule_id: str):
    found = findings(analysis, rule_id)
    assert len(found) == 1, found
    return found[0]


def _with(**changes) -> bytes:
    elements = get_rq_elements()
    for tag, value in changes.items():
        tag = int(tag[1:], 16)
        if value is None:
            elements.pop(tag)
        else:
            elements[tag] = value
    return get_rq_command(elements)


def _opening(window=None, roles=((CT, 0, 1),), get_roles=()):
    contexts = [(1, PATIENT_ROOT_GET, 0, IMPLICIT), (3, CT, 0, IMPLICIT)]
    rq_window, ac_window = window if window is not None else (None, None)
    all_roles = tuple(roles) + tuple(get_roles)
    return [("c", associate(True, contexts, all_roles, window=rq_window)),
            ("s", associate(False, contexts, all_roles, window=ac_window))]


def _closing():
    return [("c", release_rq()), ("s", release_rp())]


# -- GET-RQ-001 .. 004: command fields ----------------------------------------------------------


def test_get_rq_001_missing_and_empty_fields(tmp_path):
    command = _with(x0700=None, x0002=element(0x0002, b""))
    finding = _one(analyze_exchanges(tmp_path, get_exchange(command, STUDY)), "GET-RQ-001")
    assert finding.severity == "error" and finding.peer == SCU and finding.peer_role == "C-GET SCU"
    assert finding.frame == RQ_FRAME and finding.message_id == 1
    assert "lacks Priority (0000,0700)" in finding.detail and "empty AffectedSOPClassUID" in finding.detail


def test_get_rq_001_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=1)), "GET-RQ-001") == []


def test_get_rq_002_priority_out_of_range(tmp_path):
    command = _with(x0700=element(0x0700, 5))
    finding = _one(analyze_exchanges(tmp_path, get_exchange(command, STUDY)), "GET-RQ-002")
    assert finding.severity == "error" and finding.peer_side == "requestor" and "0x0005" in finding.detail


def test_get_rq_002_conformant(tmp_path):
    for priority in (0, 1, 2):
        exchanges = get_exchange(_with(x0700=element(0x0700, priority)), STUDY)
        assert findings(analyze_exchanges(tmp_path, exchanges), "GET-RQ-002") == []


def test_get_rq_003_no_data_set_type(tmp_path):
    command = _with(x0800=element(0x0800, 0x0101))
    finding = _one(analyze_exchanges(tmp_path, get_exchange(command, None)), "GET-RQ-003")
    assert finding.severity == "error" and finding.frame == RQ_FRAME and "0x0101" in finding.detail
    assert finding.peer_role == "C-GET SCU"


def test_get_rq_003_announced_but_missing(tmp_path):
    echo = raw_command(element(0x0100, 0x0030), element(0x0110, 2), element(0x0800, 0x0101))
    exchanges = get_exchange(_with(), None)
    exchanges.insert(3, ("c", message(1, echo)))  # the next command begins where the identifier should
    finding = _one(analyze_exchanges(tmp_path, exchanges), "GET-RQ-003")
    assert "no Identifier bytes follow" in finding.detail and finding.message_id == 1


def test_get_rq_003_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, get_exchange(_with(), STUDY)), "GET-RQ-003") == []


def test_get_rq_003_not_blamed_for_a_cut_capture(tmp_path):
    exchanges = get_exchange(_with(), None)[:3]  # the capture stops after the command
    assert findings(analyze_exchanges(tmp_path, exchanges), "GET-RQ-003") == []


def test_get_rq_004_foreign_fields(tmp_path):
    command = _with(x0900=element(0x0900, 0), x0600=element(0x0600, "MOVESCP"))
    finding = _one(analyze_exchanges(tmp_path, get_exchange(command, STUDY)), "GET-RQ-004")
    assert finding.severity == "warning" and finding.peer == SCU
    assert "MoveDestination (0000,0600)" in finding.detail and "Status (0000,0900)" in finding.detail


def test_get_rq_004_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=1)), "GET-RQ-004") == []


# -- GET-RQ-005 .. 007: SOP class, context, role ------------------------------------------------


def test_get_rq_005_sop_class_differs_from_context(tmp_path):
    command = get_rq_command(get_rq_elements(sop_class=STUDY_ROOT_GET))
    finding = _one(analyze_exchanges(tmp_path, get_exchange(command, STUDY)), "GET-RQ-005")
    assert finding.severity == "error" and finding.frame == RQ_FRAME
    assert STUDY_ROOT_GET in finding.detail and PATIENT_ROOT_GET in finding.detail
    assert "context 1" in finding.detail


def test_get_rq_005_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=1)), "GET-RQ-005") == []


def test_get_rq_006_unknown_get_sop_class(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.99"
    command = get_rq_command(get_rq_elements(sop_class=uid))
    analysis = analyze_exchanges(tmp_path, get_exchange(command, STUDY, sop_class=uid))
    finding = _one(analysis, "GET-RQ-006")
    assert finding.severity == "warning" and uid in finding.detail and finding.peer_role == "C-GET SCU"
    assert findings(analysis, "GET-RQ-005") == []


def test_get_rq_006_conformant(tmp_path):
    study_root = get_rq_command(get_rq_elements(sop_class=STUDY_ROOT_GET))
    analysis = analyze_exchanges(tmp_path, get_exchange(study_root, STUDY, sop_class=STUDY_ROOT_GET))
    assert findings(analysis, "GET-RQ-006") == []


def test_get_rq_007_acceptor_invokes_without_role(tmp_path):
    exchanges = _opening() + [("s", c_get_rq(4)), ("c", c_get_rsp(4, 0x0000, (None, 0, 0, 0)))] + _closing()
    finding = _one(analyze_exchanges(tmp_path, exchanges), "GET-RQ-007")
    assert finding.severity == "error" and finding.peer == SCP and finding.peer_side == "acceptor"
    assert finding.peer_role == "C-GET SCU" and finding.message_id == 4
    assert "sent by the acceptor" in finding.detail and "no role selection" in finding.detail


def test_get_rq_007_requestor_gave_up_scu_role(tmp_path):
    exchanges = _opening(get_roles=[(PATIENT_ROOT_GET, 0, 1)]) + [
        ("c", c_get_rq(1)), ("s", c_get_rsp(1, 0x0000, (None, 0, 0, 0)))] + _closing()
    finding = _one(analyze_exchanges(tmp_path, exchanges), "GET-RQ-007")
    assert finding.peer == SCU and "(0, 1)" in finding.detail


def test_get_rq_007_conformant(tmp_path):
    exchanges = _opening(get_roles=[(PATIENT_ROOT_GET, 1, 0)]) + [
        ("c", c_get_rq(1)), ("s", c_get_rsp(1, 0x0000, (None, 0, 0, 0)))] + _closing()
    assert findings(analyze_exchanges(tmp_path, exchanges), "GET-RQ-007") == []
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=1)), "GET-RQ-007") == []


# -- GET-RQ-008 .. 010: Message IDs and window ----------------------------------------------------


def _two_gets(first: int, second: int, window=None, overlap=True):
    done = lambda mid: ("s", c_get_rsp(mid, 0x0000, (None, 0, 0, 0)))  # noqa: E731
    middle = [("c", c_get_rq(first)), ("c", c_get_rq(second)), done(first), done(second)] if overlap else \
        [("c", c_get_rq(first)), done(first), ("c", c_get_rq(second)), done(second)]
    return _opening(window) + middle + _closing()


def test_get_rq_008_message_id_outstanding(tmp_path):
    analysis = analyze_exchanges(tmp_path, _two_gets(5, 5, window=((0, 0), (0, 0))))
    finding = _one(analysis, "GET-RQ-008")
    assert finding.severity == "error" and finding.peer == SCU and finding.message_id == 5
    assert "outstanding C-GET-RQ" in finding.detail and finding.frame == RQ_FRAME + 1
    assert findings(analysis, "GET-RQ-009") == [] and findings(analysis, "GET-RQ-010") == []


def test_get_rq_008_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, _two_gets(5, 6, window=((0, 0), (0, 0)))), "GET-RQ-008") == []


def test_get_rq_009_message_id_reused(tmp_path):
    analysis = analyze_exchanges(tmp_path, _two_gets(3, 3, overlap=False))
    finding = _one(analysis, "GET-RQ-009")
    assert finding.severity == "warning" and finding.peer_role == "C-GET SCU" and finding.message_id == 3
    assert "already used by an earlier request" in finding.detail and finding.frame == RQ_FRAME + 2
    assert findings(analysis, "GET-RQ-008") == []


def test_get_rq_009_conformant(tmp_path):
    # The SCP's sub-operation IDs do not count: each side numbers its own requests.
    exchanges = _opening() + [("c", c_get_rq(1))] + sub_operation(2, "1.2.3.4.1") + [
        ("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0))), ("c", c_get_rq(2)),
        ("s", c_get_rsp(2, 0x0000, (None, 0, 0, 0)))] + _closing()
    assert findings(analyze_exchanges(tmp_path, exchanges), "GET-RQ-009") == []


def test_get_rq_010_default_window(tmp_path):
    finding = _one(analyze_exchanges(tmp_path, _two_gets(1, 2)), "GET-RQ-010")
    assert finding.severity == "error" and finding.peer == SCU and finding.message_id == 2
    assert "2 operations outstanding" in finding.detail and "default of 1" in finding.detail


def test_get_rq_010_negotiated_window(tmp_path):
    assert findings(analyze_exchanges(tmp_path, _two_gets(1, 2, window=((2, 1), (2, 1)))), "GET-RQ-010") == []
    exchanges = _opening(((3, 1), (2, 1))) + [("c", c_get_rq(i)) for i in (1, 2, 3)] + [
        ("s", c_get_rsp(i, 0x0000, (None, 0, 0, 0))) for i in (1, 2, 3)] + _closing()
    finding = _one(analyze_exchanges(tmp_path, exchanges), "GET-RQ-010")
    assert finding.message_id == 3 and "negotiated 2" in finding.detail


def test_get_rq_010_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, _two_gets(1, 2, overlap=False)), "GET-RQ-010") == []


# -- GET-RQ-011: identifier cut short --------------------------------------------------------------


def _cut_short(early_status: int | None):
    command = _with()
    identifier = dataset_bytes(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.840.99.1")
    middle = [("c", message(1, command))]
    if early_status is not None:
        middle.append(("s", c_get_rsp(1, early_status, (None, 0, 0, 0))))
    middle.append(("c", data_pdu(1, identifier[:-6])))  # last-fragment bit set, 6 bytes short
    if early_status is None:
        middle.append(("s", c_get_rsp(1, 0xA900, (None, 0, 0, 0))))
    return _opening() + middle + _closing()


def test_get_rq_011_identifier_cut_short(tmp_path):
    finding = _one(analyze_exchanges(tmp_path, _cut_short(None)), "GET-RQ-011")
    assert finding.severity == "error" and finding.peer == SCU and finding.peer_role == "C-GET SCU"
    assert finding.message_id == 1 and finding.frame == RQ_FRAME + 1  # the frame of the last fragment
    assert "(0020,000D)" in finding.detail and "no Failed or Refused response" in finding.detail


def test_get_rq_011_allowed_after_early_failure(tmp_path):
    assert findings(analyze_exchanges(tmp_path, _cut_short(0xA701)), "GET-RQ-011") == []


def test_get_rq_011_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=1)), "GET-RQ-011") == []


def test_real_captures_have_no_get_rq_findings():
    # Catalog section 6 names no C-GET-RQ deviation: pynetdicom and DCMTK number their requests
    # uniquely, stay within the default window and use the context's abstract syntax.
    for name, found in sample_findings().items():
        assert [f for f in found if f.rule.startswith("GET-RQ-")] == [], name


def test_early_failure_links_the_late_request_to_its_response(tmp_path):
    """The C-GET-RQ is assembled only after its early A701: one operation, complete, nothing outstanding."""
    analysis = analyze_exchanges(tmp_path, _cut_short(0xA701))
    [operation] = analysis.rows("operations")
    assert operation["request_frame"] is not None and operation["final_status"] == 0xA701
    assert operation["complete"] is True
    assert findings(analysis, "UL-036") == []  # the release finds no C-GET outstanding
    assert findings(analysis, "GET-RSP-002") == []
