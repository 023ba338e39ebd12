"""C-MOVE, C-FIND and C-ECHO scenarios with real DCMTK peers on loopback.

``movescu`` asks ``dcmqrscp`` to move a study to a ``storescp``: the C-MOVE and its
responses on one association, the C-STORE sub-operations on a second one, from
dcmqrscp to storescp. Both ports are captured. The manifest facts come from the peers'
own ``-d`` logs: movescu's for the C-MOVE-RSPs, storescp's for the C-STOREs it received.
"""

from __future__ import annotations

import re
from pathlib import Path

from .capture import LoopbackCapture, ManagedProcess, SampleError, find_tool, free_port
from .dcmtk import (
    _DCMTK,
    NETWORK_TIMEOUTS,
    TIMEOUT,
    DcmQrScp,
    _int_or_none,
    _status_code,
    dcmtk_version,
    dimse_dumps,
    wait_listening,
)
from .instances import all_instances, study_uid

MOVE_SCU, QR_SCP, STORE_SCP = "MOVESCU", "QRSCP", "STORESCP"


def _dcmtk() -> str:
    return f"DCMTK {dcmtk_version()}"


def _run(cmd: list[str], workdir: Path, check: bool = True) -> tuple[int, str]:
    proc = ManagedProcess(cmd, cwd=workdir)
    rc = proc.wait(TIMEOUT)
    if rc != 0 and check:
        raise SampleError(f"{Path(cmd[0]).name} exited with {rc}: {proc.output[-3000:]}")
    return rc, proc.output


def parse_movescu_log(log: str) -> dict:
    """The C-MOVEs movescu sent and the C-MOVE-RSPs it got, from its ``-d`` log."""
    moves: list[dict] = []
    for direction, msg in dimse_dumps(log.splitlines()):
        kind = msg.get("Message Type", "")
        if kind == "C-MOVE RQ" and direction == "out":
            moves.append(
                {
                    "message_id": int(msg["Message ID"]),
                    "move_destination": msg.get("Move Destination"),
                    "response_statuses": [],
                    "pending_responses": 0,
                    "final_status": None,
                    "counters": None,
                }
            )
        elif kind == "C-MOVE RSP" and direction == "in" and moves:
            truth = moves[-1]
            code = int(_status_code(msg), 16)
            truth["response_statuses"].append(f"0x{code:04X}")
            if code in (0xFF00, 0xFF01):
                truth["pending_responses"] += 1
                continue
            truth["final_status"] = code
            truth["final_status_hex"] = f"0x{code:04X}"
            truth["counters"] = {
                "remaining": _int_or_none(msg.get("Remaining Suboperations", "none")),
                "completed": _int_or_none(msg.get("Completed Suboperations", "none")),
                "failed": _int_or_none(msg.get("Failed Suboperations", "none")),
                "warning": _int_or_none(msg.get("Warning Suboperations", "none")),
            }
    return {"c_moves": moves}


def parse_storescp_log(log: str) -> dict:
    """The C-STORE-RQs storescp received, with their Move Originator fields, from its ``-d`` log."""
    stores = []
    for direction, msg in dimse_dumps(log.splitlines()):
        if msg.get("Message Type") == "C-STORE RQ" and direction == "in":
            origin = msg.get("Move Originator ID")
            stores.append(
                {
                    "sop_instance_uid": msg.get("Affected SOP Instance UID"),
                    "move_originator_ae": msg.get("Move Originator AE Title") or None,
                    "move_originator_message_id": int(origin) if origin and origin.isdigit() else None,
                }
            )
    return {"c_stores_received": len(stores), "c_stores": stores}


def _movescu(port: int, workdir: Path, destination: str, keys: dict[str, str], check: bool = True) -> str:
    cmd = [
        find_tool("movescu", _DCMTK),
        "-d",
        "-S",
        "-aet",
        MOVE_SCU,
        "-aec",
        QR_SCP,
        "-aem",
        destination,
        *NETWORK_TIMEOUTS,
        "-k",
        "QueryRetrieveLevel=STUDY",
    ]
    for keyword, value in keys.items():
        cmd += ["-k", f"{keyword}={value}"]
    return _run([*cmd, "127.0.0.1", str(port)], workdir, check)[1]


