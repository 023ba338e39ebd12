"""trace-analyzer proxy: real C-GETs relayed on loopback (pynetdicom and DCMTK peers), faults.

The proxy runs as the command a user runs (a child process, ended by SIGINT as Ctrl-C would).
What it analysed live, what it recorded (--write) and what tcpdump captured of the same
exchange on the server's side must agree; tshark must read the recording without a warning
and decode every C-STORE in it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import builders
import tshark_oracle as oracle
from test_tshark_differential import _tcpdump

import trace_analyzer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from samples.capture import free_port  # noqa: E402
from samples.dcmtk import DcmQrScp, run_getscu, wait_listening  # noqa: E402
from samples.instances import all_instances, study_instances, study_uid  # noqa: E402
from samples.pyn import GetRequest, PynScp, ScuConfig, get_identifier, run_get_scu, run_in_threads  # noqa: E402

TRACE_ANALYZER = str(Path(sys.executable).parent / "trace-analyzer")


class RunningProxy:
    def __init__(self, folder: Path, pairs: list[tuple[int, int]], write: bool = True,
                 extra: tuple[str, ...] = ()) -> None:
        self.output = folder / "live.json"
        self.pcapng = folder / "proxy.pcapng" if write else None
        self.listen = [listen for listen, _ in pairs]
        cmd = [TRACE_ANALYZER, "proxy", "--quiet", "--format", "json", "--output", str(self.output)]
        for listen, forward in pairs:
            cmd += ["--listen", str(listen), "--forward", f"127.0.0.1:{forward}"]
        if write:
            cmd += ["--write", str(self.pcapng)]
        self.cmd = cmd + list(extra)
        self.stderr = ""
        self.returncode: int | None = None

    def __enter__(self) -> RunningProxy:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        try:
            for port in self.listen:
                wait_listening(port, timeout=30)
        except Exception:
            self.proc.kill()
            raise
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.3)
        self.proc.send_signal(signal.SIGINT)
        try:
            _, self.stderr = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate(timeout=10)
        self.returncode = self.proc.returncode

    def tables(self) -> dict:
        assert self.returncode == 0, self.stderr
        return json.loads(self.output.read_text())


def _without(tables: dict, columns: tuple[str, ...] = ("capture", "capture_set")) -> dict:
    return {name: [{k: v for k, v in row.items() if k not in columns} for row in rows]
            for name, rows in tables.items()}


#: What must agree between the proxy's recording and a capture of the proxy-server leg: the
#: DICOM content, not where the frames fall (a kernel capture holds ACKs, other ports).
_CONTENT = {
    "associations": ("calling_ae", "called_ae", "requestor_max_pdu", "acceptor_max_pdu", "outcome",
                     "contexts_proposed", "contexts_accepted", "pdus", "messages",
                     "requestor_implementation_version", "acceptor_implementation_version"),
    "operations": ("message_id", "status_hex", "remaining", "completed", "failed", "warning",
                   "pending_responses", "sub_operations", "sub_operations_completed", "errors", "warnings"),
    "sub_operations": ("message_id", "affected_sop_instance_uid", "status_hex", "dataset_bytes"),
    "messages": ("sender", "command", "message_id", "message_id_being_responded_to", "status",
                 "dataset_bytes", "remaining", "completed"),
    "violations": ("rule", "severity", "message_id", "peer_side"),
    "progress": ("status_hex", "remaining", "completed", "failed", "warning"),
    "contexts": ("context_id", "abstract_syntax", "result", "transfer_syntax"),
}


def _content(tables: dict) -> dict:
    return {name: [{c: row[c] for c in columns} for row in tables[name]]
            for name, columns in _CONTENT.items()}


def _check_tshark(path: Path, port: int | list[int], stores: int) -> list[dict]:
    """tshark reads the recording without a warning and its dissector decodes every C-STORE (on
    the server port, or ports, given); the commands it decoded."""
    # Checksums verified too (Wireshark does not by default): a wrong one is an expert error.
    run = subprocess.run([oracle.tshark_path(), "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
                          "-o", "ip.check_checksum:TRUE", "-z", "expert,warn", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    stderr = [line for line in run.stderr.splitlines() if "Running as user" not in line]
    assert stderr == [], stderr
    for word in ("Malformed", "Warns", "Errors"):
        assert word not in run.stdout, run.stdout
    decoded = oracle.decode(str(path), port if isinstance(port, list) else [port])
    assert decoded.returncode == 0, decoded.stderr
    store_requests = [c for c in decoded.commands if c.get("command_field") == 0x0001]
    store_responses = [c for c in decoded.commands if c.get("command_field") == 0x8001]
    assert len(store_requests) == stores and len(store_responses) == stores, (
        len(store_requests), len(store_responses), stores)
    return decoded.commands


def test_pynetdicom_get_through_the_proxy(tmp_path):
    tmp_path.chmod(0o755)
    request = [GetRequest(7, get_identifier("STUDY", StudyInstanceUID=study_uid(1)))]
    with PynScp("GETSCP", all_instances()) as scp:
        direct = run_get_scu("127.0.0.1", scp.port, ScuConfig(), request)
        listen = free_port()
        annotated = tmp_path / "annotated.pcapng"
        with (_tcpdump(tmp_path / "server_leg.pcap", scp.port),
              RunningProxy(tmp_path, [(listen, scp.port)], extra=("--annotate", str(annotated))) as proxy):
            relayed = run_get_scu("127.0.0.1", listen, ScuConfig(), request)
    for key in ("final_status_hex", "c_store_sop_instance_uids", "c_store_statuses_returned", "counters",
                "pending_responses"):
        assert relayed["c_gets"][0][key] == direct["c_gets"][0][key], key
    live = proxy.tables()
    recorded = trace_analyzer.analyze(str(proxy.pcapng)).to_dict()
    assert _without(live) == _without(json.loads(json.dumps(recorded)))
    assert live["operations"][0]["status_hex"] == "0x0000" and live["operations"][0]["completed"] == 5
    kernel = trace_analyzer.analyze(str(tmp_path / "server_leg.pcap")).to_dict()
    assert _content(live) == _content(kernel)
    assert live["problems"] == []
    _check_tshark(proxy.pcapng, scp.port, 5)
    # --annotate: the recording again, the finding and the final status on their frames.
    fields = subprocess.run([oracle.tshark_path(), "-n", "-r", str(annotated), "-Y", "frame.comment", "-T",
                             "fields", "-e", "frame.number", "-e", "frame.comment"], capture_output=True,
                            text=True, timeout=60).stdout
    comments = dict(line.split("\t", 1) for line in fields.splitlines())
    assert "C-GET final status 0x0000" in comments[str(live["operations"][0]["final_frame"])]
    for finding in live["violations"]:
        assert finding["rule"] in comments[str(finding["frame"])]
    # The handshake and close as they happened: SYN, SYN-ACK, ACK first; FINs both ways, last.
    [association] = live["associations"]
    assert association["outcome"] == "released"
    assert association["client"] == f"127.0.0.1:{relayed['client_port']}"
    assert association["server"] == f"127.0.0.1:{scp.port}"


def test_dcmtk_get_through_the_proxy(tmp_path):
    tmp_path.chmod(0o755)
    datasets = study_instances(1)
    keys = {"StudyInstanceUID": study_uid(1)}
    (tmp_path / "scp1").mkdir()
    (tmp_path / "scp2").mkdir()
    with DcmQrScp(tmp_path / "scp1", free_port(), datasets) as scp:  # (-s: it serves one association)
        direct = run_getscu(scp.port, tmp_path / "direct", keys, "STUDY", called_ae=scp.ae_title)
    port = free_port()
    with DcmQrScp(tmp_path / "scp2", port, datasets) as scp:
        listen = free_port()
        with _tcpdump(tmp_path / "server_leg.pcap", port), RunningProxy(tmp_path, [(listen, port)]) as proxy:
            relayed = run_getscu(listen, tmp_path / "relayed", keys, "STUDY", called_ae=scp.ae_title)
    assert relayed["files_written"] == direct["files_written"] == len(datasets)
    received = {p.name: p.read_bytes() for p in (tmp_path / "relayed" / "getscu_out").iterdir()}
    assert received == {p.name: p.read_bytes() for p in (tmp_path / "direct" / "getscu_out").iterdir()}
    live = proxy.tables()
    recorded = json.loads(json.dumps(trace_analyzer.analyze(str(proxy.pcapng)).to_dict()))
    assert _without(live) == _without(recorded)
    kernel = trace_analyzer.analyze(str(tmp_path / "server_leg.pcap")).to_dict()
    assert _content(live) == _content(kernel)
    [operation] = live["operations"]
    assert operation["status_hex"] == relayed["c_gets"][0]["final_status_hex"] == "0x0000"
    assert operation["sub_operations"] == len(datasets)
    _check_tshark(proxy.pcapng, port, len(datasets))


def _storage_client(port: int, reset_after_half: bool) -> None:
    """A Storage SCU on a raw socket: associates, sends a C-STORE-RQ and half its data set, then
    resets the connection (SO_LINGER 0) in the middle of the data set."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(builders.associate(True, [(1, builders.CT, 0)], calling="RESETTER", called="GETSCP"))
        answer = sock.recv(6)
        assert answer[:1] == b"\x02", answer  # A-ASSOCIATE-AC
        command = builders.command_set({0x0002: builders.CT, 0x0100: 0x0001, 0x0110: 1, 0x0700: 0,
                                        0x0800: 0x0000, 0x1000: "1.2.3.4.5.6"})
        half = b"\x08\x00\x16\x00" + struct.pack("<I", 4000) + b"1" * 4000  # no last-fragment bit
        fragment = builders._pdu(0x04, struct.pack(">IBB", len(half) + 2, 1, 0) + half)
        pdus = builders.message(1, command) + fragment
        sock.sendall(pdus)
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _garbage_client(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n" + bytes(range(256)) * 4)
        sock.settimeout(10)
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass


def _refused_client(port: int) -> bool:
    """True when the proxy resets the client whose server refused the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(10)
        try:
            return sock.recv(100) == b""  # a plain close would do too: what matters is the end
        except ConnectionResetError:
            return True


def test_faults_and_twenty_concurrent_associations(tmp_path):
    """While 20 C-GETs run at once through the proxy, one client resets mid-data-set, one sends
    garbage instead of a PDU, and one connects to a listener whose server refuses: every C-GET
    succeeds, and the live analysis and the recording report each fault."""
    refused_port = free_port()  # nothing listens there
    scp = PynScp("GETSCP", all_instances())
    scp.start()
    scp._server.ae.maximum_associations = 30
    try:
        listen, dead = free_port(), free_port()
        with RunningProxy(tmp_path, [(listen, scp.port), (dead, refused_port)]) as proxy:
            barrier = threading.Barrier(20)
            request = [GetRequest(7, get_identifier("STUDY", StudyInstanceUID=study_uid(1)))]
            faults: dict[str, object] = {}

            def faulty() -> dict:
                barrier_started.wait(10)
                _storage_client(listen, True)
                _garbage_client(listen)
                faults["refused"] = _refused_client(dead)
                return {}

            barrier_started = threading.Event()

            def one(number: int):
                def run() -> dict:
                    barrier_started.set()
                    return run_get_scu("127.0.0.1", listen, ScuConfig(calling_ae=f"SCU{number:02d}"), request,
                                       start_barrier=barrier)
                return run

            results = run_in_threads([one(n) for n in range(20)] + [faulty], timeout=120)
    finally:
        scp.stop()
    for result in results[:20]:
        assert result["c_gets"][0]["final_status_hex"] == "0x0000"
        assert result["c_gets"][0]["c_store_subops_received"] == 5
    assert faults["refused"] is True
    live = proxy.tables()
    operations = [o for o in live["operations"] if o["service"] == "C-GET"]
    assert len(operations) == 20 and {o["status_hex"] for o in operations} == {"0x0000"}
    # The client that reset mid-data-set left a C-STORE outside any retrieve, never answered.
    stores = [o for o in live["operations"] if o["service"] == "C-STORE"]
    assert [o["status_category"] for o in stores] == ["Incomplete"], stores
    assert {o["completed"] for o in operations} == {5}
    codes = [p["code"] for p in live["problems"]]
    assert "PROXY-CONNECT-FAILED" in codes and "PROXY-RESET" in codes, live["problems"]
    reset = [p for p in live["problems"] if p["code"] == "PROXY-RESET"]
    assert any("client reset" in p["detail"] for p in reset), reset
    resetter = [a for a in live["associations"] if a["calling_ae"] == "RESETTER"]
    assert len(resetter) == 1 and resetter[0]["outcome"] != "released", resetter
    # The garbage reached the server's port, decoded as DICOM there: reported as a problem.
    garbage = [p for p in live["problems"] if not p["code"].startswith("PROXY-")]
    assert garbage, live["problems"]
    # The recording holds the faults too: its analysis (the servers' ports decoded as DICOM, as
    # the proxy does) agrees, but for the proxy's own notes.
    recorded = trace_analyzer.analyze(str(proxy.pcapng), ports=[scp.port, refused_port]).to_dict()
    recorded = json.loads(json.dumps(recorded))
    for name in ("associations", "operations", "sub_operations", "violations"):
        for one, other in zip(_without(live)[name], _without(recorded)[name], strict=True):
            assert one == other, (name, {k: (v, other[k]) for k, v in one.items() if other[k] != v})
    assert [p for p in _without(live)["problems"] if not p["code"].startswith("PROXY-")] == \
        _without(recorded)["problems"]
    comments = subprocess.run([oracle.tshark_path(), "-n", "-r", str(proxy.pcapng), "-Y", "frame.comment",
                               "-T", "fields", "-e", "frame.comment"], capture_output=True, text=True,
                              timeout=60).stdout
    assert "refused" in comments and "reset the connection" in comments, comments


def test_proxy_usage_errors_are_one_line():
    listen = free_port()
    for args, needle in ((["--listen", "1", "--listen", "2", "--forward", "127.0.0.1:3"], "in pairs"),
                         (["--listen", "x:y", "--forward", "127.0.0.1:3"], "HOST:PORT"),
                         (["--listen", f"127.0.0.1:{listen}", "--listen", f"127.0.0.1:{listen}",
                           "--forward", "127.0.0.1:3", "--forward", "127.0.0.1:4"], "cannot listen")):
        run = subprocess.run([TRACE_ANALYZER, "proxy", "--quiet", *args], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 2, (args, run.stderr)
        lines = [line for line in run.stderr.splitlines() if "listening on" not in line]
        assert len(lines) == 1 and needle in lines[0], (args, run.stderr)


def test_proxy_live_view_in_a_terminal(tmp_path):
    """The proxy on a terminal: the live view shows the relayed C-GET; Ctrl-C ends with the summary."""
    import fcntl
    import os
    import pty
    import re
    import termios

    from test_watch import Screen

    with PynScp("GETSCP", all_instances()) as scp:
        listen = free_port()
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
        env = dict(os.environ, TERM="xterm-256color")
        env.pop("COLUMNS", None)
        proc = subprocess.Popen([TRACE_ANALYZER, "proxy", "--listen", str(listen), "--forward",
                                 f"127.0.0.1:{scp.port}"], stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        screen = Screen(master)
        try:
            wait_listening(listen, timeout=30)
            request = [GetRequest(7, get_identifier("STUDY", StudyInstanceUID=study_uid(1)))]
            truth = run_get_scu("127.0.0.1", listen, ScuConfig(), request)["c_gets"][0]
            assert truth["final_status_hex"] == "0x0000"
            names = ("remaining", "completed", "failed", "warning")
            counters = "".join(rf"\W+{truth['counters'][c] or 0}" for c in names)
            shown = screen.wait_for(re.compile(r"0x0000 Success" + counters), 30)
            assert shown, screen.text[-3000:]
            assert screen.wait_for(re.compile(r"-> 127\.0\.0\.1:\d+: closed"), 30), screen.text[-3000:]
            proc.send_signal(signal.SIGINT)
            assert screen.until_exit(proc, 60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)
    summary = screen.text[screen.text.rindex("Summary\n"):]
    assert re.search(r"C-GETs\s+1: 1 Success", summary), summary[:2000]
