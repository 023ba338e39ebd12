"""UL rules (catalog 5.1): each with a capture that triggers it, and conformant captures that do not."""

from __future__ import annotations

import glob
import json
import struct
from pathlib import Path

import pytest
from builders import (
    CT,
    IMPLICIT,
    PATIENT_ROOT_GET,
    abort,
    associate,
    c_cancel,
    c_get_rq,
    c_get_rsp,
    c_store_rq,
    c_store_rsp,
    command_set,
    conversation_packets,
    identifier,
    message,
    release_rp,
    release_rq,
    retrieve,
)
from rules_helpers import analyze_exchanges, findings

import trace_analyzer
from trace_analyzer.pdu import Pdu
from trace_analyzer.pdu_items import decode_associate
from trace_analyzer.rules import CATALOG
from trace_analyzer.rules.engine import Event
from trace_analyzer.rules.ul import protocol_version

UL_RULES = sorted(rule_id for rule_id in CATALOG if rule_id.startswith("UL-"))
SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
EXPLICIT = "1.2.840.10008.1.2.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
CONTEXTS = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
REQUESTOR = "GETSCU @ 127.0.0.1:40001"
ACCEPTOR = "QRSCP @ 127.0.0.2:11112"


# -- builders for faulty Upper Layer bytes (PS3.8 9.3) -----------------------------------------


def item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


