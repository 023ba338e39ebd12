"""DCMTK peers: ``dcmqrscp`` as Get SCP and ``getscu`` as Get SCU.

The ground truth for a getscu run is read from getscu's own ``-d`` log (its
dump of the A-ASSOCIATE-AC and of every incoming/outgoing DIMSE message).
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from .capture import ManagedProcess, SampleError, find_tool
from .instances import write_instances
from .pyn import QUERY_MODELS, status_category

TIMEOUT = 30
#: Connection, ACSE and DIMSE timeouts (seconds) for the DCMTK SCU tools.
NETWORK_TIMEOUTS = ("-to", "10", "-ta", "10", "-td", "10")
_DCMTK = "dcmtk"


def dcmtk_version() -> str:
    out = subprocess.run(
        [find_tool("getscu", _DCMTK), "--version"], capture_output=True, text=True, timeout=10
    ).stdout
    match = re.search(r"getscu v(\S+)", out)
    return match.group(1) if match else "unknown"


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Wait for a LISTEN socket on `port` by reading /proc/net/tcp{,6} (no probe connection)."""
    deadline = time.monotonic() + timeout
    needle = f":{port:04X} "
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as fh:
                    for line in fh.readlines()[1:]:
                        fields = line.split()
                        if len(fields) > 3 and (fields[1] + " ").endswith(needle) and fields[3] == "0A":
                            return
            except OSError:
                continue
        time.sleep(0.05)
    raise SampleError(f"nothing listening on port {port} after {timeout}s")


