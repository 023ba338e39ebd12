"""C-MOVE retrieves linked across associations (trace_analyzer/linking.py), on crafted captures
of two or more interleaved associations: the C-MOVE on one, its C-STOREs on another."""

from __future__ import annotations

from pathlib import Path

import move_builders as mb
from fuzz_support import FUZZ
from hypothesis import given
from hypothesis import strategies as st
from scapy.utils import wrpcap
from test_table_invariants import check_invariants

import trace_analyzer


def analyze(tmp_path, steps, name="move.pcap", conns=None, **options):
    path = tmp_path / name
    wrpcap(str(path), mb.packets(steps, conns))
    analysis = trace_analyzer.analyze(str(path), **options)
    assert analysis.errors == []
    check_invariants(analysis)
    return analysis


def retrieve(count=3, origin_ae="MOVESCU", origin_id=1, store_after_first_pending=False, status=0x0000,
             final_counters=None, conn="store", message_id=1):
    """One C-MOVE of ``count`` instances with its sub-operation association."""
    steps = mb.move_open() + [("move", "c", mb.c_move_rq(message_id))]
    if store_after_first_pending:
        steps.append(("move", "s", mb.c_move_rsp(message_id, 0xFF00, (count, 0, 0, 0))))
    steps += mb.store_open(conn)
    done = 0
    for index in range(count):
        steps += mb.stores(1, origin_ae, origin_id, conn=conn, first=index + 1, status=status)
        done += 1
        steps.append(("move", "s", mb.c_move_rsp(message_id, 0xFF00, (count - done, done, 0, 0))))
    completed = count if status == 0 else 0
    failed = 0 if status == 0 else count
    steps += mb.close(conn)
    steps.append(("move", "s", mb.c_move_rsp(message_id, 0x0000 if status == 0 else 0xA702,
                                             final_counters or (None, completed, failed, 0))))
    return steps + mb.close("move")


def test_sub_operations_are_linked_by_their_originator_fields(tmp_path):
    analysis = analyze(tmp_path, retrieve())
    [operation] = analysis.rows("operations")
    assert operation["service"] == "C-MOVE" and operation["move_destination"] == "STORESCP"
    assert operation["sub_operations"] == operation["sub_operations_completed"] == 3
    assert operation["link"] == "originator" and operation["sub_operation_associations"] == "2"
    assert operation["linking"] == "unambiguous" and operation["pending_responses"] == 3
    subs = analysis.rows("sub_operations")
    keys = ("association", "operation", "get_message_id", "link", "service")
    assert [tuple(s[k] for k in keys) for s in subs] == [(2, 1, 1, "originator", "C-MOVE")] * 3
    assert [s["move_originator_ae"] for s in subs] == ["MOVESCU"] * 3
    assert [r["service"] for r in analysis.rows("progress")] == ["C-MOVE"] * 4
    [record] = analysis.retrieves
    assert record.associations == [(str(tmp_path / "move.pcap"), 2)] and record.link == "originator"
    assert not [f for f in analysis.findings if f.rule.startswith("MOVE-")]


def test_association_opened_after_the_first_response(tmp_path):
    analysis = analyze(tmp_path, retrieve(store_after_first_pending=True))
    [operation] = analysis.rows("operations")
    assert operation["sub_operations"] == 3 and operation["pending_responses"] == 4
    assert {s["link"] for s in analysis.rows("sub_operations")} == {"originator"}


def test_without_originator_fields_linked_by_destination_and_time(tmp_path):
    analysis = analyze(tmp_path, retrieve(origin_ae=None, origin_id=None))
    [operation] = analysis.rows("operations")
    assert operation["sub_operations"] == 3 and operation["link"] == "inferred"
    assert {s["link"] for s in analysis.rows("sub_operations")} == {"inferred"}
    assert [f.rule for f in analysis.findings if f.rule.startswith("MOVE-")] == ["MOVE-SUB-001"] * 3