def uid(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def rq_context(context_id: int, abstract: str | bytes | None, *syntaxes: str | bytes) -> bytes:
    subs = (item(0x30, uid(abstract)) if abstract is not None else b"")
    subs += b"".join(item(0x40, uid(s)) for s in syntaxes)
    return item(0x20, bytes([context_id, 0, 0, 0]) + subs)


def ac_context(context_id: int, result: int = 0, syntax: str = IMPLICIT) -> bytes:
    return item(0x21, bytes([context_id, 0, result, 0]) + item(0x40, syntax.encode()))


def max_length(value: int = 16384) -> bytes:
    return item(0x51, struct.pack(">I", value))


def role(sop_class: str, scu: int, scp: int) -> bytes:
    return item(0x54, struct.pack(">H", len(sop_class)) + sop_class.encode() + bytes([scu, scp]))


def window(invoked: int, performed: int) -> bytes:
    return item(0x53, struct.pack(">HH", invoked, performed))


def user_info(*subs: bytes) -> bytes:
    return item(0x50, b"".join(subs))


def default_user(*extra: bytes) -> bytes:
    return user_info(max_length(), item(0x52, b"1.2.3.4.5"), *extra, item(0x55, b"BUILDER_1"))


def associate_pdu(request: bool, items: list[bytes], called: bytes = b"QRSCP", calling: bytes = b"GETSCU",
                  version: int = 1, reserved: bytes = bytes(32)) -> bytes:
    body = struct.pack(">HH", version, 0) + called.ljust(16) + calling.ljust(16) + reserved + b"".join(items)
    return pdu(0x01 if request else 0x02, body)


def app_context(name: str = "1.2.840.10008.3.1.1.1") -> bytes:
    return item(0x10, name.encode())


def standard_rq(*extra_user: bytes, contexts: list[bytes] | None = None) -> bytes:
    contexts = contexts or [rq_context(1, PATIENT_ROOT_GET, IMPLICIT), rq_context(3, CT, IMPLICIT)]
    return associate_pdu(True, [app_context(), *contexts, default_user(role(CT, 0, 1), *extra_user)])


def standard_ac(*extra_user: bytes, contexts: list[bytes] | None = None, **options) -> bytes:
    contexts = contexts or [ac_context(1), ac_context(3)]
    return associate_pdu(False, [app_context(), *contexts, default_user(role(CT, 0, 1), *extra_user)],
                         **options)


def with_association(rq: bytes | None = None, ac: bytes | None = None, **retrieve_options):
    """retrieve() with its A-ASSOCIATE-RQ and/or -AC replaced."""
    exchanges = retrieve(**retrieve_options)
    if rq is not None:
        exchanges[0] = ("c", rq)
    if ac is not None:
        exchanges[1] = ("s", ac)
    return exchanges


def pdv(context_id: int, control: int, fragment: bytes) -> bytes:
    return struct.pack(">IBB", len(fragment) + 2, context_id, control) + fragment


def p_data(*pdvs: bytes) -> bytes:
    return pdu(0x04, b"".join(pdvs))


def get_command(message_id: int = 1) -> bytes:
    return command_set({0x0002: PATIENT_ROOT_GET, 0x0100: 0x0010, 0x0110: message_id, 0x0700: 0,
                        0x0800: 0x0001})


def get_identifier() -> bytes:
    return identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3")


def replace_get_rq(exchanges, *pdus: bytes):
    """Send the C-GET-RQ of a retrieve() as the given PDUs instead."""
    index = next(i for i, (_, data) in enumerate(exchanges) if data == c_get_rq(1))
    exchanges[index:index + 1] = [("c", data) for data in pdus]
    return exchanges


def only(analysis, rule_id):
    [finding] = findings(analysis, rule_id)
    assert finding.severity == CATALOG[rule_id].severity
    return finding


def ul_findings(analysis):
    return [f for f in analysis.findings if f.rule.startswith("UL-")]


# -- conformant captures: no UL finding at all ------------------------------------------------------


def _conformant_conversations():
    small = [("c", associate(True, CONTEXTS, roles=[(CT, 0, 1)], max_pdu=200)),
             ("s", associate(False, CONTEXTS, roles=[(CT, 0, 1)], max_pdu=300)),
             ("c", message(1, get_command(), get_identifier(), max_pdu=300))]
    for index in range(2):
        instance = f"1.2.3.4.{index + 1}"
        store = command_set({0x0002: CT, 0x0100: 0x0001, 0x0110: 100 + index, 0x0700: 0, 0x0800: 0x0001,
                             0x1000: instance})
        data = identifier(SOPClassUID=CT, SOPInstanceUID=instance) + bytes(900)
        small += [("s", message(3, store, data, max_pdu=200)), ("c", c_store_rsp(100 + index, 0, instance))]
    small += [("s", c_get_rsp(1, 0x0000, (None, 2, 0, 0))), ("c", release_rq()), ("s", release_rp())]
    cancelled = retrieve(instances=3)[:6] + [("c", c_cancel(1)), ("s", c_get_rsp(1, 0xFE00, (1, 1, 0, 0))),
                                             ("c", release_rq()), ("s", release_rp())]
    rejected = [("c", associate(True, CONTEXTS)), ("s", pdu(0x03, bytes([0, 1, 1, 7])))]
    aborted_after = retrieve(instances=1)[:-2] + [("c", abort())]
    # Command and data set of one message in one PDU, one PDV each: allowed.
    one_pdu = replace_get_rq(retrieve(instances=1),
                             p_data(pdv(1, 3, get_command()), pdv(1, 2, get_identifier())))
    return {"retrieve": retrieve(instances=3), "small_pdus": small, "cancelled": cancelled,
            "rejected": rejected, "aborted_after_get": aborted_after, "command_and_data_in_one_pdu": one_pdu,
            "one_instance": retrieve(instances=1)}


@pytest.fixture(scope="module")
def conformant(tmp_path_factory):
    out = {}
    for name, exchanges in _conformant_conversations().items():
        out[name] = analyze_exchanges(tmp_path_factory.mktemp(name), exchanges)
    return out


@pytest.mark.parametrize("rule_id", UL_RULES)
def test_conformant_captures_trigger_nothing(conformant, rule_id):
    for name, analysis in conformant.items():
        assert findings(analysis, rule_id) == [], name
    assert not [p for p in conformant["small_pdus"].problem_records if p.code != "CAPTURE-TRUNCATED"]


def test_sample_captures_only_expected_ul_findings():
    """Real and crafted samples break no UL rule: section 6 documents no UL deviation of pynetdicom
    or DCMTK that shows in them (6.12, the max-length difference, matters only for a peer that exceeds
    the limit). Fault samples show only the UL rules their manifest expects."""
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    kinds = {entry["file"]: entry for entry in manifest["captures"]}
    paths = sorted(glob.glob(str(SAMPLES / "*.pcap*")))
    assert paths
    for path in paths:
        entry = kinds.get(Path(path).name, {})
        expected = {r for r in entry.get("expected_rules", ()) if r.startswith("UL-")}
        found = ul_findings(trace_analyzer.analyze(path))
        assert {f.rule for f in found} == expected, path
        assert all(f.peer_side == entry.get("misbehaving_peer") for f in found), path
    dcmtk = trace_analyzer.analyze(str(SAMPLES / "dcmtk_to_dcmtk_success.pcap"))
    assert not [f for f in ul_findings(dcmtk) if f.severity == "error"]


def test_oversized_pdu_sample():
    found = ul_findings(trace_analyzer.analyze(str(SAMPLES / "fault_oversized_pdu.pcap")))
    assert found and {f.rule for f in found} == {"UL-004"}
    assert len(found) == 3  # one per C-STORE-RQ sent in 8192-byte PDUs, not one per PDU
    assert "PDU-length 8192 exceeds the Maximum Length 4096 the requestor announced" in found[0].detail


# -- PDUs ---------------------------------------------------------------------------------------------


def test_ul_001_unknown_pdu_type(tmp_path):
    exchanges = retrieve(instances=1)
    exchanges.insert(3, ("c", pdu(0x09, b"\xff\xff\xff\xff")))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-001")
    assert "0x09" in finding.detail and "A-ABORT" in finding.detail and finding.frame > 0
    # The reader does not pass the sender of its problems yet (asked of the lead).
    assert finding.peer_side in (None, "requestor")


def test_ul_002_release_rq_of_wrong_length(tmp_path):
    exchanges = retrieve(instances=1)
    exchanges[-2] = ("c", pdu(0x05, bytes(6)))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-002")
    assert finding.peer == REQUESTOR and finding.peer_role == "association requestor"
    assert "A-RELEASE-RQ has PDU-length 6" in finding.detail


def test_ul_003_protocol_version_bit_clear():
    # The PDU reader only frames an A-ASSOCIATE whose version is 1 (see the report), so the
    # check is run on the decoded PDU directly.
    raw = associate_pdu(False, [app_context(), ac_context(1), default_user()], version=2)
    body = raw[6:]
    event = Event("associate_ac", view=None, sender="acceptor", frame=2,
                  pdu=Pdu(0x02, len(body), body, 2, 0.0, 2, 0), params=decode_associate(body, False))
    seen = []
    protocol_version(lambda detail, **_: seen.append(detail), event)
    assert seen == ["A-ASSOCIATE-AC protocol version is 0x0002; bit 0 must be set (protocol version 1)"]
    good = associate_pdu(False, [app_context(), ac_context(1), default_user()])[6:]
    event.pdu, seen[:] = Pdu(0x02, len(good), good, 2, 0.0, 2, 0), []
    protocol_version(lambda detail, **_: seen.append(detail), event)
    assert seen == []


def test_ul_004_pdu_longer_than_receiver_maximum(tmp_path):
    # The requestor can receive at most 1000 bytes; each C-STORE-RQ data set comes in one larger PDU.
    exchanges = retrieve(instances=2)
    exchanges[0] = ("c", associate(True, CONTEXTS, roles=[(CT, 0, 1)], max_pdu=1000))
    analysis = analyze_exchanges(tmp_path, exchanges)
    found = findings(analysis, "UL-004")
    assert len(found) == 2  # one per message, not per PDU
    assert all(f.peer == ACCEPTOR and f.severity == "error" for f in found)
    assert "exceeds the Maximum Length 1000 the requestor announced" in found[0].detail


def _oversized_then_cut(cut_at: int | None, then: list[tuple[str, bytes]]):
    """A retrieve in which the acceptor's first C-STORE-RQ goes in one P-DATA-TF of PDU-length
    131798 (the requestor announced 16384), of which only ``cut_at`` bytes are sent (None: all)."""
    exchanges = retrieve(instances=1)
    body = struct.pack(">IBB", 131792 + 2, 3, 0x02) + bytes(131792)  # one data PDV filling the PDU
    oversized = pdu(0x04, body)
    assert len(oversized) == 131798 + 6
    store = exchanges.index(next(e for e in exchanges if e[0] == "s" and e[1][0] == 0x04))
    head = exchanges[:store] + [exchanges[store]]  # the C-STORE-RQ command set, then its data set
    return head + [("s", oversized if cut_at is None else oversized[:cut_at])] + then


def _frame_of_byte(analysis_path, side_payload_prefix: bytes) -> int:
    from scapy.utils import rdpcap
    for number, packet in enumerate(rdpcap(str(analysis_path)), 1):
        payload = bytes(packet["TCP"].payload)
        if payload.startswith(side_payload_prefix):
            return number
    raise AssertionError("no such segment")


@pytest.mark.parametrize("cut_at", [6, 12, 20000, None])
def test_ul_004_from_the_header_even_if_the_pdu_never_completes(tmp_path, cut_at):
    # The requestor (like DCMTK) aborts on reading the header; the stream ends before the PDU does.
    exchanges = _oversized_then_cut(cut_at, [("c", abort(0, 0))])
    analysis = analyze_exchanges(tmp_path, exchanges)
    found = findings(analysis, "UL-004")
    assert len(found) == 1, [(f.rule, f.detail) for f in analysis.findings]
    (finding,) = found
    assert finding.peer == ACCEPTOR and finding.severity == "error"
    assert "PDU-length 131798 exceeds the Maximum Length 16384 the requestor announced" in finding.detail
    header_frame = _frame_of_byte(tmp_path / "rule.pcap", b"\x04\x00" + struct.pack(">I", 131798))
    assert finding.frame == header_frame
    complete = cut_at is None
    assert ("never arrived" in finding.detail) is not complete
    truncated = [p for p in analysis.rows("problems") if p["code"] == "CAPTURE-TRUNCATED"]
    assert bool(truncated) is not complete  # the truncation stays reported too


def test_ul_004_when_a_hole_cuts_the_oversized_pdu(tmp_path):
    exchanges = _oversized_then_cut(None, [("c", abort(0, 0))])
    packets = conversation_packets(exchanges)
    header = b"\x04\x00" + struct.pack(">I", 131798)
    start = next(i for i, p in enumerate(packets) if bytes(p["TCP"].payload).startswith(header))
    del packets[start + 5]  # a segment in the middle of the PDU was never captured
    from scapy.utils import wrpcap
    wrpcap(str(tmp_path / "hole.pcap"), packets)
    analysis = trace_analyzer.analyze(str(tmp_path / "hole.pcap"))
    (finding,) = findings(analysis, "UL-004")
    assert finding.frame == start + 1 and "never arrived" in finding.detail
    assert any(p["code"] == "CAPTURE-HOLE" for p in analysis.rows("problems"))


def test_ul_004_is_reported_at_the_frame_of_the_header(tmp_path):
    # PDUs that span many segments and complete: each finding names the segment where its PDU began.
    exchanges = retrieve(instances=2)
    exchanges[0] = ("c", associate(True, CONTEXTS, roles=[(CT, 0, 1)], max_pdu=1000))
    # 116 bytes a segment: the C-STORE-RQ command PDU fills one, its data PDU begins the next.
    analysis = analyze_exchanges(tmp_path, exchanges, mss=116)
    from scapy.utils import rdpcap
    starts = [number for number, packet in enumerate(rdpcap(str(tmp_path / "rule.pcap")), 1)
              if bytes(packet["TCP"].payload)[:2] == b"\x04\x00"
              and struct.unpack(">I", bytes(packet["TCP"].payload)[2:6])[0] > 1000]
    found = findings(analysis, "UL-004")
    assert len(found) == 2 and all(f.frame in starts for f in found)
    ends = {m["frame"] for m in analysis.rows("messages")}
    assert not any(f.frame in ends for f in found)  # not where the PDU (or its message) ended


# -- user information -------------------------------------------------------------------------------


def test_ul_005_no_max_length_item(tmp_path):
    rq = associate_pdu(True, [app_context(), rq_context(1, PATIENT_ROOT_GET, IMPLICIT),
                              rq_context(3, CT, IMPLICIT),
                              user_info(item(0x52, b"1.2.3.4.5"), role(CT, 0, 1))])
    six_bytes = item(0x51, struct.pack(">IH", 16384, 0))
    ac = associate_pdu(False, [app_context(), ac_context(1), ac_context(3),
                               user_info(six_bytes, item(0x52, b"1.2.3.4.5"), role(CT, 0, 1))])
    found = findings(analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac)), "UL-005")
    assert [f.peer_side for f in found] == ["requestor", "acceptor"]
    assert "has no Maximum Length sub-item (0x51)" in found[0].detail
    assert "gives 0x51 item-length 6" in found[1].detail and found[1].peer_role == "association acceptor"