def dcmtk_move(path: Path, workdir: Path, destination: str = STORE_SCP) -> dict:
    """movescu -> dcmqrscp, which sends the study to storescp (or, for an AE title it does not
    know, answers A801)."""
    qr_port, store_port = free_port(), free_port()
    outdir = workdir / "storescp_out"
    outdir.mkdir(parents=True, exist_ok=True)
    store = ManagedProcess(
        [find_tool("storescp", _DCMTK), "-d", "-aet", STORE_SCP, "-od", str(outdir), str(store_port)],
        cwd=workdir,
    )
    try:
        wait_listening(store_port)
        scp = DcmQrScp(
            workdir,
            qr_port,
            all_instances(),
            ae_title=QR_SCP,
            hosts=(("storescp", STORE_SCP, "127.0.0.1", store_port),),
        )
        with scp:
            with LoopbackCapture(path, [qr_port, store_port]):
                log = _movescu(
                    qr_port,
                    workdir,
                    destination,
                    {"StudyInstanceUID": study_uid(1)},
                    check=destination == STORE_SCP,
                )
    finally:
        store.stop()
    truth = parse_movescu_log(log)
    truth.update(parse_storescp_log(store.output))
    truth["files_written"] = len(list(outdir.iterdir()))
    return {
        "description": "movescu -S at STUDY level for study 1 against dcmqrscp, "
        f"Move Destination {destination}"
        + (
            "; dcmqrscp sends the 5 CT images to storescp on a second association"
            if destination == STORE_SCP
            else "; dcmqrscp does not know it (A801)"
        ),
        "peers": f"{_dcmtk()} movescu -> {_dcmtk()} dcmqrscp -> {_dcmtk()} storescp",
        "scu": f"{_dcmtk()} movescu -d -S; truth parsed from its -d log",
        "scp": f"{_dcmtk()} dcmqrscp -s with a HostTable naming storescp; "
        "storescp -d (its log gives the C-STOREs)",
        "server_ports": [qr_port, store_port],
        "move": truth,
    }


def dcmtk_move_unknown(path: Path, workdir: Path) -> dict:
    return dcmtk_move(path, workdir, destination="NOWHERE")


def dcmtk_find_echo(path: Path, workdir: Path) -> dict:
    """echoscu, then findscu at STUDY level, against dcmqrscp."""
    port = free_port()
    echo = [find_tool("echoscu", _DCMTK), "-d", "-aet", "ECHOSCU", "-aec", QR_SCP, "127.0.0.1", str(port)]
    find = [
        find_tool("findscu", _DCMTK),
        "-d",
        "-S",
        "-aet",
        "FINDSCU",
        "-aec",
        QR_SCP,
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyInstanceUID",
        "-k",
        "PatientID",
        "127.0.0.1",
        str(port),
    ]
    logs = []
    with LoopbackCapture(path, port):
        # dcmqrscp -s serves one association and exits: one run for each tool, on the same port.
        for name, cmd in (("echo", echo), ("find", find)):
            (workdir / name).mkdir()
            with DcmQrScp(workdir / name, port, all_instances(), ae_title=QR_SCP):
                logs.append(_run(cmd, workdir))
    (echo_rc, echo_log), (_, find_log) = logs
    finds = [
        msg
        for direction, msg in dimse_dumps(find_log.splitlines())
        if direction == "in" and msg.get("Message Type") == "C-FIND RSP"
    ]
    statuses = [_status_code(msg) for msg in finds]
    # echoscu does not dump C-ECHO messages even with -d; it logs each response's outcome.
    echo = re.findall(r"^I: Received Echo Response \((.*)\)$", echo_log, re.MULTILINE)
    return {
        "description": "echoscu then findscu -S (STUDY level, every study) against dcmqrscp",
        "peers": f"{_dcmtk()} echoscu, findscu -> {_dcmtk()} dcmqrscp",
        "scu": f"{_dcmtk()} echoscu -d, findscu -d -S; truth parsed from their -d logs",
        "scp": f"{_dcmtk()} dcmqrscp -s",
        "server_ports": [port],
        "echo": {"exit_status": echo_rc, "responses": echo},
        "find": {
            "response_statuses": statuses,
            "matches": sum(1 for s in statuses if s in ("0xFF00", "0xFF01")),
            "final_status_hex": statuses[-1] if statuses else None,
        },
    }


