"""What captures from the field showed (issue 16): a C-GET that cannot work, an association
abandoned by closing the transport, a requestor nobody answered, an RQ spanning frames."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import builders
from builders import CT, PATIENT_ROOT_GET, associate, c_get_rq, c_get_rsp, retrieve
from fuzz_support import Conversation, feed_frames
from rules_helpers import analyze_exchanges, findings

import trace_analyzer
from trace_analyzer import Analysis, CaptureAnalyzer

ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]


def _frames(exchanges, close: str | None = "c") -> list[bytes]:
    """The conversation's frames; ``close``: who sends the first FIN ("c", "s"), "rst" from the
    client, or None (the capture just ends)."""
    talk = Conversation()
    for side, data in exchanges:
        talk.send(side, data)
    if close == "rst":
        talk.frames.append(talk._emit("c", 0x14))
    elif close is not None:
        other = "s" if close == "c" else "c"
        talk.frames.append(talk._emit(close, 0x11))
        talk.frames.append(talk._emit(other, 0x11))
    return talk.frames


def _analyze(frames) -> Analysis:
    analyzer = CaptureAnalyzer("field")
    feed_frames(analyzer, frames)
    analyzer.finish()
    return Analysis([analyzer], [])


# -- TA-ROLE-001: no SCP role proposed for any storage class ------------------------------------------


def test_no_scp_role_for_any_storage_class_even_unanswered(tmp_path):
    # As go-netdicom does: C-GET and storage contexts, no role selection item; nobody answers.
    exchanges = [("c", associate(True, CONTEXTS))]
    analysis = analyze_exchanges(tmp_path, exchanges)
    (finding,) = findings(analysis, "TA-ROLE-001")
    assert finding.peer_side == "requestor" and finding.severity == "warning"
    assert finding.frame == analysis.rows("associations")[0]["first_frame"]
    assert "no SCP/SCU role selection item" in finding.detail


def test_scp_role_proposed_is_conformant(tmp_path):
    exchanges = [("c", associate(True, CONTEXTS, roles=[(CT, 0, 1)]))]
    assert findings(analyze_exchanges(tmp_path, exchanges), "TA-ROLE-001") == []
    no_storage = [("c", associate(True, [(1, PATIENT_ROOT_GET, 0)]))]
    assert findings(analyze_exchanges(tmp_path, no_storage), "TA-ROLE-001") == []  # GET-ROLE-003's case


def test_role_items_without_the_scp_role(tmp_path):
    exchanges = [("c", associate(True, CONTEXTS, roles=[(CT, 1, 0)]))]
    (finding,) = findings(analyze_exchanges(tmp_path, exchanges), "TA-ROLE-001")
    assert "none with SCP-role = 1" in finding.detail


# -- TA-UL-001: the transport closed without A-RELEASE or A-ABORT ----------------------------------------


def _store_association():
    """An association that does its work, then stops short of the release."""
    return retrieve(instances=1)[:-2]


def test_closed_without_release_by_the_requestor():
    frames = _frames(_store_association(), close="c")
    analysis = _analyze(frames)
    (finding,) = findings(analysis, "TA-UL-001")
    assert finding.peer_side == "requestor" and finding.frame == len(frames) - 1  # its FIN
    assert [a["outcome"] for a in analysis.rows("associations")] == ["closed without release"]


def test_closed_without_release_by_a_reset_or_by_the_acceptor():
    analysis = _analyze(_frames(_store_association(), close="rst"))
    (finding,) = findings(analysis, "TA-UL-001")
    assert finding.peer_side == "requestor"
    frames = _frames(_store_association(), close="s")
    assert [f.peer_side for f in findings(_analyze(frames), "TA-UL-001")] == ["acceptor"]


def test_a_capture_that_merely_ends_is_incomplete_without_finding():
    analysis = _analyze(_frames(_store_association(), close=None))
    assert findings(analysis, "TA-UL-001") == []
    assert [a["outcome"] for a in analysis.rows("associations")] == ["incomplete"]


def test_release_or_abort_then_close_is_conformant():
    released = _analyze(_frames(retrieve(instances=1), close="c"))
    assert findings(released, "TA-UL-001") == []
    assert [a["outcome"] for a in released.rows("associations")] == ["released"]
    aborted = _analyze(_frames(_store_association() + [("c", builders.abort(0, 0))], close="c"))
    assert findings(aborted, "TA-UL-001") == []


def test_a_killed_real_scu_closes_without_release(tmp_path):
    """A real pynetdicom SCU, killed with SIGKILL after associating with a real pynetdicom SCP,
    under tcpdump: the kernel closes its socket, and no A-RELEASE or A-ABORT is ever sent."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification
    from samples.capture import LoopbackCapture, free_port

    port = free_port()
    scp = AE(ae_title="ECHOSCP")
    scp.add_supported_context(Verification)
    server = scp.start_server(("127.0.0.1", port), block=False)
    script = textwrap.dedent(f"""
        import sys, time
        from pynetdicom import AE
        from pynetdicom.sop_class import Verification
        ae = AE(ae_title="KILLED")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", {port}, ae_title="ECHOSCP")
        assert assoc.is_established
        assoc.send_c_echo()
        print("ready", flush=True)
        time.sleep(60)
    """)
    path = tmp_path / "killed.pcap"
    try:
        with LoopbackCapture(path, port):
            child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
            try:
                assert child.stdout.readline().strip() == "ready"
                time.sleep(0.2)
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=10)
            finally:
                if child.poll() is None:
                    child.kill()
            time.sleep(0.5)
    finally:
        server.shutdown()
    analysis = trace_analyzer.analyze(str(path))
    (association,) = analysis.rows("associations")
    assert association["outcome"] == "closed without release"
    (finding,) = findings(analysis, "TA-UL-001")
    assert finding.peer_side == "requestor" and "KILLED" in finding.peer
    assert [m["command"] for m in analysis.rows("messages")] == ["C-ECHO-RQ", "C-ECHO-RSP"]