def test_ul_006_two_implementation_class_uids(tmp_path):
    ac = standard_ac(item(0x52, b"1.2.3.4.6"))
    finding = only(analyze_exchanges(tmp_path, with_association(ac=ac)), "UL-006")
    assert finding.peer == ACCEPTOR and "has 2 Implementation Class UID sub-items" in finding.detail


def test_ul_007_version_name_too_long(tmp_path):
    rq = standard_rq(item(0x55, b"A" * 17))
    finding = only(analyze_exchanges(tmp_path, with_association(rq=rq)), "UL-007")
    assert finding.peer == REQUESTOR
    assert "2 Implementation Version Name sub-items" in finding.detail and "17 characters" in finding.detail


# -- presentation contexts -----------------------------------------------------------------------------


def test_ul_008_even_context_id(tmp_path):
    rq = standard_rq(contexts=[rq_context(1, PATIENT_ROOT_GET, IMPLICIT), rq_context(3, CT, IMPLICIT),
                               rq_context(4, MR, IMPLICIT), rq_context(3, MR, IMPLICIT)])
    ac = standard_ac(contexts=[ac_context(1), ac_context(3), ac_context(4, 3)])
    finding = only(analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac)), "UL-008")
    assert finding.peer == REQUESTOR and finding.frame == 4
    assert "even or zero presentation context ID 4" in finding.detail
    assert "ID 3 proposed more than once" in finding.detail