def test_two_c_moves_at_once_told_apart_by_message_id(tmp_path):
    # One SCU, two C-MOVEs outstanding (IDs 1 and 2), their C-STOREs interleaved on one association.
    steps = mb.move_open() + [("move", "c", mb.c_move_rq(1)), ("move", "c", mb.c_move_rq(2))]
    steps += mb.store_open()
    steps += mb.stores(1, origin_id=1, first=1) + mb.stores(1, origin_id=2, first=2)
    steps += mb.stores(1, origin_id=2, first=3)
    steps += mb.close("store")
    steps += [("move", "s", mb.c_move_rsp(1, 0x0000, (None, 1, 0, 0))),
              ("move", "s", mb.c_move_rsp(2, 0x0000, (None, 2, 0, 0)))] + mb.close("move")
    analysis = analyze(tmp_path, steps)
    counts = {o["message_id"]: o["sub_operations"] for o in analysis.rows("operations")}
    assert counts == {1: 1, 2: 2}
    assert not [f for f in analysis.findings if f.rule.startswith("MOVE-CNT")]


def test_two_c_moves_without_originator_fields_are_ambiguous(tmp_path):
    steps = mb.move_open() + [("move", "c", mb.c_move_rq(1)), ("move", "c", mb.c_move_rq(2))]
    steps += mb.store_open() + mb.stores(2, origin_ae=None, origin_id=None) + mb.close("store")
    steps += [("move", "s", mb.c_move_rsp(1, 0x0000, (None, 1, 0, 0))),
              ("move", "s", mb.c_move_rsp(2, 0x0000, (None, 1, 0, 0)))] + mb.close("move")
    analysis = analyze(tmp_path, steps)
    operations = analysis.rows("operations")
    assert [(o["sub_operations"], o["sub_operations_ambiguous"], o["linking"]) for o in operations] == [
        (0, 2, "ambiguous")] * 2
    subs = analysis.rows("sub_operations")
    assert [(s["operation"], s["ambiguous"], s["candidate_get_message_ids"]) for s in subs] == [
        (None, True, "1 2")] * 2
    # Counters are not compared with C-STOREs that may be either's.
    assert not [f for f in analysis.findings if f.rule.startswith("MOVE-CNT")]


def test_two_c_moves_without_originator_fields_told_apart_by_their_counters(tmp_path):
    # Each C-STORE is followed by a Pending of the C-MOVE it belongs to, whose Completed rose.
    steps = mb.move_open() + [("move", "c", mb.c_move_rq(1)), ("move", "c", mb.c_move_rq(2))]
    steps += mb.store_open()
    steps += mb.stores(1, origin_ae=None, origin_id=None, first=1)
    steps.append(("move", "s", mb.c_move_rsp(1, 0xFF00, (1, 1, 0, 0))))
    steps += mb.stores(1, origin_ae=None, origin_id=None, first=2)
    steps.append(("move", "s", mb.c_move_rsp(2, 0xFF00, (0, 1, 0, 0))))
    steps += mb.stores(1, origin_ae=None, origin_id=None, first=3)
    steps.append(("move", "s", mb.c_move_rsp(1, 0xFF00, (0, 2, 0, 0))))
    steps += mb.close("store")
    steps += [("move", "s", mb.c_move_rsp(1, 0x0000, (None, 2, 0, 0))),
              ("move", "s", mb.c_move_rsp(2, 0x0000, (None, 1, 0, 0)))] + mb.close("move")
    analysis = analyze(tmp_path, steps)
    subs = sorted(analysis.rows("sub_operations"), key=lambda s: s["message_id"])
    assert [(s["message_id"], s["get_message_id"], s["link"], s["ambiguous"]) for s in subs] == [
        (1, 1, "inferred-counters", False), (2, 2, "inferred-counters", False),
        (3, 1, "inferred-counters", False)]
    counts = {o["message_id"]: (o["sub_operations"], o["link"]) for o in analysis.rows("operations")}
    assert counts == {1: (2, "inferred-counters"), 2: (1, "inferred-counters")}
    # Still a finding: the standard asks for the originator fields.
    assert [f.rule for f in analysis.findings if f.rule.startswith("MOVE-")] == ["MOVE-SUB-001"] * 3


