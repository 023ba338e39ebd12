"""Never blame a peer for what the capture lost (issue 17).

A finding is an accusation a user forwards to a vendor. Bytes a capture lost, data in flight
across an A-ABORT, a second final response and an identifier legally cut short must not turn
into findings against a peer that did nothing wrong.
"""

from __future__ import annotations

import builders
import pytest
from builders import CT, PATIENT_ROOT_GET, associate, c_get_rq, c_get_rsp, c_store_rq, c_store_rsp
from rules_helpers import findings
from scapy.utils import rdpcap, wrpcap

import trace_analyzer

CONTEXTS = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]


def _retrieve(instances: int = 2, size: int = 20000) -> list[tuple[str, bytes]]:
    out = [("c", associate(True, CONTEXTS, roles=[(CT, 0, 1)])),
           ("s", associate(False, CONTEXTS, roles=[(CT, 0, 1)])), ("c", c_get_rq(1))]
    for index in range(instances):
        uid = f"1.2.3.4.{index + 1}"
        out += [("s", c_store_rq(100 + index, uid, size=size)), ("c", c_store_rsp(100 + index, 0, uid)),
                ("s", c_get_rsp(1, 0xFF00, (instances - index - 1, index + 1, 0, 0)))]
    out.append(("s", c_get_rsp(1, 0x0000, (None, instances, 0, 0))))
    return out + [("c", builders.release_rq()), ("s", builders.release_rp())]


def _errors(analysis) -> set[tuple[str, str]]:
    return {(f.rule, f.peer_side) for f in analysis.findings if f.severity == "error"}


def test_a_lost_segment_of_a_data_set_blames_nobody(tmp_path):
    packets = builders.conversation_packets(_retrieve())
    # The first C-STORE-RQ's data set spans many segments from the server: lose one in its middle.
    server = [i for i, p in enumerate(packets) if p["IP"].src == builders.SERVER[0]
              and len(bytes(p["TCP"].payload)) == 1460]
    del packets[server[5]]
    wrpcap(str(tmp_path / "lossy.pcap"), packets)
    analysis = trace_analyzer.analyze(str(tmp_path / "lossy.pcap"))
    assert any(p["code"] == "CAPTURE-HOLE" for p in analysis.rows("problems"))
    (operation,) = analysis.rows("operations")
    assert operation["final_status"] == 0x0000 and operation["complete"]
    assert _errors(analysis) == set(), [(f.rule, f.detail) for f in analysis.findings]
    assert not findings(analysis, "GET-SUB-011") and not findings(analysis, "UL-036")
    # What could not be judged says so, and the peer it would have accused is not "conformant".
    unjudged = [p for p in analysis.rows("problems") if p["code"] == "CAPTURE-UNJUDGED"]
    assert unjudged and all("not judged" in p["detail"] for p in unjudged)
    verdicts = {p["ae_title"]: p for p in analysis.rows("peers")}
    accused = {f.peer_side for f in analysis.unjudged if f.severity == "error"}
    if "requestor" in accused:
        assert verdicts["GETSCU"]["verdict"] == "not judged" and verdicts["GETSCU"]["not_judged"]


def test_a_lost_segment_leaves_no_flood_of_problems(tmp_path):
    packets = builders.conversation_packets(_retrieve(instances=1, size=200_000))
    server = [i for i, p in enumerate(packets) if p["IP"].src == builders.SERVER[0]
              and len(bytes(p["TCP"].payload)) == 1460]
    del packets[server[3]]
    wrpcap(str(tmp_path / "lossy.pcap"), packets)
    problems = trace_analyzer.analyze(str(tmp_path / "lossy.pcap")).rows("problems")
    assert len(problems) <= 4, problems  # the hole, and what it cut: not one row per PDV after it


# -- data in flight across an A-ABORT -------------------------------------------------------------


def test_a_pdu_in_flight_when_the_peer_aborts_is_no_fault(tmp_path):
    exchanges = _retrieve(instances=1)
    store = next(i for i, (side, data) in enumerate(exchanges) if side == "s" and data[0] == 0x04
                 and b"1.2.3.4.1" in data)
    # The SCU aborts while the data set is arriving; one more P-DATA-TF from the SCP follows.
    exchanges = exchanges[:store] + [("s", exchanges[store][1][:4000]), ("c", builders.abort(0, 0)),
                                     ("s", exchanges[store][1][4000:])]
    path = tmp_path / "abort.pcap"
    wrpcap(str(path), builders.conversation_packets(exchanges))
    analysis = trace_analyzer.analyze(str(path))
    assert not [f for f in findings(analysis, "UL-024") if f.peer_side == "acceptor"]


