"""trace-analyzer watch: the live view in a pseudo-terminal over a pipe fed slowly, and a live
interface (loopback, through tcpdump) during a real pynetdicom C-GET."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import trace_analyzer
from trace_analyzer.cli import render_text

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_pcaps" / "pynetdicom_to_pynetdicom_success.pcap"
TRACE_ANALYZER = str(Path(sys.executable).parent / "trace-analyzer")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _records(raw: bytes) -> tuple[bytes, list[bytes]]:
    """A little-endian pcap file's header and its records, each with its record header."""
    assert raw[:4] == b"\xd4\xc3\xb2\xa1"
    records, pos = [], 24
    while pos < len(raw):
        caplen = struct.unpack_from("<I", raw, pos + 8)[0]
        records.append(raw[pos:pos + 16 + caplen])
        pos += 16 + caplen
    return raw[:24], records


class Screen:
    """What a process wrote to a pseudo-terminal, escape codes removed."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.raw = b""

    def read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.raw += os.read(self.master, 65536)
            except OSError:  # the other end is closed: the process is gone
                pass

    @property
    def text(self) -> str:
        return _ANSI.sub("", self.raw.decode("utf-8", "replace")).replace("\r", "")

    def wait_for(self, pattern: re.Pattern, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.text)
            if found:
                return found
            self.read(0.1)
        return pattern.search(self.text)

    def until_exit(self, proc: subprocess.Popen, timeout: float) -> int:
        """Keep reading until the process ends (a pty's output must be read, or it blocks)."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            self.read(0.1)
        self.read(0.5)
        return proc.wait(timeout=10)


def test_watch_in_a_terminal_shows_counters_before_the_final_response(tmp_path):
    analysis = trace_analyzer.analyze(str(SAMPLE))
    [operation] = analysis.rows("operations")
    progress = [row for row in analysis.rows("progress") if not row["final"]]
    last_pending = progress[-1]
    head, records = _records(SAMPLE.read_bytes())
    before_final = operation["final_frame"] - 1  # every record before the final C-GET-RSP

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 220, 0, 0))
    env = dict(os.environ, TERM="xterm-256color")
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([TRACE_ANALYZER, "watch", "-"], stdin=subprocess.PIPE, stdout=slave, stderr=slave,
                            env=env)
    os.close(slave)
    screen = Screen(master)
    try:
        proc.stdin.write(head)
        for index, record in enumerate(records[:before_final]):
            proc.stdin.write(record)
            proc.stdin.flush()
            if index % 4 == 0:
                time.sleep(0.05)  # slowly: a few records at a time
            screen.read(0)
        counters = "".join(rf"\W+{last_pending[c]}" for c in ("remaining", "completed", "failed", "warning"))
        shown = screen.wait_for(re.compile(r"pending" + counters), 30)
        assert shown, screen.text[-3000:]
        assert "0x0000 Success" not in screen.text  # the final response is not in yet
        for record in records[before_final:]:
            proc.stdin.write(record)
        proc.stdin.close()
        assert screen.wait_for(re.compile(r"0x0000 Success"), 30), screen.text[-3000:]
        assert screen.until_exit(proc, 60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = screen.text
    summary = text[text.rindex("Summary\n"):].split("\n\n")[0].splitlines()
    expected = render_text(analysis, width=220, max_rows=25).split("\n\n")[0].splitlines()
    assert len(summary) == len(expected) > 4
    for line, wanted in zip(summary, expected, strict=True):
        if line.strip().startswith("captures"):  # "-" against the file's name
            line = line.replace(" - (", " X (")
            wanted = wanted.replace(f" {SAMPLE} (", " X (")
        assert line.rstrip() == wanted.rstrip()


def test_watch_in_a_terminal_shows_a_c_move_climbing_with_its_linked_sub_operations():
    """A C-MOVE's row mid-retrieve: the counters of its latest C-MOVE-RSP, and the C-STOREs
    answered so far on the other association (to the Move Destination), linked by originator."""
    sample = ROOT / "sample_pcaps" / "dcmtk_move_success.pcap"
    analysis = trace_analyzer.analyze(str(sample))
    [move] = analysis.rows("operations")
    pending = [row for row in analysis.rows("progress") if not row["final"]]
    look = pending[2]  # the third pending C-MOVE-RSP: the retrieve half done
    answered = sum(1 for m in analysis.rows("messages") if m["command"] == "C-STORE-RSP"
                   and m["frame"] <= look["frame"])
    assert 0 < answered < move["sub_operations"]
    head, records = _records(sample.read_bytes())

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 220, 0, 0))
    env = dict(os.environ, TERM="xterm-256color")
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([TRACE_ANALYZER, "watch", "-"], stdin=subprocess.PIPE, stdout=slave, stderr=slave,
                            env=env)
    os.close(slave)
    screen = Screen(master)
    try:
        proc.stdin.write(head)
        for index, record in enumerate(records[:look["frame"]]):
            proc.stdin.write(record)
            proc.stdin.flush()
            if index % 4 == 0:
                time.sleep(0.05)
            screen.read(0)
        counters = "".join(rf"\W+{look[c]}" for c in ("remaining", "completed", "failed", "warning"))
        row = re.compile(rf"C-MOVE\W+{move['message_id']}\W+STORESCP\W+pending{counters}"
                         rf"\W+{answered}/0/0\W+{move['sub_operation_associations']}\W+originator\W")
        assert screen.wait_for(row, 30), screen.text[-3000:]
        assert "0x0000 Success" not in screen.text
        for record in records[look["frame"]:]:
            proc.stdin.write(record)
        proc.stdin.close()
        final = re.compile(rf"C-MOVE\W+{move['message_id']}\W+STORESCP\W+0x0000 Success\W+"
                           rf"{move['completed']}\W+0\W+0\W+{move['sub_operations_completed']}/0/0\W")
        assert screen.wait_for(final, 30), screen.text[-3000:]
        assert screen.until_exit(proc, 60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    summary = screen.text[screen.text.rindex("Summary\n"):]
    assert re.search(r"C-MOVEs\s+1: 1 Success", summary), summary[:2000]


def test_watch_stream_tables_equal_analyze(tmp_path):
    """Read from a pipe without a terminal: the tables at the end are analyze's of the file."""
    out = tmp_path / "watch.json"
    with open(SAMPLE, "rb") as stdin:
        run = subprocess.run([TRACE_ANALYZER, "watch", "-", "--format", "json", "--output", str(out)],
                             stdin=stdin, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    watched = json.loads(out.read_text())
    analysed = json.loads(trace_analyzer.analyze(str(SAMPLE)).to_json())
    for name in analysed:
        for row in watched[name] + analysed[name]:
            row.pop("capture", None)
            row.pop("capture_set", None)
        assert watched[name] == analysed[name], name


def test_watch_a_live_interface_through_tcpdump(tmp_path):
    tmp_path.chmod(0o755)
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from samples.instances import all_instances, study_uid
    from samples.pyn import GetRequest, PynScp, ScuConfig, get_identifier, run_get_scu

    out, annotated = tmp_path / "live.json", tmp_path / "live.pcapng"
    with PynScp("GETSCP", all_instances()) as scp:
        proc = subprocess.Popen([TRACE_ANALYZER, "watch", "--interface", "lo", "--port", str(scp.port),
                                 "--quiet", "--format", "json", "--output", str(out), "--annotate",
                                 str(annotated)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            started, seen = time.monotonic(), b""
            while b"listening on" not in seen and time.monotonic() - started < 30:
                ready, _, _ = select.select([proc.stderr], [], [], 0.5)
                if ready:
                    seen += os.read(proc.stderr.fileno(), 4096)
            assert b"listening on" in seen, seen
            time.sleep(0.3)
            request = [GetRequest(9, get_identifier("STUDY", StudyInstanceUID=study_uid(1)))]
            truth = run_get_scu("127.0.0.1", scp.port, ScuConfig(), request)["c_gets"][0]
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            _, rest = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, seen + rest
    tables = json.loads(out.read_text())
    [operation] = tables["operations"]
    assert operation["status_hex"] == truth["final_status_hex"] == "0x0000"
    assert operation["completed"] == truth["counters"]["completed"] == 5
    assert [row["affected_sop_instance_uid"] for row in tables["sub_operations"]] == \
        truth["c_store_sop_instance_uids"]
    # The spooled stream, annotated: the final status on the frame the operations table names.
    from tshark_oracle import tshark_path

    fields = subprocess.run([tshark_path(), "-n", "-r", str(annotated), "-Y", "frame.comment", "-T", "fields",
                             "-e", "frame.number", "-e", "frame.comment"], capture_output=True, text=True,
                            timeout=60).stdout
    comments = dict(line.split("\t", 1) for line in fields.splitlines())
    assert "C-GET final status 0x0000" in comments[str(operation["final_frame"])]


def test_watch_bad_sources_are_one_line_errors():
    run = subprocess.run([TRACE_ANALYZER, "watch", "--interface", "nosuchif0", "--quiet"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "no capture from the capture tool" in run.stderr and "nosuchif0" in run.stderr
    run = subprocess.run([TRACE_ANALYZER, "watch", "-", "--interface", "lo"], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "one of them" in run.stderr
    run = subprocess.run([TRACE_ANALYZER, "watch", "-"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 2 and "standard input is empty" in run.stderr and "Traceback" not in run.stderr


def test_ended_associations_keep_rows_not_decoding_state():
    """What bounds watch's memory over hours: once associations end, no session, connection or
    correlation state is left, only their rows."""
    import threading

    from trace_analyzer.analysis import CaptureAnalyzer
    from trace_analyzer.watch import _feed

    analyzer = CaptureAnalyzer("x", fast_lane=False)
    sample = ROOT / "sample_pcaps" / "interleaved_two_associations.pcap"
    _feed(analyzer, threading.Lock(), str(sample), 0, None)
    whole = trace_analyzer.analyze(str(sample))
    assert len(analyzer.associations) == len(whole.association_records) == 2
    assert len(analyzer.correlator.operations) == len(whole.operation_records) > 0
    assert analyzer._sessions == {} and analyzer._tcp._connections == {} and analyzer.correlator._states == {}