def test_ul_009_context_sub_items(tmp_path):
    rq = standard_rq(contexts=[rq_context(1, PATIENT_ROOT_GET, IMPLICIT), rq_context(3, CT, IMPLICIT),
                               rq_context(5, None, IMPLICIT), rq_context(7, MR)])
    ac = standard_ac(contexts=[ac_context(1), ac_context(3), ac_context(5, 3), ac_context(7, 4)])
    finding = only(analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac)), "UL-009")
    assert "context 5 has 0 abstract and 1 transfer" in finding.detail
    assert "context 7 has 1 abstract and 0 transfer" in finding.detail


def test_ul_010_context_answers(tmp_path):
    ac = standard_ac(contexts=[ac_context(1), ac_context(1), ac_context(9, 3)])
    finding = only(analyze_exchanges(tmp_path, with_association(ac=ac)), "UL-010")
    assert finding.peer == ACCEPTOR
    assert "no answer for context 3" in finding.detail and "several answers for context 1" in finding.detail
    assert "never-proposed context 9" in finding.detail


def test_ul_011_result_out_of_range(tmp_path):
    ac = standard_ac(contexts=[ac_context(1), ac_context(3, 7)])
    finding = only(analyze_exchanges(tmp_path, with_association(ac=ac)), "UL-011")
    assert "7 (context 3)" in finding.detail and finding.peer_side == "acceptor"


def test_ul_012_transfer_syntax_not_offered(tmp_path):
    ac = standard_ac(contexts=[ac_context(1), ac_context(3, 0, EXPLICIT)])
    finding = only(analyze_exchanges(tmp_path, with_association(ac=ac)), "UL-012")
    assert f"context 3 accepts {EXPLICIT}, offered only {IMPLICIT}" in finding.detail


