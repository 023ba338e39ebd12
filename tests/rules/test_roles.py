"""SCP/SCU role selection, row by row (catalog 3.2; PS3.7 D.3.3.4), and the rules that use it.

Each row gives the role selection item the A-ASSOCIATE-RQ proposes and the one the
A-ASSOCIATE-AC answers (None: no item), for CT Image Storage and for the C-GET class alike,
what each side may then be, written out by hand from the catalog's table, and which of
GET-SUB-001, GET-RQ-007, GET-ROLE-001, GET-ROLE-004 and UL-019 a retrieve on that
association must raise: the acceptor sends C-STORE-RQs on the CT context, the requestor a
C-GET-RQ on the Get context.
"""

from __future__ import annotations

import pytest
from builders import CT, PATIENT_ROOT_GET, associate, retrieve
from rules_helpers import analyze_exchanges, findings

from trace_analyzer.association import UNDEFINED_ROLES, negotiate_roles

BOTH, SCU, SCP, NEITHER, UNDEFINED = "SCU and SCP", "SCU", "SCP", "neither", "undefined"

# rq item, ac item, requestor may, acceptor may, {rule: side blamed}
ROWS = [
    # no role selection: the defaults, under which the acceptor may not send C-STOREs
    (None, None, SCU, SCP, {"GET-SUB-001": "acceptor", "GET-ROLE-001": "requestor"}),
    # the AC leaves the item out: the defaults again, now the acceptor's doing
    ((0, 1), None, SCU, SCP, {"GET-SUB-001": "acceptor", "GET-ROLE-001": "acceptor"}),
    ((1, 1), None, SCU, SCP, {"GET-SUB-001": "acceptor", "GET-ROLE-001": "acceptor"}),
    ((1, 1), (1, 1), BOTH, BOTH, {}),
    ((1, 1), (1, 0), SCU, SCP, {"GET-SUB-001": "acceptor", "GET-ROLE-001": "acceptor"}),
    ((1, 1), (0, 1), SCP, SCU, {"GET-RQ-007": "requestor"}),
    ((0, 1), (0, 1), SCP, SCU, {"GET-RQ-007": "requestor"}),
    # undefined by the standard: reported as such, no role is assumed
    ((1, 1), (0, 0), UNDEFINED, UNDEFINED, {"GET-ROLE-004": "acceptor", "GET-ROLE-001": "acceptor"}),
    # a plain refusal of the one role proposed
    ((0, 1), (0, 0), NEITHER, NEITHER,
     {"GET-SUB-001": "acceptor", "GET-RQ-007": "requestor", "GET-ROLE-001": "acceptor"}),
    ((1, 0), (1, 0), SCU, SCP, {"GET-SUB-001": "acceptor", "GET-ROLE-001": "requestor"}),
    ((1, 0), (0, 0), NEITHER, NEITHER,
     {"GET-SUB-001": "acceptor", "GET-RQ-007": "requestor", "GET-ROLE-001": "requestor"}),
    # the AC sets a 1 the RQ did not propose: a fault, and the requestor ignores that 1
    ((0, 1), (1, 1), SCP, SCU, {"UL-019": "acceptor", "GET-RQ-007": "requestor"}),
    ((1, 0), (1, 1), SCU, SCP,
     {"UL-019": "acceptor", "GET-SUB-001": "acceptor", "GET-ROLE-001": "requestor"}),
]
RULES = ("GET-SUB-001", "GET-RQ-007", "GET-ROLE-001", "GET-ROLE-004", "UL-019")
CONTEXTS = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]


def _exchanges(rq_item, ac_item):
    def items(item):
        return [] if item is None else [(uid, *item) for uid in (PATIENT_ROOT_GET, CT)]

    exchanges = retrieve(instances=2)
    exchanges[0] = ("c", associate(True, CONTEXTS, roles=items(rq_item)))
    exchanges[1] = ("s", associate(False, CONTEXTS, roles=items(ac_item)))
    return exchanges


@pytest.mark.parametrize("rq_item, ac_item, requestor_may, acceptor_may, expected", ROWS,
                         ids=[f"rq{r[0]}-ac{r[1]}" for r in ROWS])
def test_role_table_row(tmp_path, rq_item, ac_item, requestor_may, acceptor_may, expected):
    analysis = analyze_exchanges(tmp_path, _exchanges(rq_item, ac_item))
    contexts = {row["context_id"]: row for row in analysis.rows("contexts")}
    for context_id in (1, 3):
        assert contexts[context_id]["requestor_may"] == requestor_may
        assert contexts[context_id]["acceptor_may"] == acceptor_may
    for rule_id in RULES:
        found = findings(analysis, rule_id)
        if rule_id not in expected:
            assert not found, f"{rule_id}: {[f.detail for f in found]}"
            continue
        assert found, f"{rule_id} missing; findings: {[(f.rule, f.detail) for f in analysis.findings]}"
        assert {f.peer_side for f in found} == {expected[rule_id]}
    if "GET-SUB-001" in expected:
        # One finding per C-STORE-RQ, each at its own frame.
        stores = [m["frame"] for m in analysis.rows("messages") if m["command"] == "C-STORE-RQ"]
        assert sorted(f.frame for f in findings(analysis, "GET-SUB-001")) == stores


def test_negotiate_roles_function_matches_the_rows():
    names = {(True, True): BOTH, (True, False): SCU, (False, True): SCP, (False, False): NEITHER}
    for rq_item, ac_item, requestor_may, _acceptor, _rules in ROWS:
        roles = negotiate_roles(rq_item, ac_item)
        assert (UNDEFINED if roles == UNDEFINED_ROLES else names[roles]) == requestor_may


def test_roles_unknown_without_the_ac(tmp_path):
    exchanges = _exchanges((0, 1), (0, 1))
    del exchanges[1]  # the A-ASSOCIATE-AC was not captured
    analysis = analyze_exchanges(tmp_path, exchanges)
    assert {row["requestor_may"] for row in analysis.rows("contexts")} == {None}
    assert not findings(analysis, "GET-SUB-001")
