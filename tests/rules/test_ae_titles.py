"""AE titles keep their wire bytes (issue 19): titles that print alike or decode alike are
different peers, shown with visible escapes, and a title with a control character (NUL padding
among them), a backslash or a byte outside the default repertoire is a TA-UL-002 finding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builders import CT, PATIENT_ROOT_GET, associate, retrieve, write_conversation

import trace_analyzer

CLI = [sys.executable, "-m", "trace_analyzer"]


def run(*args, cwd):
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TRACE_ANALYZER_NO_CONFIG")}
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=environment)


def _with_titles(path: Path, called: bytes, calling: bytes) -> None:
    """A whole retrieve whose A-ASSOCIATE-RQ carries these 16-byte AE title fields."""
    exchanges = retrieve(instances=1)
    rq = bytearray(exchanges[0][1])
    rq[10:26], rq[26:42] = called, calling  # after the 6-byte PDU header and 4 bytes of version
    exchanges[0] = ("c", bytes(rq))
    write_conversation(path, exchanges)


def test_ae_titles_that_look_alike_stay_apart_and_are_flagged(tmp_path):
    spaces, nuls = tmp_path / "spaces.pcap", tmp_path / "nuls.pcap"
    _with_titles(spaces, b"QRSCP".ljust(16), b"GETSCU".ljust(16))
    _with_titles(nuls, b"QRSCP".ljust(16, b"\0"), b"GETSCU".ljust(16))
    analysis = trace_analyzer.analyze([str(spaces), str(nuls)])
    acceptors = analysis.peers[analysis.peers.roles.str.contains("acceptor")]
    assert sorted(acceptors.ae_title) == ["QRSCP", "QRSCP" + "\0" * 11]
    assert len(set(acceptors.verdict)) == 1  # the title does not make the SCP guilty
    findings = analysis.violations[analysis.violations.rule == "TA-UL-002"]
    assert findings.capture.tolist() == [str(nuls)] and findings.peer_side.tolist() == ["requestor"]
    assert "Called AE title holds \\x00" in findings.detail.iloc[0]
    text = run("check", spaces, nuls, cwd=tmp_path).stdout
    assert "QRSCP\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00 @ " in text  # visible, not blank
    assert "\0" not in text
    assert "TA-UL-002 [error]" in text


def test_ae_titles_with_different_bytes_are_different_peers(tmp_path):
    first, second = tmp_path / "c1.pcap", tmp_path / "c2.pcap"
    _with_titles(first, b"QRSCP".ljust(16), b"GETSCU\xc1".ljust(16))
    _with_titles(second, b"QRSCP".ljust(16), b"GETSCU\xc2".ljust(16))
    data = json.loads(run("analyze", first, second, "--format", "json", cwd=tmp_path).stdout)
    requestors = sorted(p["ae_title"] for p in data["peers"] if "requestor" in p["roles"])
    assert requestors == ["0x474554534355c1", "0x474554534355c2"]  # the wire bytes, in hex
    details = sorted(v["detail"] for v in data["violations"] if v["rule"] == "TA-UL-002")
    assert len(details) == 2 and "Calling AE title holds \\xc1" in details[0] and "\\xc2" in details[1]
    clean = tmp_path / "clean.pcap"
    write_conversation(clean, retrieve(instances=1))
    assert not [v for v in trace_analyzer.analyze(str(clean)).rows("violations") if v["rule"] == "TA-UL-002"]


def test_a_backslash_or_control_character_in_an_ae_title_is_flagged(tmp_path):
    path = tmp_path / "odd.pcap"
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    assert associate(True, contexts)[10:26] == b"QRSCP".ljust(16)  # where _with_titles writes
    _with_titles(path, b"QR\\SCP".ljust(16), b"GET\x1bSCU".ljust(16))
    details = [v["detail"] for v in trace_analyzer.analyze(str(path)).rows("violations")
               if v["rule"] == "TA-UL-002"]
    assert len(details) == 2
    assert "Called AE title holds \\\\" in details[0] and "Calling AE title holds \\x1b" in details[1]