def test_ul_013_implicit_vr_never_offered(tmp_path):
    rq = standard_rq(contexts=[rq_context(1, PATIENT_ROOT_GET, IMPLICIT), rq_context(3, CT, EXPLICIT),
                               rq_context(5, MR, EXPLICIT), rq_context(7, MR, IMPLICIT)])
    ac = standard_ac(contexts=[ac_context(1), ac_context(3, 0, EXPLICIT), ac_context(5, 0, EXPLICIT),
                               ac_context(7)])
    analysis = analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac))
    finding = only(analysis, "UL-013")
    assert finding.severity == "warning" and finding.peer == REQUESTOR
    assert CT in finding.detail and MR not in finding.detail  # MR has an implicit context (7)


# -- fixed part, item order, negotiation --------------------------------------------------------------


def test_ul_014_blank_calling_ae(tmp_path):
    rq = associate_pdu(True, [app_context(), rq_context(1, PATIENT_ROOT_GET, IMPLICIT),
                              rq_context(3, CT, IMPLICIT), default_user(role(CT, 0, 1))], calling=b" " * 16)
    ac = standard_ac(calling=b" " * 16)
    found = findings(analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac)), "UL-014")
    assert [f.peer_side for f in found] == ["requestor", "acceptor"]
    assert "Calling AE title is 16 spaces" in found[0].detail


def test_ul_015_ac_changes_reserved_bytes(tmp_path):
    ac = standard_ac(called=b"OTHER", reserved=b"\x01" + bytes(31))
    finding = only(analyze_exchanges(tmp_path, with_association(ac=ac)), "UL-015")
    assert finding.severity == "warning" and finding.peer == "QRSCP @ 127.0.0.2:11112"
    assert "Called AE title 'OTHER' (RQ 'QRSCP')" in finding.detail
    assert "reserved bytes 43-74" in finding.detail


def test_ul_016_application_context(tmp_path):
    rq = associate_pdu(True, [rq_context(1, PATIENT_ROOT_GET, IMPLICIT), rq_context(3, CT, IMPLICIT),
                              default_user(role(CT, 0, 1))])
    ac = associate_pdu(False, [app_context("1.2.3"), ac_context(1), ac_context(3),
                               default_user(role(CT, 0, 1))])
    found = findings(analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac)), "UL-016")
    assert [f.peer_side for f in found] == ["requestor", "acceptor"]
    assert "has 0 Application Context items" in found[0].detail
    assert found[0].severity == "error"
    assert "'1.2.3'" in found[1].detail and found[1].severity == "warning"


def test_ul_017_items_out_of_order(tmp_path):
    rq = associate_pdu(True, [app_context(), default_user(role(CT, 0, 1)),
                              rq_context(1, PATIENT_ROOT_GET, IMPLICIT), rq_context(3, CT, IMPLICIT)])
    ac = associate_pdu(False, [app_context(), ac_context(1),
                               item(0x21, bytes([3, 0, 0, 0]) + item(0x40, IMPLICIT.encode())),
                               default_user(role(CT, 0, 1))])
    finding = only(analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac)), "UL-017")
    assert finding.peer == REQUESTOR and "item 0x20 follows item 0x50" in finding.detail


def test_ul_017_sub_items_out_of_order(tmp_path):
    swapped = item(0x20, bytes([3, 0, 0, 0]) + item(0x40, IMPLICIT.encode()) + item(0x30, CT.encode()))
    rq = standard_rq(contexts=[rq_context(1, PATIENT_ROOT_GET, IMPLICIT), swapped])
    finding = only(analyze_exchanges(tmp_path, with_association(rq=rq)), "UL-017")
    assert "in context 3 sub-item 0x30 follows 0x40" in finding.detail


def test_ul_018_ac_answers_what_was_not_asked(tmp_path):
    service = "1.2.840.10008.4.2"
    common = item(0x57, struct.pack(">H", len(CT)) + CT.encode() + struct.pack(">H", len(service))
                  + service.encode() + struct.pack(">H", 0))
    ac = standard_ac(window(1, 1), role(MR, 0, 1), common)
    analysis = analyze_exchanges(tmp_path, with_association(ac=ac))
    finding = only(analysis, "UL-018")
    assert findings(analysis, "UL-034") == []  # the 0x57 item itself is well formed
    assert finding.peer == ACCEPTOR
    for text in ("(0x57)", "Asynchronous Operations Window (0x53) although the RQ had none",
                 f"role selection (0x54) for {MR}"):
        assert text in finding.detail


def test_ul_019_ac_raises_a_role(tmp_path):
    ac = associate_pdu(False, [app_context(), ac_context(1), ac_context(3), default_user(role(CT, 1, 1))])
    finding = only(analyze_exchanges(tmp_path, with_association(ac=ac)), "UL-019")
    assert f"SCU-role for {CT}" in finding.detail and finding.peer_side == "acceptor"


def test_ul_020_two_role_items_for_one_class(tmp_path):
    rq = standard_rq(role(CT, 1, 1), window(1, 1), window(2, 2))
    finding = only(analyze_exchanges(tmp_path, with_association(rq=rq)), "UL-020")
    assert finding.peer == REQUESTOR
    assert "2 Asynchronous Operations Window items" in finding.detail
    assert f"several role selection (0x54) items for {CT}" in finding.detail