def pynetdicom_move(path: Path, workdir: Path, destination_up: bool = True) -> dict:
    """pynetdicom Move SCU -> pynetdicom Move SCP -> pynetdicom Storage SCP that fails the
    second instance (0xA700) and accepts the others: the SCP's final counters say so. With
    ``destination_up`` False nothing listens at the destination's address: the SCP's
    association to it is refused at the TCP level."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, StoragePresentationContexts, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

    from .instances import study_instances
    from .pyn import PYNETDICOM_VERSION

    qr_port, store_port = free_port(), free_port()
    instances = study_instances(1)
    received: list[dict] = []
    yielded: list[str] = []

    def on_store(event) -> int:
        request = event.request
        status = 0xA700 if len(received) == 1 else 0x0000
        received.append(
            {
                "sop_instance_uid": str(request.AffectedSOPInstanceUID),
                "move_originator_ae": request.MoveOriginatorApplicationEntityTitle or None,
                "move_originator_message_id": request.MoveOriginatorMessageID,
                "status": f"0x{status:04X}",
            }
        )
        return status

    def on_move(event):
        yield "127.0.0.1", store_port
        yield len(instances)
        for dataset in instances:
            yielded.append("0xFF00")
            yield 0xFF00, dataset

    destination = AE(ae_title=STORE_SCP)
    destination.supported_contexts = StoragePresentationContexts
    scp = AE(ae_title=QR_SCP)
    scp.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    scp.requested_contexts = StoragePresentationContexts
    scu = AE(ae_title=MOVE_SCU)
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    responses: list[dict] = []
    store_server = (
        destination.start_server(
            ("127.0.0.1", store_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )
        if destination_up
        else None
    )
    move_server = scp.start_server(
        ("127.0.0.1", qr_port), block=False, evt_handlers=[(evt.EVT_C_MOVE, on_move)]
    )
    try:
        with LoopbackCapture(path, [qr_port, store_port]):
            assoc = scu.associate("127.0.0.1", qr_port, ae_title=QR_SCP)
            if not assoc.is_established:
                raise SampleError("pynetdicom Move SCU could not associate")
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "STUDY"
            identifier.StudyInstanceUID = study_uid(1)
            for status, _ in assoc.send_c_move(
                identifier, STORE_SCP, StudyRootQueryRetrieveInformationModelMove, msg_id=5
            ):
                if status is None:
                    raise SampleError("pynetdicom Move SCU: no response")
                responses.append(
                    {
                        key: status.get(keyword)
                        for key, keyword in (
                            ("status", "Status"),
                            ("remaining", "NumberOfRemainingSuboperations"),
                            ("completed", "NumberOfCompletedSuboperations"),
                            ("failed", "NumberOfFailedSuboperations"),
                            ("warning", "NumberOfWarningSuboperations"),
                        )
                    }
                )
            assoc.release()
    finally:
        move_server.shutdown()
        if store_server is not None:
            store_server.shutdown()
    final = responses[-1]
    return {
        "description": "pynetdicom Move SCU -> pynetdicom Move SCP (study 1, 5 CT, Message ID 5) -> "
        + (
            "pynetdicom Storage SCP that answers 0xA700 to the second C-STORE"
            if destination_up
            else "a Move Destination address where nothing listens"
        ),
        "peers": f"pynetdicom {PYNETDICOM_VERSION} Move SCU -> Move SCP -> Storage SCP",
        "scu": "AE.associate + send_c_move; truth from the status Datasets it yielded",
        "scp": "AE.start_server with an EVT_C_MOVE handler; the destination an EVT_C_STORE handler",
        "server_ports": [qr_port, store_port],
        "move": {
            "c_moves": [
                {
                    "message_id": 5,
                    "move_destination": STORE_SCP,
                    "response_statuses": [f"0x{r['status']:04X}" for r in responses],
                    "pending_responses": sum(1 for r in responses if r["status"] in (0xFF00, 0xFF01)),
                    "final_status": final["status"],
                    "final_status_hex": f"0x{final['status']:04X}",
                    "counters": {k: final[k] for k in ("remaining", "completed", "failed", "warning")},
                }
            ],
            "c_stores_received": len(received),
            "c_stores": received,
            "scp_yielded": yielded,
        },
    }


def pynetdicom_move_destination_down(path: Path, workdir: Path) -> dict:
    return pynetdicom_move(path, workdir, destination_up=False)