def test_two_requestors_same_message_id_told_apart_by_ae_title(tmp_path):
    conns = {"a": (("127.0.0.1", 40001), ("127.0.0.2", 11112)),
             "b": (("127.0.0.4", 40002), ("127.0.0.2", 11112)),
             "store": mb.STORE_CONN, "store2": (("127.0.0.2", 40101), ("127.0.0.3", 11113))}
    steps = []
    for conn, ae in (("a", "SCU_A"), ("b", "SCU_B")):
        steps += [(conn, side, data) for _, side, data in mb.move_open(calling=ae)]
        steps.append((conn, "c", mb.c_move_rq(1)))
    steps += mb.store_open("store") + mb.store_open("store2")
    steps += mb.stores(2, origin_ae="SCU_A", conn="store") + mb.stores(1, origin_ae="SCU_B", conn="store2")
    steps += mb.close("store") + mb.close("store2")
    steps += [("a", "s", mb.c_move_rsp(1, 0x0000, (None, 2, 0, 0))),
              ("b", "s", mb.c_move_rsp(1, 0x0000, (None, 1, 0, 0)))]
    analysis = analyze(tmp_path, steps, conns=conns)
    rows = {o["association"]: (o["sub_operations"], o["link"]) for o in analysis.rows("operations")}
    assert rows == {1: (2, "originator"), 2: (1, "originator")}
    assert not [f for f in analysis.findings if f.rule.startswith("MOVE-")]


def test_only_the_c_move_association_captured(tmp_path):
    steps = [s for s in retrieve() if s[0] == "move"]
    analysis = analyze(tmp_path, steps)
    [operation] = analysis.rows("operations")
    assert operation["sub_operations"] == 0 and operation["completed"] == 3
    assert operation["link"] is None and operation["sub_operation_associations"] is None
    assert not [f for f in analysis.findings if f.rule.startswith("MOVE-CNT")]


def test_only_the_sub_operation_association_captured(tmp_path):
    steps = [s for s in retrieve() if s[0] == "store"]
    analysis = analyze(tmp_path, steps)
    assert analysis.rows("operations") == []  # no C-STORE outside a retrieve: they name one
    subs = analysis.rows("sub_operations")
    assert [(s["operation"], s["get_message_id"], s["link"], s["move_originator_ae"]) for s in subs] == [
        (None, 1, "originator", "MOVESCU")] * 3
    [record] = analysis.retrieves
    assert record.move is None and (record.originator_ae, record.message_id) == ("MOVESCU", 1)


def test_plain_c_stores_are_operations_of_their_own(tmp_path):
    steps = [s for s in retrieve(origin_ae=None, origin_id=None, status=0xA700) if s[0] == "store"]
    analysis = analyze(tmp_path, steps)
    operations = analysis.rows("operations")
    assert [(o["service"], o["final_status"], o["status_category"]) for o in operations] == [
        ("C-STORE", 0xA700, "Failure")] * 3
    assert [o["operation"] for o in operations] == [1, 2, 3]
    [status] = analysis.rows("statuses")
    assert (status["service"], status["status"], status["responses"]) == ("C-STORE", 0xA700, 3)
    assert analysis.rows("sub_operations") == []


def test_linking_across_capture_sets_merged(tmp_path):
    # The two associations captured in two files that do not continue each other: each is its
    # own capture set, and the merge links them all the same.
    wrpcap(str(tmp_path / "a.pcap"), mb.packets([s for s in retrieve() if s[0] == "move"]))
    later = 1_700_000_000.03
    wrpcap(str(tmp_path / "b.pcap"), mb.packets([s for s in retrieve() if s[0] == "store"], start=later))
    analysis = trace_analyzer.analyze([str(tmp_path / "a.pcap"), str(tmp_path / "b.pcap")])
    [move] = [o for o in analysis.operation_records if o.service == "C-MOVE"]
    assert len(move.sub_operations) == 3 and {s.link for s in move.sub_operations} == {"originator"}


def test_serial_and_parallel_runs_link_the_same():
    samples = sorted(str(p) for p in (Path(__file__).resolve().parent.parent / "sample_pcaps").glob("*move*"))
    assert len(samples) == 4
    serial = trace_analyzer.analyze(samples)
    parallel = trace_analyzer.analyze(samples, workers=2)
    backwards = trace_analyzer.analyze(samples[::-1])
    for table in ("operations", "sub_operations", "statuses", "violations", "peers"):
        assert serial.rows(table) == parallel.rows(table) == backwards.rows(table), table


def test_a_cancelled_c_move_is_not_a_c_get_matter(tmp_path):
    from builders import c_cancel

    steps = retrieve(count=2)
    first_pending = mb.c_move_rsp(1, 0xFF00, (1, 1, 0, 0))
    index = next(i for i, step in enumerate(steps) if step[2] == first_pending)
    steps.insert(index + 1, ("move", "c", c_cancel(1)))
    analysis = analyze(tmp_path, steps)
    [operation] = analysis.rows("operations")
    assert operation["service"] == "C-MOVE" and operation["cancel_requested"] is True
    assert not [f for f in analysis.findings if f.rule.startswith("GET-")]