def test_ul_021_ac_window_larger_than_offered(tmp_path):
    rq = standard_rq(window(2, 1))
    ac = standard_ac(window(0, 1))
    finding = only(analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac)), "UL-021")
    assert "max operations invoked 0 (RQ 2)" in finding.detail and "performed" not in finding.detail


def test_ul_021_smaller_window_is_fine(tmp_path):
    analysis = analyze_exchanges(tmp_path, with_association(rq=standard_rq(window(2, 0)),
                                                            ac=standard_ac(window(1, 5))))
    assert findings(analysis, "UL-021") == [] and findings(analysis, "UL-018") == []


def test_ul_022_reject_reason_not_defined(tmp_path):
    exchanges = [("c", associate(True, CONTEXTS)), ("s", pdu(0x03, bytes([0, 1, 1, 5])))]
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-022")
    assert finding.peer == ACCEPTOR and "Reason 5 for source 1 (defined: 1, 2, 3, 7)" in finding.detail


def test_ul_023_abort_source_and_reason(tmp_path):
    reserved_source = retrieve(instances=1)[:-2] + [("c", abort(source=1))]
    finding = only(analyze_exchanges(tmp_path, reserved_source), "UL-023")
    assert finding.peer == REQUESTOR and "Source is 1" in finding.detail
    reserved_reason = retrieve(instances=1)[:-2] + [("s", abort(source=2, reason=3))]
    finding = only(analyze_exchanges(tmp_path, reserved_reason, name="reason.pcap"), "UL-023")
    assert finding.peer == ACCEPTOR and "Reason 3" in finding.detail


# -- sequence, release, abort ------------------------------------------------------------------------


def test_ul_024_data_before_the_association_is_accepted(tmp_path):
    exchanges = retrieve(instances=1)
    exchanges[1], exchanges[2] = exchanges[2], exchanges[1]  # C-GET-RQ before the AC
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-024")  # once, though the RQ takes 2 PDUs
    assert finding.peer == REQUESTOR and "P-DATA-TF before any A-ASSOCIATE-AC" in finding.detail


