"""The sample scenarios: real loopback exchanges and crafted transforms of them.

A real scenario function gets the destination capture path and a scratch
directory, runs the peers while a capture is running, and returns the
scenario-specific part of its manifest entry (peers, associations and the
per-C-GET ground truth reported by the peers).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from . import crafted, misbehaving, move
from .capture import LoopbackCapture, find_tool, free_port
from .dcmtk import DcmQrScp, dcmtk_version, run_getscu
from .instances import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, all_instances, instance_uid, study_uid
from .pyn import (
    PYNETDICOM_VERSION,
    GetRequest,
    PynScp,
    ScpBehaviour,
    ScuConfig,
    get_identifier,
    run_get_scu,
    run_in_threads,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    filename: str
    kind: str  # "real", "fault" (a real SCU against scripts/samples/misbehaving.py) or "crafted"
    summary: str
    run: Callable[[Path, Path], dict]
    source: str | None = None  # crafted: name of the source scenario


PYN = f"pynetdicom {PYNETDICOM_VERSION}"


def _dcmtk() -> str:
    return f"DCMTK {dcmtk_version()}"


def _study(study: int, message_id: int, **kwargs) -> GetRequest:
    return GetRequest(message_id, get_identifier("STUDY", StudyInstanceUID=study_uid(study)), **kwargs)


def _pyn_pair(
    path: Path,
    requests: list[GetRequest],
    scu: ScuConfig | None = None,
    behaviour: ScpBehaviour | None = None,
    scp_max_pdu: int = 16382,
    host: str = "127.0.0.1",
    tool: str = "tcpdump",
) -> dict:
    """pynetdicom Get SCU -> pynetdicom Get SCP, one association."""
    scu = scu or ScuConfig()
    scp = PynScp("GETSCP", all_instances(), behaviour or ScpBehaviour(), max_pdu=scp_max_pdu, host=host)
    with scp:
        with LoopbackCapture(path, scp.port, tool=tool):
            assoc = run_get_scu(host, scp.port, scu, requests)
    return {
        "peers": f"{PYN} Get SCU -> {PYN} Get SCP",
        "scu": f"{PYN} AE.associate + send_c_get",
        "scp": f"{PYN} AE.start_server with an EVT_C_GET handler",
        "server_ports": [scp.port],
        "associations": [assoc],
        "scp_view": scp.public_associations(),
    }


# ------------------------------------------------------------------------------------------
# real exchanges
# ------------------------------------------------------------------------------------------


def success(path: Path, workdir: Path) -> dict:
    entry = _pyn_pair(path, [_study(1, 7)])
    entry["description"] = (
        "Study Root GET at STUDY level for study 1 (5 CT images); the SCU's C-STORE handler "
        "answers 0x0000 to every sub-operation; final Success"
    )
    return entry


def failed_warning_subops(path: Path, workdir: Path) -> dict:
    cts = [instance_uid(2, 1, n) for n in range(1, 5)]
    request = _study(
        2,
        3,
        store_statuses={cts[1]: 0xA700, cts[2]: 0xB000, cts[3]: 0xC000},
        subops_without_c_store=1,
    )
    scu = ScuConfig(role_classes=(CT_IMAGE_STORAGE,), no_role_classes=(MR_IMAGE_STORAGE,))
    entry = _pyn_pair(path, [request], scu=scu)
    entry["description"] = (
        "study 2 (4 CT + 1 MR). The SCU answers the CT C-STOREs with 0x0000, 0xA700, 0xB000, 0xC000. "
        "MR Image Storage was proposed without an SCP role-selection item, so the SCP counts the MR "
        "sub-operation as failed without any C-STORE on the wire. Final Warning 0xB000"
    )
    return entry


def failure_error_comment(path: Path, workdir: Path) -> dict:
    status = Dataset()
    status.Status = 0xA900
    status.ErrorComment = "Level PATIENT not valid for Study Root"
    status.OffendingElement = [0x00080052, 0x00100020]
    request = GetRequest(5, get_identifier("PATIENT", PatientID="PAT003"))
    entry = _pyn_pair(path, [request], behaviour=ScpBehaviour(fail_with=status))
    entry["description"] = (
        "Study Root GET with QueryRetrieveLevel PATIENT (invalid for Study Root). The SCP handler "
        "yields the match count (3) and then a status Dataset 0xA900 with ErrorComment and "
        "OffendingElement [(0008,0052), (0010,0020)]; no sub-operation is started"
    )
    return entry


def cancel(path: Path, workdir: Path) -> dict:
    request = _study(1, 11, cancel_after_pending=1)
    entry = _pyn_pair(path, [request], behaviour=ScpBehaviour(wait_for_cancel=3.0))
    entry["description"] = (
        "study 1 (5 CT). After the first Pending response the SCU sends C-CANCEL-GET-RQ "
        "(assoc.send_c_cancel); the SCP handler sees event.is_cancelled before the 2nd sub-op and "
        "yields 0xFE00; final Cancel"
    )
    return entry


def interleaved(path: Path, workdir: Path) -> dict:
    scp = PynScp("GETSCP", all_instances(), ScpBehaviour(delay=0.05))
    barrier = threading.Barrier(2)
    with scp:
        with LoopbackCapture(path, scp.port):
            assocs = run_in_threads(
                [
                    lambda: run_get_scu(
                        "127.0.0.1",
                        scp.port,
                        ScuConfig(calling_ae="GETSCU_A"),
                        [_study(1, 1), _study(3, 2)],
                        barrier,
                    ),
                    lambda: run_get_scu(
                        "127.0.0.1", scp.port, ScuConfig(calling_ae="GETSCU_B"), [_study(3, 1)], barrier
                    ),
                ]
            )
    return {
        "description": (
            "two associations at the same time against one SCP (which pauses 50 ms between "
            "sub-operations): GETSCU_A gets study 1 (msg 1) then study 3 (msg 2); GETSCU_B gets "
            "study 3 (msg 1). Message ID 1 is in use on both associations"
        ),
        "peers": f"2 x {PYN} Get SCU -> {PYN} Get SCP",
        "scu": f"{PYN}, two AEs in two threads",
        "scp": f"{PYN} AE.start_server",
        "server_ports": [scp.port],
        "associations": assocs,
        "scp_view": scp.public_associations(),
    }


def small_max_pdu(path: Path, workdir: Path) -> dict:
    entry = _pyn_pair(path, [_study(3, 1)], scu=ScuConfig(max_pdu=128), scp_max_pdu=64)
    entry["description"] = (
        "study 3 (3 MR) with tiny maximum PDU sizes: SCU 128, SCP 64. The C-GET-RQ command set and "
        "identifier are split over several PDUs (one PDV each); C-STORE-RQ command sets and data sets "
        "are fragmented into many P-DATA-TF PDUs"
    )
    return entry


def pcapng_success(path: Path, workdir: Path) -> dict:
    entry = _pyn_pair(path, [_study(3, 1)], tool="dumpcap")
    entry["description"] = "study 3 (3 MR), Success; captured with dumpcap as pcapng"
    return entry


def ipv6_success(path: Path, workdir: Path) -> dict:
    entry = _pyn_pair(path, [_study(3, 1)], host="::1")
    entry["description"] = "study 3 (3 MR), Success, real exchange over IPv6 loopback ::1"
    return entry


def dcmtk_to_dcmtk(path: Path, workdir: Path) -> dict:
    port = free_port()
    keys = {"StudyInstanceUID": study_uid(1)}
    with DcmQrScp(workdir, port, all_instances()) as scp:
        with LoopbackCapture(path, port):
            assoc = run_getscu(port, workdir, keys, "STUDY", called_ae=scp.ae_title)
    return {
        "description": "getscu -S at STUDY level for study 1 (5 CT) against dcmqrscp; final Success",
        "peers": f"{_dcmtk()} getscu -> {_dcmtk()} dcmqrscp",
        "scu": f"{_dcmtk()} getscu (/usr/bin/getscu -d -S -pdu 16384); truth parsed from its -d log",
        "scp": f"{_dcmtk()} dcmqrscp -s (single process), database filled with dcmqridx",
        "server_ports": [port],
        "associations": [assoc],
    }


def pynetdicom_to_dcmtk(path: Path, workdir: Path) -> dict:
    port = free_port()
    cts = [instance_uid(2, 1, n) for n in range(1, 5)]
    requests = [
        _study(1, 1),
        _study(2, 2, store_statuses={cts[1]: 0xA700, cts[2]: 0xB000}),
    ]
    with DcmQrScp(workdir, port, all_instances()) as scp:
        with LoopbackCapture(path, port):
            assoc = run_get_scu("127.0.0.1", port, ScuConfig(called_ae=scp.ae_title), requests)
    return {
        "description": (
            "one association, two C-GETs against dcmqrscp: msg 1 study 1 (5 CT, all 0x0000, Success); "
            "msg 2 study 2 (4 CT + 1 MR) where the SCU answers one CT with 0xA700 and one with "
            "0xB000 (final Warning from DCMTK)"
        ),
        "peers": f"{PYN} Get SCU -> {_dcmtk()} dcmqrscp",
        "scu": f"{PYN} AE.associate + send_c_get",
        "scp": f"{_dcmtk()} dcmqrscp -s (single process), database filled with dcmqridx",
        "server_ports": [port],
        "associations": [assoc],
    }


def dcmtk_to_pynetdicom(path: Path, workdir: Path) -> dict:
    scp = PynScp("PYNSCP", all_instances(), max_pdu=16382)
    keys = {"StudyInstanceUID": study_uid(1)}
    with scp:
        with LoopbackCapture(path, scp.port):
            assoc = run_getscu(scp.port, workdir, keys, "STUDY", called_ae="PYNSCP")
    views = scp.public_associations()
    if views:
        assoc["client_port"] = views[0]["client_port"]
    return {
        "description": "getscu -S at STUDY level for study 1 (5 CT) against a pynetdicom Get SCP; Success",
        "peers": f"{_dcmtk()} getscu -> {PYN} Get SCP",
        "scu": f"{_dcmtk()} getscu (/usr/bin/getscu -d -S -pdu 16384); truth parsed from its -d log",
        "scp": f"{PYN} AE.start_server with an EVT_C_GET handler",
        "server_ports": [scp.port],
        "associations": [assoc],
        "scp_view": views,
    }


# ------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------


_SRC = "pynetdicom_to_pynetdicom_success"


def _relink(kind: str) -> Callable[[Path, Path], dict]:
    return lambda src, dst: crafted.relink(src, dst, kind)


def _fault(mode: str) -> Callable[[Path, Path], dict]:
    return lambda path, workdir: misbehaving.record_fault(mode, path, workdir)


# (name, file, kind, one-line summary, function, source of a crafted capture)
_TABLE = [
    ("pynetdicom_to_pynetdicom_success", "pynetdicom_to_pynetdicom_success.pcap", "real",
     "pynetdicom SCU -> pynetdicom SCP, STUDY level, 5 sub-ops, Success", success, None),
    ("pynetdicom_failed_warning_subops", "pynetdicom_failed_warning_subops.pcap", "real",
     "sub-ops answered 0000/A700/B000/C000 plus one MR sub-op failed for lack of SCP role "
     "(no C-STORE on the wire); final Warning B000", failed_warning_subops, None),
    ("pynetdicom_failure_error_comment", "pynetdicom_failure_error_comment.pcap", "real",
     "SCP answers Failure A900 with ErrorComment and a two-valued OffendingElement",
     failure_error_comment, None),
    ("pynetdicom_cancel", "pynetdicom_cancel.pcap", "real",
     "SCU sends C-CANCEL after the first Pending; final Cancel FE00", cancel, None),
    ("interleaved_two_associations", "interleaved_two_associations.pcap", "real",
     "two concurrent associations (3 C-GETs in all) interleaved on one SCP port", interleaved, None),
    ("small_max_pdu", "small_max_pdu.pcap", "real",
     "max PDU 128 (SCU) / 64 (SCP): command sets, identifiers and data sets fragmented",
     small_max_pdu, None),
    ("pynetdicom_success_pcapng", "pynetdicom_success.pcapng", "real",
     "pcapng (dumpcap) of a successful 3-instance retrieve", pcapng_success, None),
    ("ipv6_success", "ipv6_success.pcap", "real",
     "real pynetdicom exchange over ::1 (IPv6), Success", ipv6_success, None),
    ("dcmtk_to_dcmtk_success", "dcmtk_to_dcmtk_success.pcap", "real",
     "DCMTK getscu -> DCMTK dcmqrscp, STUDY level, 5 sub-ops, Success", dcmtk_to_dcmtk, None),
    ("pynetdicom_scu_to_dcmtk_scp", "pynetdicom_scu_to_dcmtk_scp.pcap", "real",
     "pynetdicom SCU -> dcmqrscp, two C-GETs (Success, then Warning B000)", pynetdicom_to_dcmtk, None),
    ("dcmtk_scu_to_pynetdicom_scp", "dcmtk_scu_to_pynetdicom_scp.pcap", "real",
     "DCMTK getscu -> pynetdicom SCP, STUDY level, 5 sub-ops, Success", dcmtk_to_pynetdicom, None),
    ("dcmtk_move_success", "dcmtk_move_success.pcap", "real",
     "DCMTK movescu -> dcmqrscp -> storescp: C-MOVE of 5 CT, sub-operations on a second association",
     move.dcmtk_move, None),
    ("dcmtk_move_unknown_destination", "dcmtk_move_unknown_destination.pcap", "real",
     "DCMTK movescu -> dcmqrscp with a Move Destination it does not know: A801",
     move.dcmtk_move_unknown, None),
    ("pynetdicom_move_failing_destination", "pynetdicom_move_failing_destination.pcap", "real",
     "pynetdicom Move SCU -> Move SCP -> Storage SCP failing 1 of 5 C-STOREs (A700)",
     move.pynetdicom_move, None),
    ("pynetdicom_move_destination_down", "pynetdicom_move_destination_down.pcap", "real",
     "pynetdicom Move SCU -> Move SCP whose Move Destination address does not answer",
     move.pynetdicom_move_destination_down, None),
    ("dcmtk_find_echo", "dcmtk_find_echo.pcap", "real",
     "DCMTK echoscu and findscu -> dcmqrscp: C-ECHO, C-FIND at STUDY level", move.dcmtk_find_echo, None),
    ("midstream_start", "midstream_start.pcap", "crafted",
     "success capture starting at the C-GET-RQ: no SYN, no A-ASSOCIATE", crafted.midstream_start, _SRC),
    ("reordered_retransmitted", "reordered_retransmitted.pcap", "crafted",
     "success capture with segments out of order and three retransmitted duplicates",
     crafted.reordered_retransmitted, _SRC),
    ("truncated", "truncated.pcap", "crafted",
     "success capture cut in the middle of the record carrying the 3rd C-STORE data set",
     crafted.truncated, _SRC),
    ("gap_lost_segment", "gap_lost_segment.pcap", "crafted",
     "success capture minus the segment holding the 3rd C-STORE data set (sequence gap)",
     crafted.gap_lost_segment, _SRC),
    ("retrieve_gz", "retrieve.pcap.gz", "crafted",
     "gzip copy of pynetdicom_to_pynetdicom_success.pcap", crafted.gzip_copy, _SRC),
    ("ethernet_vlan", "ethernet_vlan.pcap", "crafted",
     "success capture re-framed as Ethernet + 802.1Q VLAN 100", _relink("ethernet_vlan"), _SRC),
    ("linux_sll", "linux_sll.pcap", "crafted",
     "success capture re-framed as Linux cooked v1 (DLT_LINUX_SLL)", _relink("linux_sll"), _SRC),
    ("raw_ip", "raw_ip.pcap", "crafted",
     "success capture re-framed as raw IP (LINKTYPE_RAW)", _relink("raw_ip"), _SRC),
    ("null_loopback", "null_loopback.pcap", "crafted",
     "success capture re-framed as BSD loopback (DLT_NULL)", _relink("null_loopback"), _SRC),
]  # fmt: skip

# A real SCU against the misbehaving SCP of scripts/samples/misbehaving.py, one fault each.
_TABLE += [
    (f"fault_{mode}", f"fault_{mode}.pcap", "fault",
     f"FAULT ({fault.scu} SCU -> misbehaving SCP): {fault.summary}", _fault(mode), None)
    for mode, fault in misbehaving.FAULTS.items()
]

SCENARIOS: dict[str, Scenario] = {row[0]: Scenario(*row) for row in _TABLE}


def tool_versions() -> dict:
    import subprocess

    import pydicom
    import scapy

    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "unavailable"
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0] if text else "unknown"

    return {
        "pynetdicom": PYNETDICOM_VERSION,
        "pydicom": pydicom.__version__,
        "scapy": scapy.VERSION,
        "dcmtk": dcmtk_version(),
        "tcpdump": first_line([find_tool("tcpdump"), "--version"]),
        "dumpcap": first_line([find_tool("dumpcap"), "--version"]),
    }


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


__all__ = ["SCENARIOS", "Scenario", "tool_versions", "ipv6_available"]