@dataclass
class DcmQrScp:
    """dcmqrscp in single-process mode with its own config and storage area."""

    workdir: Path
    port: int
    datasets: list[Dataset]
    ae_title: str = "QRSCP"
    max_pdu: int = 16384
    proc: ManagedProcess | None = None
    #: Move destinations it knows: (name, AE title, host, port) lines of its HostTable.
    hosts: tuple[tuple[str, str, str, int], ...] = ()

    def start(self) -> None:
        storage = self.workdir / "qrscp_db"
        files = write_instances(storage, self.datasets)
        index = subprocess.run(
            [find_tool("dcmqridx"), str(storage), *map(str, files)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        if index.returncode != 0:
            raise SampleError(f"dcmqridx failed: {index.stdout}{index.stderr}")
        config = self.workdir / "dcmqrscp.cfg"
        config.write_text(
            "\n".join(
                [
                    f"NetworkTCPPort  = {self.port}",
                    f"MaxPDUSize      = {self.max_pdu}",
                    "MaxAssociations = 4",
                    "HostTable BEGIN",
                    *(f"{name} = ({ae}, {host}, {port})" for name, ae, host, port in self.hosts),
                    "HostTable END",
                    "VendorTable BEGIN",
                    "VendorTable END",
                    "AETable BEGIN",
                    # AE title, storage area, access, quota (studies, bytes per study), peers
                    f"{self.ae_title} {storage} RW (50, 64mb) ANY",
                    "AETable END",
                    "",
                ]
            )
        )
        cmd = [find_tool("dcmqrscp", _DCMTK), "-s", "-v", "-dhl", "-c", str(config), str(self.port)]
        self.proc = ManagedProcess(cmd, cwd=self.workdir)
        try:
            wait_listening(self.port)
        except SampleError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    @property
    def log(self) -> str:
        return self.proc.output if self.proc else ""

    def __enter__(self) -> DcmQrScp:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_getscu(
    port: int,
    workdir: Path,
    keys: dict[str, str],
    level: str,
    calling_ae: str = "GETSCU",
    called_ae: str = "QRSCP",
    model: str = "S",
    max_pdu: int = 16384,
    host: str = "127.0.0.1",
    check: bool = True,
) -> dict:
    """Run getscu once (one association, one C-GET); return what getscu reported.

    ``check``: a non-zero exit status is an error (False where the peer is meant to make it fail).
    """
    outdir = workdir / "getscu_out"
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        find_tool("getscu", _DCMTK),
        "-d",
        f"-{model}",
        "-aet",
        calling_ae,
        "-aec",
        called_ae,
        "-pdu",
        str(max_pdu),
        *NETWORK_TIMEOUTS,
        "-k",
        f"QueryRetrieveLevel={level}",
    ]
    for keyword, value in keys.items():
        cmd += ["-k", f"{keyword}={value}"]
    cmd += ["-od", str(outdir), host, str(port)]
    proc = ManagedProcess(cmd, cwd=workdir)
    rc = proc.wait(TIMEOUT)
    log = proc.output
    if rc != 0 and check:
        raise SampleError(f"getscu exited with {rc}: {log[-3000:]}")
    record = parse_getscu_log(log)
    record["exit_status"] = rc
    record["server_port"] = port
    for truth in record["c_gets"]:
        truth["affected_sop_class_uid"] = str(QUERY_MODELS[model])
        truth["query_retrieve_level"] = level
        truth["identifier_keys"] = dict(keys)
    record["files_written"] = len(list(outdir.iterdir()))
    return record


_FIELD = re.compile(r"^D: (?P<key>[A-Za-z][A-Za-z /-]*?)\s*: (?P<value>.*)$")
_PRIORITY = {"low": 2, "medium": 0, "high": 1}


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    return None if text in ("", "none") else int(text)


def dimse_dumps(lines: list[str]) -> list[tuple[str, dict]]:
    """("in" or "out", {field: value}) for each DIMSE message a DCMTK tool dumped with -d."""
    messages: list[tuple[str, dict]] = []
    current: dict | None = None
    direction = ""
    for line in lines:
        if "INCOMING DIMSE MESSAGE" in line or "OUTGOING DIMSE MESSAGE" in line:
            direction = "in" if "INCOMING" in line else "out"
            current = {}
        elif "END DIMSE MESSAGE" in line and current is not None:
            messages.append((direction, current))
            current = None
        elif current is not None:
            m = _FIELD.match(line)
            if m and m.group("key") not in current:
                current[m.group("key")] = m.group("value").strip()
    return messages


def parse_getscu_log(log: str) -> dict:
    """Association parameters and per-C-GET results from a ``getscu -d`` log."""
    lines = log.splitlines()
    assoc: dict = {"client_port": None, "ended_by": None, "c_gets": []}
    in_ac = False
    for line in lines:
        if "BEGIN A-ASSOCIATE-AC" in line:
            in_ac = True
        elif "END A-ASSOCIATE-AC" in line:
            in_ac = False
        elif in_ac:
            m = _FIELD.match(line)
            if not m:
                continue
            key, value = m.group("key"), m.group("value").strip()
            if key == "Calling Application Name":
                assoc["calling_ae"] = value
            elif key == "Called Application Name":
                assoc["called_ae"] = value
            elif key == "Our Max PDU Receive Size":
                assoc["requestor_max_pdu"] = int(value)
            elif key == "Their Max PDU Receive Size":
                assoc["acceptor_max_pdu"] = int(value)
        if line.startswith("I: Releasing Association"):
            assoc["ended_by"] = "release"
        elif line.startswith("I: Aborting Association"):
            assoc["ended_by"] = "abort"

    messages = dimse_dumps(lines)
    truth: dict | None = None
    for direction, msg in messages:
        kind = msg.get("Message Type", "")
        if kind == "C-GET RQ" and direction == "out":
            truth = _new_truth(int(msg["Message ID"]), _PRIORITY.get(msg.get("Priority", ""), None))
            assoc["c_gets"].append(truth)
        elif truth is None:
            continue
        elif kind == "C-STORE RQ" and direction == "in":
            truth["c_store_subops_received"] += 1
            truth["c_store_sop_instance_uids"].append(msg.get("Affected SOP Instance UID", ""))
        elif kind == "C-STORE RSP" and direction == "out":
            truth["c_store_statuses_returned"].append(_status_code(msg))
        elif kind == "C-GET RSP" and direction == "in":
            code = int(_status_code(msg), 16)
            truth["response_statuses"].append(f"0x{code:04X}")
            if status_category(code) == "Pending":
                truth["pending_responses"] += 1
                continue
            truth["final_status"] = code
            truth["final_status_hex"] = f"0x{code:04X}"
            truth["final_status_category"] = status_category(code)
            truth["counters"] = {
                "remaining": _int_or_none(msg.get("Remaining Suboperations", "none")),
                "completed": _int_or_none(msg.get("Completed Suboperations", "none")),
                "failed": _int_or_none(msg.get("Failed Suboperations", "none")),
                "warning": _int_or_none(msg.get("Warning Suboperations", "none")),
            }
            if "Error Comment" in msg:
                truth["error_comment"] = msg["Error Comment"]
    return assoc


def _status_code(msg: dict) -> str:
    text = msg.get("DIMSE Status", "")
    m = re.match(r"0x([0-9a-fA-F]{4})", text)
    if not m:
        raise SampleError(f"cannot read DIMSE status from {msg}")
    return f"0x{m.group(1).upper()}"


def _new_truth(message_id: int, priority: int | None) -> dict:
    return {
        "message_id": message_id,
        "affected_sop_class_uid": None,
        "priority": priority,
        "query_retrieve_level": None,
        "identifier_keys": {},
        "final_status": None,
        "final_status_hex": None,
        "final_status_category": None,
        "counters": None,
        "pending_responses": 0,
        "c_store_subops_received": 0,
        "c_store_sop_instance_uids": [],
        "c_store_statuses_returned": [],
        "subops_without_c_store": 0,
        "cancel_sent": False,
        "error_comment": None,
        "offending_element": None,
        "failed_sop_instance_uid_list": None,
        "response_statuses": [],
    }