def test_a_refused_destination_association_belongs_to_the_retrieve(tmp_path):
    # The destination rejects the association: no C-STORE, the C-MOVE fails its sub-operations.
    from builders import _pdu

    reject = _pdu(0x03, bytes([0, 1, 1, 3]))  # rejected-permanent, service-user, called AE not recognized
    steps = mb.move_open() + [("move", "c", mb.c_move_rq(1)),
                              ("store", "c", mb.store_open()[0][2]), ("store", "s", reject),
                              ("move", "s", mb.c_move_rsp(1, 0xA702, (None, 0, 3, 0)))] + mb.close("move")
    analysis = analyze(tmp_path, steps)
    [record] = analysis.retrieves
    assert record.associations == [(str(tmp_path / "move.pcap"), 2)] and record.sub_operations == []
    [operation] = analysis.rows("operations")
    assert operation["sub_operation_associations"] == "2" and operation["sub_operations"] == 0
    assert {r["outcome"] for r in analysis.rows("associations")} >= {"rejected"}


# -- generated retrieves -------------------------------------------------------------------------



@st.composite
def move_retrieves(draw):
    """One or two C-MOVEs (one SCU, or two), their sub-operation associations opened anywhere in
    the C-MOVE's life, C-STOREs with or without (right or wrong) originator fields, any counters
    and statuses, and perhaps one step lost."""
    conns = {"m1": mb.MOVE_CONN, "m2": (("127.0.0.4", 40002), ("127.0.0.2", 11112)),
             "s1": mb.STORE_CONN, "s2": (("127.0.0.2", 40101), ("127.0.0.3", 11113))}
    moves = draw(st.integers(1, 2))
    same_id = draw(st.booleans())
    plan, sent = [], 0
    for index in range(1, moves + 1):
        move, store = f"m{index}", f"s{index}"
        message_id = 1 if same_id else index
        ae = f"SCU{index}"
        steps = [(move, side, data) for _, side, data in mb.move_open(calling=ae)]
        steps.append((move, "c", mb.c_move_rq(message_id)))
        body = [(store, side, data) for _, side, data in mb.store_open()]
        count = draw(st.integers(0, 3))
        sent += count
        origin = draw(st.sampled_from(["full", "id", "none", "wrong"]))
        for number in range(1, count + 1):
            origin_ae = {"full": ae, "id": "QRSCP", "none": None, "wrong": ae}[origin]
            origin_id = {"none": None, "wrong": 99}.get(origin, message_id)
            status = draw(st.sampled_from([0x0000, 0xB000, 0xA700]))
            body += [(store, side, data) for _, side, data in
                     mb.stores(1, origin_ae, origin_id, first=number, status=status)]
            body.append((move, "s", mb.c_move_rsp(message_id, 0xFF00,
                                                  (count - number, draw(st.integers(0, 3)), 0, 0))))
        body += [(store, side, data) for _, side, data in mb.close("store")]
        if draw(st.booleans()):
            body.append((move, "s", mb.c_move_rsp(message_id, draw(st.sampled_from([0x0000, 0xB000, 0xA801])),
                                                  (None, count, 0, 0))))
        plan.append((steps, body))
    out = []
    for steps, _ in plan:
        out += steps
    for _, body in plan:  # the sub-operations of each C-MOVE, one C-MOVE after the other
        out += body
    if draw(st.booleans()) and out:
        del out[draw(st.integers(0, len(out) - 1))]
    return out, conns, sent


@FUZZ
@given(move_retrieves())
def test_generated_retrieves_link_and_tables_agree(generated):
    import tempfile

    steps, conns, sent = generated
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.pcap"
        wrpcap(str(path), mb.packets(steps, conns))
        analysis = trace_analyzer.analyze(str(path))
    assert analysis.errors == []
    check_invariants(analysis)
    # Each C-STORE sent is linked to at most one C-MOVE, or hangs ambiguous on several.
    linked = sum(o["sub_operations"] for o in analysis.rows("operations") if o["service"] == "C-MOVE")
    assert linked <= sent
    for sub in analysis.rows("sub_operations"):
        assert sub["link"] in ("originator", "originator-id", "inferred-counters", "inferred")