def test_ul_024_data_after_release(tmp_path):
    exchanges = retrieve(instances=1) + [("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0)))]
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-024")
    assert finding.peer == ACCEPTOR and "acceptor sent P-DATA-TF after the association was released" \
        in finding.detail


def test_ul_024_data_after_own_release_request(tmp_path):
    exchanges = retrieve(instances=1)
    exchanges.insert(-1, ("c", c_store_rsp(100, 0, "1.2.3.4.1")))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-024")
    assert finding.peer == REQUESTOR and "sent P-DATA-TF after its own A-RELEASE-RQ" in finding.detail


def test_ul_024_release_receiver_may_still_send_data(tmp_path):
    # The C-GET SCP answers after the requestor's A-RELEASE-RQ (state Sta8 allows it);
    # that release is early (UL-036), but the data itself is in sequence.
    exchanges = retrieve(instances=1)
    final = exchanges.pop(-3)
    exchanges.insert(-1, final)
    analysis = analyze_exchanges(tmp_path, exchanges)
    assert findings(analysis, "UL-024") == [] and len(findings(analysis, "UL-036")) == 1


def test_ul_035_acceptor_releases(tmp_path):
    exchanges = retrieve(instances=1)[:-2] + [("s", release_rq()), ("c", release_rp())]
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-035")
    assert finding.peer == ACCEPTOR and finding.peer_role == "association acceptor"


def test_ul_036_release_with_get_outstanding(tmp_path):
    exchanges = retrieve(get_id=5, instances=2)[:6] + [("c", release_rq()), ("s", release_rp())]
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-036")
    assert finding.peer == REQUESTOR and finding.message_id == 5
    assert "C-GET 5 without a final response" in finding.detail


def test_ul_037_abort_with_get_outstanding(tmp_path):
    exchanges = retrieve(get_id=9, instances=3)[:6] + [("c", abort())]
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-037")
    assert finding.peer == REQUESTOR and finding.peer_role == "C-GET SCU" and finding.message_id == 9
    assert "C-GET 9 had no final response (1 Pending responses and 1 sub-operations seen)" in finding.detail
    assert finding.frame == len(conversation_packets(exchanges))  # the A-ABORT's frame, the last one


def test_ul_037_abort_by_the_scp(tmp_path):
    exchanges = retrieve(get_id=9, instances=3)[:4] + [("s", abort(source=2, reason=0))]
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-037")
    assert finding.peer == ACCEPTOR and finding.peer_role == "C-GET SCP"


# -- P-DATA-TF and PDVs --------------------------------------------------------------------------------


def test_ul_025_pdv_runs_past_the_pdu(tmp_path):
    bad = pdu(0x04, struct.pack(">IBB", 50, 1, 3) + b"\x00" * 8)
    exchanges = retrieve(instances=1)
    exchanges.insert(-2, ("c", bad))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-025")
    assert finding.peer == REQUESTOR and "runs past the end of the PDU" in finding.detail


def test_ul_025_pdv_too_short(tmp_path):
    exchanges = retrieve(instances=1)
    exchanges.insert(-2, ("c", pdu(0x04, struct.pack(">IBB", 1, 1, 3))))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-025")
    assert "less than 2" in finding.detail


def test_ul_026_context_not_accepted(tmp_path):
    exchanges = retrieve(instances=1)
    exchanges[1] = ("s", associate(False, [(1, PATIENT_ROOT_GET, 0), (3, CT, 3)], roles=[(CT, 0, 1)]))
    analysis = analyze_exchanges(tmp_path, exchanges)
    found = findings(analysis, "UL-026")
    # The C-STORE-RQ (command and data set PDUs: one finding) and the C-STORE-RSP on context 3.
    assert [f.peer_side for f in found] == ["acceptor", "requestor"]
    assert "presentation context 3, which the A-ASSOCIATE-AC did not accept" in found[0].detail


def test_ul_027_odd_fragment(tmp_path):
    command = get_command()
    exchanges = replace_get_rq(retrieve(instances=1), p_data(pdv(1, 1, command[:11])),
                               p_data(pdv(1, 3, command[11:])), p_data(pdv(1, 2, get_identifier())))
    analysis = analyze_exchanges(tmp_path, exchanges)
    finding = only(analysis, "UL-027")  # the second fragment is odd too, same message
    assert finding.peer == REQUESTOR and "is 11 bytes long (item-length 13)" in finding.detail
    assert analysis.c_gets[0].MessageID == 1  # the message still assembles


def test_ul_028_empty_fragment(tmp_path):
    exchanges = replace_get_rq(retrieve(instances=1), p_data(pdv(1, 3, get_command())),
                               p_data(pdv(1, 0, b"")), p_data(pdv(1, 2, get_identifier())))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-028")
    assert "item-length 2 (MCH 0x00" in finding.detail


def test_ul_029_reserved_mch_bits(tmp_path):
    exchanges = replace_get_rq(retrieve(instances=1), p_data(pdv(1, 0x13, get_command())),
                               p_data(pdv(1, 0x02, get_identifier())))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-029")
    assert finding.severity == "warning" and "0x13" in finding.detail


def test_ul_030_new_message_before_data_set_complete(tmp_path):
    exchanges = retrieve(instances=2)
    store_command = command_set({0x0002: CT, 0x0100: 0x0001, 0x0110: 100, 0x0700: 0, 0x0800: 0x0001,
                                 0x1000: "1.2.3.4.1"})
    index = next(i for i, (_, data) in enumerate(exchanges) if data == c_store_rq(100, "1.2.3.4.1"))
    exchanges[index] = ("s", p_data(pdv(3, 1, store_command[:20])) + p_data(pdv(3, 3, store_command[20:]))
                        + p_data(pdv(3, 0, bytes(100))) + c_get_rsp(1, 0xFF00, (1, 0, 0, 0)))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-030")
    assert finding.peer == ACCEPTOR and "after 1 fragments of the previous data set" in finding.detail


def test_ul_030_two_messages_in_one_pdu(tmp_path):
    exchanges = retrieve(instances=2)
    index = next(i for i, (_, data) in enumerate(exchanges) if data == c_store_rsp(100, 0, "1.2.3.4.1"))
    response = command_set({0x0002: CT, 0x0100: 0x8001, 0x0120: 100, 0x0800: 0x0101, 0x0900: 0,
                            0x1000: "1.2.3.4.1"})
    cancel = command_set({0x0100: 0x0FFF, 0x0120: 1, 0x0800: 0x0101})
    exchanges[index] = ("c", p_data(pdv(3, 3, response), pdv(1, 3, cancel)))
    analysis = analyze_exchanges(tmp_path, exchanges)
    finding = only(analysis, "UL-030")
    assert finding.peer == REQUESTOR and "PDVs of two messages" in finding.detail
    assert findings(analysis, "UL-032") == []  # the adjacency is the mix, reported once


def test_ul_031_fragments_on_two_contexts(tmp_path):
    exchanges = replace_get_rq(retrieve(instances=1), p_data(pdv(1, 3, get_command())),
                               p_data(pdv(3, 2, get_identifier())))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-031")
    assert "data fragment on context 3 belongs to a message whose command set used context 1" \
        in finding.detail


def test_ul_031_command_fragments_on_two_contexts(tmp_path):
    command = get_command()
    exchanges = replace_get_rq(retrieve(instances=1), p_data(pdv(1, 1, command[:20])),
                               p_data(pdv(3, 3, command[20:])), p_data(pdv(1, 2, get_identifier())))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-031")
    assert "command fragment on context 3 continues a command set begun on context 1" in finding.detail


def test_ul_032_adjacent_command_pdvs(tmp_path):
    command = get_command()
    exchanges = replace_get_rq(retrieve(instances=1),
                               p_data(pdv(1, 1, command[:20]), pdv(1, 3, command[20:])),
                               p_data(pdv(1, 2, get_identifier())))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-032")
    assert finding.severity == "warning" and "Two adjacent command PDVs" in finding.detail


def test_ul_033_data_before_last_command_fragment(tmp_path):
    command = get_command()
    exchanges = replace_get_rq(retrieve(instances=1), p_data(pdv(1, 1, command[:20])),
                               p_data(pdv(1, 0, get_identifier()[:8])), p_data(pdv(1, 3, command[20:])),
                               p_data(pdv(1, 2, get_identifier())))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-033")
    assert "arrives before the last fragment of the command set" in finding.detail


def test_ul_033_data_after_command_without_data_set(tmp_path):
    exchanges = retrieve(instances=1)
    index = next(i for i, (_, data) in enumerate(exchanges) if data == c_store_rsp(100, 0, "1.2.3.4.1"))
    exchanges.insert(index + 1, ("c", p_data(pdv(3, 2, b"\x08\x00\x18\x00\x00\x00\x00\x00"))))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-033")
    assert finding.peer == REQUESTOR and "whose (0000,0800) is 0x0101" in finding.detail


def test_ul_033_announced_data_set_missing(tmp_path):
    exchanges = retrieve(instances=1)
    get_without_identifier = p_data(pdv(1, 3, get_command()))
    exchanges = replace_get_rq(exchanges, get_without_identifier, c_cancel(1))
    finding = only(analyze_exchanges(tmp_path, exchanges), "UL-033")
    assert "(0000,0800) = 0x0001 announced a data set, but the next fragment (context 1) is a command" \
        in finding.detail


# -- UIDs in items ----------------------------------------------------------------------------------------


def test_ul_034_padded_and_malformed_uids(tmp_path):
    rq = standard_rq(contexts=[rq_context(1, PATIENT_ROOT_GET, IMPLICIT + "\x00"),
                               rq_context(3, CT, IMPLICIT), rq_context(5, "1.2.03", IMPLICIT),
                               rq_context(7, "1..2", IMPLICIT)])
    ac = standard_ac(contexts=[ac_context(1), ac_context(3), ac_context(5, 3, "bad"), ac_context(7, 3)])
    analysis = analyze_exchanges(tmp_path, with_association(rq=rq, ac=ac))
    finding = only(analysis, "UL-034")  # the AC's "bad" syntax is on a rejected context: not tested
    assert finding.peer == REQUESTOR
    for text in ("transfer syntax of context 1 '1.2.840.10008.1.2\\x00' is padded", "leading zero",
                 "empty component"):
        assert text in finding.detail


@pytest.mark.filterwarnings("ignore:The value length")
def test_ul_034_long_uid_in_role_item(tmp_path):
    long_uid = "1." + "2" * 70
    rq = standard_rq(role(long_uid, 0, 1))
    finding = only(analyze_exchanges(tmp_path, with_association(rq=rq)), "UL-034")
    assert "role selection SOP class" in finding.detail and "72 characters long" in finding.detail


def test_ul_003_from_a_capture(tmp_path):
    """A wrong protocol version at a stream start seen from its SYN is still decoded and judged."""
    from builders import retrieve

    exchanges = retrieve(instances=1)
    request = bytearray(exchanges[0][1])
    request[7] = 2  # protocol version 0x0002: bit 0 clear
    exchanges[0] = ("c", bytes(request))
    analysis = analyze_exchanges(tmp_path, exchanges)
    [finding] = findings(analysis, "UL-003")
    assert finding.peer_side == "requestor" and "0x0002" in finding.detail
    assert analysis.rows("associations")[0]["calling_ae"] == "GETSCU"


def test_ul_001_names_the_sender(tmp_path):
    from builders import retrieve

    exchanges = retrieve(instances=1)
    exchanges.insert(3, ("s", b"\x09\x00\x00\x00\x00\x04abcd"))  # PDU type 0x09 from the acceptor
    [finding] = findings(analyze_exchanges(tmp_path, exchanges), "UL-001")
    assert finding.peer_side == "acceptor" and finding.peer == "QRSCP @ 127.0.0.2:11112"


def test_pdv_rules_switch_off_one_by_one(tmp_path):
    # UL-004 and UL-025..033 are judged in one pass; each is still its own rule for levels.
    command = get_command()
    exchanges = replace_get_rq(retrieve(instances=1), p_data(pdv(1, 1, command[:11])),
                               p_data(pdv(1, 3, command[11:])), p_data(pdv(1, 0x06, get_identifier())))
    both = analyze_exchanges(tmp_path, exchanges)
    assert findings(both, "UL-027") and findings(both, "UL-029")
    without = analyze_exchanges(tmp_path, exchanges, rules={"UL-027": "off"})
    assert findings(without, "UL-027") == []
    assert [f.detail for f in findings(without, "UL-029")] == [f.detail for f in findings(both, "UL-029")]
    lowered = analyze_exchanges(tmp_path, exchanges, rules={"UL-029": "info"})
    assert [f.severity for f in findings(lowered, "UL-029")] == ["info"]
    assert findings(lowered, "UL-027")[0].severity == findings(both, "UL-027")[0].severity
