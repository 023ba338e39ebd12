"""trace_analyzer.safe_text, one sink at a time, and the hex form of wire values that were not
valid text; then the whole command run as a user runs it (a subprocess, a real UTF-8 stdout)
on a capture with a hostile, non-UTF-8 file name."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from hostile_builders import Identity, Strings, capture_bytes

import trace_analyzer
from trace_analyzer.safe_text import (
    content_security_policy,
    css_class,
    for_csv,
    for_html,
    for_plot,
    for_terminal,
    free_text,
    terminal_text,
    wire_value,
)


def test_terminal_shows_controls_as_escapes():
    assert for_terminal("\x1b[2J") == "\\x1b[2J"
    assert for_terminal("\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert for_terminal("AB\b\bC\rD\nE\tF") == "AB\\x08\\x08C\\x0dD\\x0aE\\x09F"
    assert for_terminal("\x9b31m\x85") == "\\x9b31m\\x85"  # C1 controls (CSI, NEL)
    assert for_terminal("abc\u202edef\u2066\u200f") == "abc\\u202edef\\u2066\\u200f"  # bidi
    assert for_terminal("\u2028\ufeff") == "\\u2028\\ufeff"
    assert for_terminal("AE\udcff") == "AE\\xff"  # a byte that was not text
    assert for_terminal("Müller ÄÖ 東京 ok") == "Müller ÄÖ 東京 ok"  # printable text untouched
    assert for_terminal(7) == "7"
    assert terminal_text("a\x1b\nb\r\n") == "a\\x1b\nb\\x0d\n"


def test_html_escapes_text_and_attributes():
    assert for_html('<img src=x onerror="alert(1)">') == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
    assert for_html("' & \"") == "&#x27; &amp; &quot;"
    assert for_html("\u202eevil") == "\\u202eevil"
    assert css_class('x" onclick="y') == "x-onclick-y"
    assert css_class("Non-Conformant") == "non-conformant"


def test_policy_allows_only_the_style_it_names():
    policy = content_security_policy("body{}")
    assert "default-src 'none'" in policy and "script-src 'none'" in policy
    assert "'unsafe-inline'" not in policy and "style-src 'sha256-" in policy
    assert content_security_policy("body{}") != content_security_policy("body{ }")


def test_csv_cells_that_would_be_formulas_are_made_text():
    for value in ('=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\t=1", "\r=1",
                  "=1", "\uff1d1+1", "-", "+", "-1-1", "--1"):
        assert for_csv(value) == "'" + value, value
    for value in ("-5", "+3.25", "-1e5", ".5", "0x0000", "GETSCU", "", "a=b", " =1"):
        assert for_csv(value) == value, value
    for value in (-5, 3.5, None, True):
        assert for_csv(value) == value


def test_plot_labels_never_parse_as_mathtext():
    assert for_plot("$x^2$") == r"\$x^2\$"
    assert for_plot("_hidden") == " _hidden"
    assert for_plot("a\nb") == "a\\x0ab"


def test_bytes_that_were_not_text_keep_their_hex_form():
    assert wire_value(b"AB\xff".decode("ascii", "surrogateescape")) == "0x4142ff"
    assert wire_value("GETSCU") == "GETSCU" and wire_value("Müller") == "Müller"
    assert free_text("x\udcffy") == "x\\xffy"


def _run_json(path: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "trace_analyzer", "analyze", path, "--format", "json"],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_associations_and_messages_give_wire_bytes_in_hex(tmp_path):
    strings = Strings(calling_ae=b"SCU\xff\xfe", called_ae=b"\x1b[2JSCP", rq_version=b"V\x80\x81",
                      instance_uid=b"1.2.\xe9", error_comment=b"bad \xff comment")
    path = tmp_path / "hex.pcap"
    path.write_bytes(capture_bytes(strings))
    data = _run_json(str(path))
    association = data["associations"][0]
    assert association["calling_ae"] == "0x" + b"SCU\xff\xfe".hex()
    assert association["called_ae"] == "\x1b[2JSCP"  # valid text: kept exactly in JSON
    assert association["requestor_implementation_version"] == "0x" + b"V\x80\x81".hex()
    stores = [m for m in data["messages"] if m["command"] == "C-STORE-RQ"]
    assert stores and stores[0]["affected_sop_instance_uid"] == "0x" + b"1.2.\xe9".hex()
    assert data["operations"][0]["error_comment"] == "0x" + b"bad \xff comment".hex()
    assert data["peers"][0]["ae_title"] == association["calling_ae"]  # the tables agree
    peer = [f["peer"] for f in data["violations"] if f["peer_side"] == "requestor"]
    assert all(p.startswith(association["calling_ae"] + " @ ") for p in peer)
    frame = trace_analyzer.analyze(str(path)).associations
    assert frame.calling_ae[0] == association["calling_ae"]


def test_command_line_with_a_hostile_non_utf8_file_name(tmp_path):
    """As a user runs it: a real process whose stdout is UTF-8 (an unescaped byte of the file
    name would stop it with UnicodeEncodeError), every format, one line per message."""
    name = b"<img src=x onerror=alert(1)>\xff\xfe\x1b]0;t\x07=1+1.pcap"
    path = os.fsdecode(os.path.join(os.fsencode(tmp_path), name))
    Path(path).write_bytes(capture_bytes(Strings(calling_ae=b"\x1b]8;;http://x\x07A", identity=Identity(
        3, b"", b"KERBEROS-TICKET-" + b"\x00\x01" * 8))))
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "trace_analyzer", *args], capture_output=True,
                              timeout=120, env=env)

    shown = "\\xff\\xfe\\x1b]0;t\\x07=1+1.pcap"
    for args in (["analyze", path], ["analyze", path, "--all"], ["check", path]):
        result = run(*args)
        assert result.returncode in (0, 1), result.stderr
        text = result.stdout.decode("utf-8")  # strict
        assert shown in text or args[0] == "check"
        assert "\x1b" not in text and "\x07" not in text and b"KERBEROS" not in result.stdout
    csv_folder = tmp_path / "csv"
    result = run("analyze", path, "--format", "csv", "--output", str(csv_folder))
    assert result.returncode == 0 and result.stderr.count(b"\n") == 1, result.stderr
    with open(csv_folder / "captures.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["capture"].endswith("<img src=x onerror=alert(1)>\\xff\\xfe\x1b]0;t\x07=1+1.pcap")
    report = tmp_path / "r.html"
    assert run("analyze", path, "--format", "html", "--output", str(report)).returncode == 0
    text = report.read_text(encoding="utf-8")
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;\\xff\\xfe\\x1b]0;t\\x07" in text
    assert "KERBEROS" not in text
    missing = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"gone\xff\x1b[2J.pcap"))
    result = run("analyze", missing)
    assert result.returncode == 2 and result.stderr.count(b"\n") == 1
    assert b"gone\\xff\\x1b[2J.pcap" in result.stderr and b"\x1b" not in result.stderr


def test_ae_titles_that_differ_in_bytes_stay_distinct_peers(tmp_path):
    """Issue 19 point 5, the output side: calling AEs GETSCU\\xc1 and GETSCU\\xc2 (once both
    decoded to GETSCU\\ufffd and merged) are two peers, and a called AE padded with NULs no
    longer prints like the one padded with spaces."""
    import struct

    from fuzz_support import Conversation
    from hostile_builders import exchanges

    frames = []
    for index, (calling, called) in enumerate([(b"GETSCU\xc1", b"QRSCP"), (b"GETSCU\xc2", b"QRSCP\x00\x00")]):
        conversation = Conversation(client=("10.0.0.1", 40001 + index))
        for side, data in exchanges(Strings(calling_ae=calling, called_ae=called)):
            conversation.send(side, data)
        conversation.close()
        frames += conversation.frames
    path = tmp_path / "peers.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + b"".join(
        struct.pack("<IIII", 1_700_000_000, n, len(f), len(f)) + f for n, f in enumerate(frames)))
    data = _run_json(str(path))
    titles = sorted(p["ae_title"] for p in data["peers"])
    assert titles == ["0x474554534355c1", "0x474554534355c2", "QRSCP", "QRSCP\x00\x00"]
    table = subprocess.run([sys.executable, "-m", "trace_analyzer", "analyze", str(path), "--all"],
                           capture_output=True, text=True, timeout=120).stdout
    assert "QRSCP\\x00\\x00 " in table and "\x00" not in table
