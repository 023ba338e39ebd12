"""MOVE-RQ, MOVE-RSP, MOVE-CNT, MOVE-SUB and FIND rules: for each, a crafted capture that triggers
it and a conformant one that does not (the clean C-MOVE retrieve and the clean C-FIND below)."""

from __future__ import annotations

import move_builders as mb
import pytest
from builders import associate, command_set, identifier, message
from scapy.utils import wrpcap
from test_linking import retrieve
from test_table_invariants import check_invariants

import trace_analyzer
from trace_analyzer.rules import CATALOG

PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"


def _analyze(tmp_path, steps):
    path = tmp_path / "rule.pcap"
    wrpcap(str(path), mb.packets(steps, {"move": mb.MOVE_CONN, "store": mb.STORE_CONN,
                                         "find": mb.MOVE_CONN}))
    analysis = trace_analyzer.analyze(str(path))
    assert analysis.errors == []
    check_invariants(analysis)  # the findings name messages and frames of their association
    return analysis


def _replace(steps, old: bytes, new: bytes | list):
    """The steps with the one carrying ``old`` replaced by ``new`` (or by several)."""
    index = next(i for i, (_, _, data) in enumerate(steps) if data == old)
    conn, side, _ = steps[index]
    news = new if isinstance(new, list) else [new]
    return steps[:index] + [(conn, side, data) for data in news] + steps[index + 1:]


def _move_with(request: bytes):
    return _replace(retrieve(), mb.c_move_rq(1), request)


def find_steps(responses=None, request=None):
    contexts = [(1, mb.STUDY_ROOT_FIND, 0)]
    if responses is None:
        responses = [mb.c_find_rsp(1, 0xFF00, MATCH), mb.c_find_rsp(1, 0xFF00, MATCH),
                     mb.c_find_rsp(1, 0x0000)]
    return ([("find", "c", associate(True, contexts, calling="FINDSCU", called="QRSCP")),
             ("find", "s", associate(False, contexts, calling="FINDSCU", called="QRSCP")),
             ("find", "c", request or mb.c_find_rq(1))]
            + [("find", "s", r) for r in responses] + mb.close("find"))


MATCH = identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3")
_FINAL_OK = mb.c_move_rsp(1, 0x0000, (None, 3, 0, 0))

#: Rule -> the steps of a capture that breaks it.
TRIGGERS = {
    "MOVE-RQ-001": lambda: _move_with(mb.c_move_rq(1, destination=None)),
    "MOVE-RQ-002": lambda: _move_with(mb.c_move_rq(1, destination="ABCDEFGHIJKLMNOPQ")),
    "MOVE-RQ-003": lambda: _move_with(mb.c_move_rq(1, priority=7)),
    "MOVE-RQ-004": lambda: _move_with(mb.c_move_rq(1, sop_class=PATIENT_ROOT_MOVE)),
    "MOVE-RQ-005": lambda: _move_with(mb.c_move_rq(1, data=identifier(StudyInstanceUID="1.2.3"))),
    "MOVE-RSP-001": lambda: _replace(retrieve(), _FINAL_OK, [
        message(1, command_set({0x0100: 0x8021, 0x0120: 1, 0x0800: 0x0101})), _FINAL_OK]),
    "MOVE-RSP-002": lambda: _replace(retrieve(), mb.c_move_rsp(1, 0xFF00, (2, 1, 0, 0)),
                                     mb.c_move_rsp(1, 0xFF00, (2, 1))),
    "MOVE-RSP-003": lambda: _replace(retrieve(), _FINAL_OK, mb.c_move_rsp(1, 0xB001, (None, 3, 0, 0))),
    "MOVE-RSP-004": lambda: mb.move_open() + [("move", "c", mb.c_move_rq(1, destination="NOWHERE")),
                                              ("move", "s", mb.c_move_rsp(1, 0xA801, (None, 0, 0, 0)))],
    "MOVE-RSP-005": lambda: _replace(retrieve(), _FINAL_OK, mb.c_move_rsp(1, 0x0000, (None, 2, 1, 0))),
    "MOVE-RSP-006": lambda: _replace(retrieve(), _FINAL_OK, [_FINAL_OK, _FINAL_OK]),
    "MOVE-CNT-001": lambda: _replace(retrieve(), mb.c_move_rsp(1, 0xFF00, (1, 2, 0, 0)),
                                     mb.c_move_rsp(1, 0xFF00, (3, 2, 0, 0))),
    "MOVE-CNT-002": lambda: _replace(retrieve(), mb.c_move_rsp(1, 0xFF00, (1, 2, 0, 0)),
                                     mb.c_move_rsp(1, 0xFF00, (1, 0, 0, 0))),
    "MOVE-CNT-003": lambda: retrieve(final_counters=(None, 5, 0, 0)),
    "MOVE-CNT-004": lambda: retrieve(status=0xA700, final_counters=(None, 0, 0, 0)),
    "MOVE-CNT-005": lambda: retrieve(final_counters=(None, 3, 0, 1)),
    "MOVE-SUB-001": lambda: retrieve(origin_ae=None, origin_id=None),
    "MOVE-SUB-002": lambda: retrieve(origin_ae="QRSCP"),
    "MOVE-SUB-003": lambda: _replace(retrieve(), mb.store_open()[0][2], associate(
        True, [(1, mb.CT, 0)], calling="QRSCP", called="OTHERAE")),
    "MOVE-SUB-004": lambda: [(c, s, d.replace(mb.sub_store_rq(1, "1.2.3.9.1"),
                                              mb.sub_store_rq(1, "1.2.3.9.1", priority=2)))
                             for c, s, d in retrieve()],
    "MOVE-SUB-005": lambda: _late_store(),
    "FIND-001": lambda: find_steps(request=message(1, command_set({
        0x0002: mb.STUDY_ROOT_FIND, 0x0100: 0x0020, 0x0110: 1, 0x0800: 0x0101}))),
    "FIND-002": lambda: find_steps(request=mb.c_find_rq(1, identifier(StudyInstanceUID=""))),
    "FIND-003": lambda: find_steps([mb.c_find_rsp(1, 0xFF00), mb.c_find_rsp(1, 0x0000)]),
    "FIND-004": lambda: find_steps([mb.c_find_rsp(1, 0xFF00, MATCH), mb.c_find_rsp(1, 0x0000, MATCH)]),
    "FIND-005": lambda: find_steps([mb.c_find_rsp(1, 0xFF00, MATCH), mb.c_find_rsp(1, 0xA801)]),
    "FIND-006": lambda: find_steps([mb.c_find_rsp(1, 0x0000), mb.c_find_rsp(1, 0x0000)]),
}