def test_a_pdu_sent_by_the_aborting_side_after_its_abort_is_a_fault(tmp_path):
    exchanges = _retrieve(instances=1)
    release = next(i for i, (side, data) in enumerate(exchanges) if data[0] == 0x05)
    exchanges = exchanges[:release] + [("c", builders.abort(0, 0)),
                                       ("c", c_store_rsp(100, 0, "1.2.3.4.1"))]
    path = tmp_path / "after.pcap"
    wrpcap(str(path), builders.conversation_packets(exchanges))
    found = findings(trace_analyzer.analyze(str(path)), "UL-024")
    assert [f.peer_side for f in found] == ["requestor"]


# -- a second final response ------------------------------------------------------------------------


def test_the_first_final_response_is_the_outcome(tmp_path):
    exchanges = _retrieve(instances=1)
    final = exchanges.index(("s", c_get_rsp(1, 0x0000, (None, 1, 0, 0))))
    exchanges.insert(final + 1, ("s", c_get_rsp(1, 0xC000, (None, 0, 1, 0))))
    path = tmp_path / "twice.pcap"
    wrpcap(str(path), builders.conversation_packets(exchanges))
    analysis = trace_analyzer.analyze(str(path))
    (operation,) = analysis.rows("operations")
    assert operation["final_status"] == 0x0000 and operation["completed"] == 1
    assert operation["sub_operations_completed"] == 1
    assert [r["status"] for r in analysis.rows("progress")] == [0xFF00, 0x0000, 0xC000]
    assert findings(analysis, "GET-RSP-004")


# -- a real capture, cut at every point -----------------------------------------------------------

REAL = ["dcmtk_to_dcmtk_success.pcap", "pynetdicom_to_pynetdicom_success.pcap"]


@pytest.mark.parametrize("name", REAL)
def test_losing_any_frame_of_a_real_exchange_accuses_nobody_new(tmp_path, name):
    """Every single frame of a real exchange dropped in turn (command sets, data sets, ACKs
    alike): no error finding against a peer that the whole capture does not also have."""
    source = builders.__file__.rsplit("/", 2)[0] + "/sample_pcaps/" + name
    packets = rdpcap(source)
    baseline = _errors(trace_analyzer.analyze(source))
    new: dict[int, set] = {}
    for index in range(3, len(packets)):  # the handshake kept: a capture that starts later is another case
        path = tmp_path / f"cut{index}.pcap"
        wrpcap(str(path), packets[:index] + packets[index + 1:])
        extra = _errors(trace_analyzer.analyze(str(path))) - baseline
        if extra:
            new[index + 1] = extra
    assert not new, f"frames whose loss made new accusations: {new}"


# -- an identifier legally cut short -----------------------------------------------------------------


def test_identifier_cut_short_after_an_early_refusal_is_no_fault(tmp_path):
    from rules.rsp_builders import data_pdu, rq_command, rsp, session

    # The SCP refuses (A900) after the command; the SCU ends the identifier early at an element
    # boundary, before the Study Instance UID, as PS3.7 9.3.3.4 allows.
    body = [("c", builders.message(1, rq_command(1))), ("s", rsp(1, 0xA900, None, failed_uids=[])),
            ("c", data_pdu(1, builders.identifier(QueryRetrieveLevel="STUDY")))]
    path = tmp_path / "early.pcap"
    wrpcap(str(path), builders.conversation_packets(session(body, with_request=False)))
    analysis = trace_analyzer.analyze(str(path))
    assert not [f for f in analysis.findings if f.rule.startswith("GET-ID-") or f.rule == "GET-RQ-011"]
    (operation,) = analysis.rows("operations")
    assert operation["final_status"] == 0xA900


def test_identifier_without_its_key_and_no_refusal_is_still_a_fault(tmp_path):
    from rules.rsp_builders import rq_command, rsp, session

    body = [("c", builders.message(1, rq_command(1), builders.identifier(QueryRetrieveLevel="STUDY"))),
            ("s", rsp(1, 0x0000, (None, 0, 0, 0)))]
    path = tmp_path / "nokey.pcap"
    wrpcap(str(path), builders.conversation_packets(session(body, with_request=False)))
    assert findings(trace_analyzer.analyze(str(path)), "GET-ID-003")