# -- verdicts and first frames ---------------------------------------------------------------------------


def test_a_requestor_nobody_answered_is_not_exercised(tmp_path):
    analysis = analyze_exchanges(tmp_path, [("c", associate(True, CONTEXTS, roles=[(CT, 0, 1)]))])
    assert {p["verdict"] for p in analysis.rows("peers")} == {"not exercised"}


def test_an_answered_requestor_is_judged(tmp_path):
    analysis = analyze_exchanges(tmp_path, retrieve(instances=1))
    assert {p["verdict"] for p in analysis.rows("peers")} == {"conformant"}


def test_times_and_frames_of_an_association_come_from_its_first_frame(tmp_path):
    exchanges = [("c", associate(True, CONTEXTS, roles=[(CT, 0, 1)])),
                 ("s", associate(False, CONTEXTS, roles=[(CT, 0, 1)])), ("c", c_get_rq(1)),
                 ("s", c_get_rsp(1, 0x0000, (None, 0, 0, 0)))]
    analysis = analyze_exchanges(tmp_path, exchanges, mss=100)  # the RQ spans three frames
    (row,) = analysis.rows("associations")
    from scapy.utils import rdpcap
    packets = rdpcap(str(tmp_path / "rule.pcap"))
    assert float(packets[row["first_frame"] - 1].time) == row["start_time"]


# -- other services on the terminal ----------------------------------------------------------------

VERIFICATION, STUDY_ROOT_FIND = "1.2.840.10008.1.1", "1.2.840.10008.5.1.4.1.2.2.1"


def _other_services():
    from builders import command_set, identifier, message

    contexts = [(1, VERIFICATION, 0), (3, CT, 0), (5, STUDY_ROOT_FIND, 0)]
    find_keys = identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="")
    match = identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3")
    return [
        ("c", associate(True, contexts)), ("s", associate(False, contexts)),
        ("c", message(1, command_set({0x0002: VERIFICATION, 0x0100: 0x0030, 0x0110: 1, 0x0800: 0x0101}))),
        ("s", message(1, command_set({0x0002: VERIFICATION, 0x0100: 0x8030, 0x0120: 1, 0x0800: 0x0101,
                                      0x0900: 0x0000}))),
        ("c", message(5, command_set({0x0002: STUDY_ROOT_FIND, 0x0100: 0x0020, 0x0110: 2, 0x0700: 0,
                                      0x0800: 0x0001}), find_keys)),
        ("s", message(5, command_set({0x0002: STUDY_ROOT_FIND, 0x0100: 0x8020, 0x0120: 2, 0x0800: 0x0001,
                                      0x0900: 0xFF00}), match)),
        ("s", message(5, command_set({0x0002: STUDY_ROOT_FIND, 0x0100: 0x8020, 0x0120: 2, 0x0800: 0x0101,
                                      0x0900: 0x0000}))),
        ("c", builders.c_store_rq(3, "1.2.3.9", context_id=3)),
        ("s", builders.c_store_rsp(3, 0x0000, "1.2.3.9", context_id=3)),
        ("c", builders.release_rq()), ("s", builders.release_rp()),
    ]


def test_a_capture_of_other_services_shows_every_message_on_the_terminal(tmp_path):
    path = tmp_path / "services.pcap"
    builders.write_conversation(path, _other_services())
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "trace_analyzer", "analyze", str(path)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    summary = next(line for line in out.splitlines() if line.strip().startswith("messages"))
    for command in ("C-ECHO-RQ", "C-ECHO-RSP", "C-FIND-RQ", "C-FIND-RSP", "C-STORE-RQ", "C-STORE-RSP"):
        assert command in summary
    assert "DIMSE messages (7)" in out
    table = out.split("DIMSE messages (7)", 1)[1]
    assert sum(table.count(c) for c in ("C-ECHO-R", "C-FIND-R", "C-STORE-R")) >= 7


def test_a_plain_retrieve_keeps_the_messages_table_out_of_the_way(tmp_path):
    path = tmp_path / "get.pcap"
    builders.write_conversation(path, retrieve(instances=1))
    result = subprocess.run([sys.executable, "-m", "trace_analyzer", "analyze", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert "DIMSE messages (" not in result.stdout
    assert any(line.strip().startswith("messages") for line in result.stdout.splitlines())
    shown = subprocess.run([sys.executable, "-m", "trace_analyzer", "analyze", str(path), "--all"],
                           capture_output=True, text=True, timeout=60)
    assert "DIMSE messages (" in shown.stdout