def _late_store():
    """The last C-STORE sent just after the final C-MOVE-RSP (within the linking slack)."""
    steps = [s for s in retrieve() if s[0] != "store" or b"1.2.3.9.3" not in s[2]]
    final = steps.index(("move", "s", _FINAL_OK))
    return steps[:final + 1] + mb.stores(1, first=3)[:2] + steps[final + 1:]


def test_every_move_and_find_rule_has_a_trigger():
    own = {rule for rule in CATALOG if rule.startswith(("MOVE-", "FIND-"))}
    assert own == set(TRIGGERS) and len(own) == 27


@pytest.mark.parametrize("rule_id", sorted(TRIGGERS))
def test_rule_triggers(tmp_path, rule_id):
    analysis = _analyze(tmp_path, TRIGGERS[rule_id]())
    found = [f for f in analysis.findings if f.rule == rule_id]
    assert found, [(f.rule, f.detail) for f in analysis.findings]
    finding = found[0]
    assert finding.severity == CATALOG[rule_id].severity and finding.section == CATALOG[rule_id].section
    assert finding.frame is not None and finding.peer_side in ("requestor", "acceptor")
    row = next(r for r in analysis.rows("violations") if r["rule"] == rule_id)
    assert row["detail"] == finding.detail


@pytest.mark.parametrize("rule_id", sorted(TRIGGERS))
def test_conformant_captures_do_not_trigger(tmp_path, rule_id):
    steps = find_steps() if rule_id.startswith("FIND") else retrieve()
    analysis = _analyze(tmp_path, steps)
    assert [f for f in analysis.findings if f.rule == rule_id] == []
    # ... and the capture exercised what the rule looks at.
    services = {o["service"] for o in analysis.rows("operations")}
    assert services == ({"C-FIND"} if rule_id.startswith("FIND") else {"C-MOVE"})


def test_unknown_destination_is_the_scps_finding(tmp_path):
    analysis = _analyze(tmp_path, TRIGGERS["MOVE-RSP-004"]())
    [finding] = [f for f in analysis.findings if f.rule == "MOVE-RSP-004"]
    assert finding.peer_role == "C-MOVE SCP" and finding.peer == "QRSCP @ 127.0.0.2:11112"
    assert "NOWHERE" in finding.detail


def test_counters_disagreeing_with_the_other_association(tmp_path):
    analysis = _analyze(tmp_path, TRIGGERS["MOVE-CNT-003"]())
    [finding] = [f for f in analysis.findings if f.rule == "MOVE-CNT-003"]
    assert finding.association == 1 and finding.message_id == 1 and finding.peer_role == "C-MOVE SCP"
    assert "Completed 5" in finding.detail and "3 sub-operation" in finding.detail
    [operation] = analysis.rows("operations")
    assert operation["errors"] >= 1


def test_retrieve_rules_obey_levels(tmp_path):
    path = tmp_path / "levels.pcap"
    wrpcap(str(path), mb.packets(retrieve(origin_ae=None, origin_id=None)))
    quiet = trace_analyzer.analyze(str(path), rules={"MOVE-SUB-001": "off"})
    assert not [f for f in quiet.findings if f.rule == "MOVE-SUB-001"]
    raised = trace_analyzer.analyze(str(path), rules={"MOVE-SUB-001": "error"})
    assert {f.severity for f in raised.findings if f.rule == "MOVE-SUB-001"} == {"error"}
