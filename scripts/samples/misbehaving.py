"""A deliberately misbehaving C-GET SCP for fault captures.

Real peers (pynetdicom, DCMTK) do not break the rules these captures need, so
this module answers one association from a REAL Get SCU (pynetdicom's
``AE.associate`` + ``send_c_get``, or DCMTK ``getscu``) with plain sockets and
hand-encoded PDUs and command sets (data sets are encoded by pydicom through
``pynetdicom.dsutils.encode``) and injects exactly one fault per mode.

The SCP keeps its own record of every message it sent (``scp_view``), and the
SCU reports what it received, so the manifest's ground truth still comes from
the peers and never from decoding the capture.

Every wait is bounded; the SCP serves one connection in a thread of its own and
its sockets are closed on exit.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_items import MaximumLengthSubItem, SCP_SCU_RoleSelectionSubItem

from .capture import LoopbackCapture, SampleError
from .dcmtk import dcmtk_version, run_getscu
from .instances import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, all_instances, study_uid
from .pyn import (
    PYNETDICOM_VERSION,
    QUERY_MODELS,
    TIMEOUT,
    TRANSFER_SYNTAXES,
    GetRequest,
    _hex,
    _match,
    _new_get_truth,
    get_identifier,
    send_c_get,
    status_category,
)

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.4711.99"
IMPLEMENTATION_VERSION = "MISBEHAVE_01"
AE_TITLE = "BADSCP"
OWN_MAX_PDU = 16384
GET_MODELS = {str(uid) for uid in QUERY_MODELS.values()}
STORAGE = {str(CT_IMAGE_STORAGE), str(MR_IMAGE_STORAGE)}
LONG_COMMENT = "Retrieve refused: the requested study is locked by another session now"  # 70 characters

# DIMSE command fields
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_GET_RQ, C_GET_RSP = 0x0010, 0x8010
C_CANCEL_RQ = 0x0FFF
NO_DATA_SET, DATA_SET = 0x0101, 0x0001
PENDING, SUCCESS, WARNING, REFUSED_SUBOPS = 0xFF00, 0x0000, 0xB000, 0xA702


# ------------------------------------------------------------------------------------------
# the faults
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    mode: str
    #: catalog rules the misbehaving acceptor must trigger
    expected_rules: tuple[str, ...]
    #: what the SCP does wrong, in one line
    summary: str
    #: "pynetdicom" or "getscu"
    scu: str = "pynetdicom"
    study: int = 1
    priority: int = 2
    #: SCU max PDU (what it announces in the A-ASSOCIATE-RQ)
    scu_max_pdu: int = 16382
    #: status the SCU's C-STORE handler returns for every sub-op
    store_status: int = 0x0000
    cancel_after_pending: int | None = None
    #: the SCU proposes SCU-role as well as SCP-role for the storage classes
    scu_role_too: bool = False
    #: seconds the SCU waits after the final response before it releases
    linger: float = 0.0
    #: what the SCP does wrong, when two modes share it (the same fault against another SCU)
    behaviour: str = ""
    #: the SCU may end without a final response (it aborts, or the SCP cuts the connection)
    scu_may_fail: bool = False

    @property
    def act(self) -> str:
        return self.behaviour or self.mode


FAULTS = {
    f.mode: f
    for f in (
        Fault("success_despite_failures", ("GET-RSP-014", "GET-CNT-004", "GET-CNT-006"),
              "the SCU fails every sub-op (C000); the SCP reports the first one as completed and "
              "answers final Success 0000 with Failed > 0", study=3, store_status=0xC000),
        Fault("pending_missing_counters", ("GET-RSP-007",),
              "Pending responses carry only Completed and Failed, no (0000,1020)/(0000,1023)",
              scu="getscu", study=3),
        Fault("remaining_rises", ("GET-CNT-001",),
              "Remaining in the Pending responses goes 3, 2, 4, 0", scu="getscu", study=3),
        Fault("response_after_final", ("GET-RSP-004",),
              "a second final Success C-GET-RSP follows the first one", study=3),
        Fault("undefined_status", ("GET-RSP-005",),
              "the final C-GET-RSP has status 0xD000 (no such class in PS3.7 Annex C)", study=3),
        Fault("store_after_final", ("GET-SUB-005",),
              "a C-STORE-RQ follows the final C-GET-RSP", study=3, linger=1.0),
        Fault("subop_priority_mismatch", ("GET-SUB-003",),
              "C-GET at priority HIGH (1); the sub-op C-STOREs carry MEDIUM (0)", study=3, priority=1),
        Fault("store_without_role", ("GET-SUB-001",),
              "the A-ASSOCIATE-AC answers the (1,1) role items with (1,0), yet the SCP sends C-STOREs "
              "on those contexts", study=3, scu_role_too=True),
        Fault("oversized_pdu", ("UL-004",),
              "the SCU announces max PDU 4096; the SCP sends 8192-byte P-DATA-TF PDUs",
              study=3, scu_max_pdu=4096),
        Fault("error_comment_too_long", ("GET-RSP-019",),
              "final Failure C001 with a 70-character Error Comment (LO allows 64)", study=3),
        Fault("cancel_ignored", ("GET-CAN-007",),
              "after the SCU's C-CANCEL the SCP sends every remaining C-STORE and ends with Success",
              study=1, cancel_after_pending=1),
        # The same fault against both real SCUs: a refused SCP role, an oversized PDU cut short,
        # responses naming the wrong Message ID.
        Fault("role_refused", ("GET-SUB-001", "GET-ROLE-001"),
              "the A-ASSOCIATE-AC answers the (0,1) role items with (0,0), refusing the requestor the "
              "SCP role, yet the SCP sends C-STOREs on those contexts", study=3),
        Fault("role_refused_getscu", ("GET-SUB-001", "GET-ROLE-001"),
              "the A-ASSOCIATE-AC answers the (0,1) role items with (0,0), refusing the requestor the "
              "SCP role, yet the SCP sends C-STOREs on those contexts", scu="getscu", study=3,
              behaviour="role_refused", scu_may_fail=True),
        Fault("oversized_pdu_cut", ("UL-004",),
              "the first C-STORE-RQ data set goes in a P-DATA-TF announcing PDU-length 131798 (the SCU "
              "announced 16384); the SCP stops after its first bytes and closes the connection",
              scu="getscu", study=3, scu_max_pdu=16384, scu_may_fail=True),
        Fault("oversized_pdu_cut_pynetdicom", ("UL-004",),
              "the first C-STORE-RQ data set goes in a P-DATA-TF announcing PDU-length 131798 (the SCU "
              "announced 16384); the SCP stops after its first bytes and closes the connection",
              study=3, scu_max_pdu=16384, behaviour="oversized_pdu_cut", scu_may_fail=True),
        Fault("misnumbered_responses", ("GET-RSP-002",),
              "the Pending C-GET-RSPs name Message ID 42 in (0000,0120) instead of the request's; the "
              "final response names the request", study=3),
        Fault("misnumbered_responses_getscu", ("GET-RSP-002",),
              "the Pending C-GET-RSPs name Message ID 42 in (0000,0120) instead of the request's; the "
              "final response names the request", scu="getscu", study=3,
              behaviour="misnumbered_responses", scu_may_fail=True),
    )
}  # fmt: skip


# ------------------------------------------------------------------------------------------
# encoding
# ------------------------------------------------------------------------------------------


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def _text(value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def _ui(value: str) -> bytes:
    return _text(value, b"\x00")


def _lo(value: str) -> bytes:
    return _text(value, b" ")


def command_set(elements: dict[int, bytes]) -> bytes:
    """An Implicit VR Little Endian command set: (0000,0000) plus `elements` (tag -> value) in tag order."""
    body = b"".join(
        struct.pack("<HHI", 0x0000, tag & 0xFFFF, len(value)) + value
        for tag, value in sorted(elements.items())
    )
    return struct.pack("<HHI", 0, 0, 4) + struct.pack("<I", len(body)) + body


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def _pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(body)) + body


@dataclass
class Context:
    context_id: int
    abstract_syntax: str
    transfer_syntax: str | None  # None: rejected

    @property
    def implicit(self) -> bool:
        return self.transfer_syntax == ImplicitVRLittleEndian


# ------------------------------------------------------------------------------------------
# the SCP
# ------------------------------------------------------------------------------------------


class _Closed(Exception):
    """The peer released, aborted or closed the connection."""


class MisbehavingScp:
    """Accepts one association on 127.0.0.1 and answers its C-GET(s) with one fault."""

    def __init__(self, fault: Fault, datasets: list[Dataset] | None = None) -> None:
        self.fault = fault
        self.datasets = datasets if datasets is not None else all_instances()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT)
        self.port = self._listener.getsockname()[1]
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._thread = threading.Thread(target=self._serve, name=f"badscp-{fault.mode}", daemon=True)
        self.contexts: dict[int, Context] = {}
        self.peer_max_pdu = 0
        self.requested_roles: dict[str, tuple[int, int]] = {}
        self.view: dict[str, Any] = {"c_gets": [], "sent": []}
        self.error: BaseException | None = None
        self._cancelled: set[int] = set()

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> MisbehavingScp:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._thread.join(timeout=2 * TIMEOUT)
        for sock in (self._sock, self._listener):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def check(self) -> None:
        if self._thread.is_alive():
            raise SampleError(f"misbehaving SCP ({self.fault.mode}) did not finish")
        if self.error is not None:
            raise SampleError(f"misbehaving SCP ({self.fault.mode}) failed: {self.error!r}") from self.error

    def _serve(self) -> None:
        try:
            self._sock, address = self._listener.accept()
            self._sock.settimeout(TIMEOUT)
            self.view["client_port"] = address[1]
            self._associate()
            self._run()
        except _Closed:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by check()
            self.error = exc
        finally:
            if self._sock is not None:
                try:
                    self._sock.close()
                except OSError:
                    pass

    # -- raw PDUs ---------------------------------------------------------------------------

    def _read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise _Closed("connection closed by the SCU")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _read_pdu(self) -> tuple[int, bytes]:
        header = self._read(6)
        kind, length = header[0], struct.unpack(">I", header[2:])[0]
        return kind, header + self._read(length)

    def _send(self, data: bytes) -> None:
        self._sock.sendall(data)

    # -- association ------------------------------------------------------------------------

    def _associate(self) -> None:
        kind, raw = self._read_pdu()
        if kind != 0x01:
            raise SampleError(f"expected A-ASSOCIATE-RQ, got PDU type 0x{kind:02X}")
        rq = A_ASSOCIATE_RQ()
        rq.decode(raw)
        for sub in rq.user_information.user_data:
            if isinstance(sub, MaximumLengthSubItem):
                self.peer_max_pdu = sub.maximum_length_received
            elif isinstance(sub, SCP_SCU_RoleSelectionSubItem):
                self.requested_roles[str(sub.sop_class_uid)] = (sub.scu_role, sub.scp_role)
        self.view.update(
            calling_ae=rq.calling_ae_title.strip(),
            called_ae=rq.called_ae_title.strip(),
            requestor_max_pdu=self.peer_max_pdu,
            acceptor_max_pdu=OWN_MAX_PDU,
        )
        items = _item(0x10, APPLICATION_CONTEXT.encode())
        accepted: set[str] = set()
        for pc in rq.presentation_context:
            syntax = str(pc.abstract_syntax)
            offered = [str(ts) for ts in pc.transfer_syntax]
            chosen = None
            if syntax in GET_MODELS | STORAGE:
                for wanted in (ImplicitVRLittleEndian, ExplicitVRLittleEndian):
                    if wanted in offered:
                        chosen = wanted
                        break
            self.contexts[pc.context_id] = Context(pc.context_id, syntax, chosen)
            result = 0 if chosen else 3
            if chosen:
                accepted.add(syntax)
            body = struct.pack(">BBBB", pc.context_id, 0, result, 0) + _item(
                0x40, (chosen or offered[0]).encode()
            )
            items += _item(0x21, body)
        user = _item(0x51, struct.pack(">I", OWN_MAX_PDU)) + _item(0x52, IMPLEMENTATION_UID.encode())
        for uid, (scu, scp) in self.requested_roles.items():
            if uid not in accepted:
                continue
            # Normally accept the requestor's SCP role (it receives the sub-ops) and nothing else.
            answer = {"store_without_role": (scu, 0), "role_refused": (0, 0)}.get(self.fault.act, (0, scp))
            encoded = uid.encode()
            user += _item(0x54, struct.pack(">H", len(encoded)) + encoded + bytes(answer))
        user += _item(0x55, IMPLEMENTATION_VERSION.encode())
        items += _item(0x50, user)
        # bytes 7-74 of the AC: protocol version, reserved, and a copy of the RQ's AE titles/reserved
        fixed = struct.pack(">HH", 1, 0) + raw[10:74]
        self._send(_pdu(0x02, fixed + items))

    # -- DIMSE ------------------------------------------------------------------------------

    def _next_message(self, timeout: float = TIMEOUT) -> tuple[int, Dataset, bytes | None]:
        """(context ID, command set, data set bytes or None) of the next DIMSE message."""
        self._sock.settimeout(timeout)
        command = b""
        data = b""
        context_id = 0
        command_done = False
        try:
            while True:
                kind, raw = self._read_pdu()
                if kind == 0x05:  # A-RELEASE-RQ
                    self._send(_pdu(0x06, bytes(4)))
                    raise _Closed("released")
                if kind == 0x07:
                    raise _Closed("aborted")
                if kind != 0x04:
                    raise SampleError(f"unexpected PDU type 0x{kind:02X}")
                offset = 6
                while offset < len(raw):
                    length = struct.unpack(">I", raw[offset : offset + 4])[0]
                    context_id, control = raw[offset + 4], raw[offset + 5]
                    fragment = raw[offset + 6 : offset + 4 + length]
                    offset += 4 + length
                    if control & 1:
                        command += fragment
                        if control & 2:
                            command_done = True
                            cmd = decode(BytesIO(command), True, True)
                            if cmd.CommandDataSetType == NO_DATA_SET:
                                return context_id, cmd, None
                    else:
                        data += fragment
                        if control & 2 and command_done:
                            return context_id, cmd, data
        finally:
            self._sock.settimeout(TIMEOUT)

    def _send_message(self, context_id: int, command: bytes, data: bytes | None, note: dict) -> None:
        """Fragment a message into P-DATA-TF PDUs within the SCU's maximum (or, on purpose, beyond it)."""
        limit = self.peer_max_pdu or OWN_MAX_PDU
        if self.fault.act == "oversized_pdu":
            limit = 2 * (self.peer_max_pdu or 4096)
        if self.fault.act == "oversized_pdu_cut" and data is not None and note["message"] == "C-STORE-RQ":
            self._send_cut(context_id, command, data, note)
        chunk = (limit - 6) & ~1
        out = b""
        for payload, kind in ((command, 1), (data, 0)):
            if payload is None:
                continue
            for start in range(0, len(payload), chunk):
                fragment = payload[start : start + chunk]
                control = kind | (2 if start + chunk >= len(payload) else 0)
                pdv = struct.pack(">IBB", len(fragment) + 2, context_id, control) + fragment
                out += _pdu(0x04, pdv)
        self._send(out)
        self.view["sent"].append(note)

    def _send_cut(self, context_id: int, command: bytes, data: bytes, note: dict) -> None:
        """The command in a PDU of its own, then a P-DATA-TF announcing PDU-length 131798 of
        which only the PDU and PDV headers and the data set's first bytes are sent; then the
        SCP waits for the SCU to abort (DCMTK does) or gives up, and closes the connection."""
        self._send(_pdu(0x04, struct.pack(">IBB", len(command) + 2, context_id, 3) + command))
        announced = 131798
        head = struct.pack(">BBI", 0x04, 0, announced) + struct.pack(">IBB", announced - 4, context_id, 2)
        self._send(head + data[:8192])
        self.view["sent"].append({**note, "cut": f"PDU-length {announced}, {len(head) + 8192} bytes sent"})
        deadline = time.monotonic() + 3.0
        self._sock.settimeout(0.5)
        try:
            while time.monotonic() < deadline and self._sock.recv(65536):
                pass
        except (TimeoutError, OSError):
            pass
        raise _Closed("the SCP cut the oversized PDU short")

    def _get_response(
        self,
        context_id: int,
        request: Dataset,
        status: int,
        counters: dict[str, int],
        extra: dict[int, bytes] | None = None,
        identifier: bytes | None = None,
    ) -> None:
        responding_to = request.MessageID
        if self.fault.act == "misnumbered_responses" and status == PENDING:
            responding_to = 42  # the fault: Pending responses name a request that does not exist
        elements = {
            0x0002: _ui(str(request.AffectedSOPClassUID)),
            0x0100: _us(C_GET_RSP),
            0x0120: _us(responding_to),
            0x0800: _us(DATA_SET if identifier is not None else NO_DATA_SET),
            0x0900: _us(status),
        }
        tags = {"remaining": 0x1020, "completed": 0x1021, "failed": 0x1022, "warning": 0x1023}
        for name, value in counters.items():
            elements[tags[name]] = _us(value)
        elements.update(extra or {})
        note = {"message": "C-GET-RSP", "status": _hex(status), "counters": dict(counters)}
        self._send_message(context_id, command_set(elements), identifier, note)

    def _store(self, context: Context, ds: Dataset, message_id: int, priority: int) -> int | None:
        """Send one C-STORE-RQ, return the status of its C-STORE-RSP (None: it never came)."""
        elements = {
            0x0002: _ui(str(ds.SOPClassUID)),
            0x0100: _us(C_STORE_RQ),
            0x0110: _us(message_id),
            0x0700: _us(priority),
            0x0800: _us(DATA_SET),
            0x1000: _ui(str(ds.SOPInstanceUID)),
        }
        data = encode(ds, context.implicit, True)
        note = {
            "message": "C-STORE-RQ",
            "message_id": message_id,
            "priority": priority,
            "context_id": context.context_id,
            "sop_instance_uid": str(ds.SOPInstanceUID),
        }
        self._send_message(context.context_id, command_set(elements), data, note)
        while True:
            _, cmd, _ = self._next_message()
            field_ = cmd.CommandField
            if field_ == C_CANCEL_RQ:
                self._cancelled.add(cmd.MessageIDBeingRespondedTo)
                continue
            if field_ == C_STORE_RSP and cmd.MessageIDBeingRespondedTo == message_id:
                return int(cmd.Status)
            raise SampleError(f"unexpected command 0x{field_:04X} while waiting for a C-STORE-RSP")

    def _wait_for_cancel(self, message_id: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while message_id not in self._cancelled and time.monotonic() < deadline:
            try:
                _, cmd, _ = self._next_message(timeout=max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break
            if cmd.CommandField != C_CANCEL_RQ:
                raise SampleError(f"unexpected command 0x{cmd.CommandField:04X} while waiting for C-CANCEL")
            self._cancelled.add(cmd.MessageIDBeingRespondedTo)
        return message_id in self._cancelled

    def _storage_context(self, sop_class: str) -> Context | None:
        for context in self.contexts.values():
            if context.abstract_syntax != sop_class or context.transfer_syntax is None:
                continue
            roles = self.requested_roles.get(sop_class)
            if self.fault.act == "store_without_role" or (roles and roles[1]):
                return context
        return None

    # -- the C-GET --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                context_id, request, data = self._next_message()
            except TimeoutError as exc:
                raise SampleError("no request from the SCU") from exc
            if request.CommandField == C_CANCEL_RQ:
                continue  # a late cancel: no answer
            if request.CommandField != C_GET_RQ:
                raise SampleError(f"unexpected command 0x{request.CommandField:04X}")
            context = self.contexts[context_id]
            identifier = decode(BytesIO(data or b""), context.implicit, True)
            self._c_get(context, request, identifier)

    def _c_get(self, context: Context, request: Dataset, identifier: Dataset) -> None:
        mode = self.fault.act
        matches = _match(self.datasets, identifier)
        seen = {
            "message_id": request.MessageID,
            "priority": request.Priority,
            "matches": len(matches),
            "cancel_seen": False,
        }
        self.view["c_gets"].append(seen)
        total = len(matches)
        counts = {"completed": 0, "failed": 0, "warning": 0}
        failed_uids: list[str] = []
        priority = int(request.Priority)
        if mode == "subop_priority_mismatch":
            priority = {0: 2, 1: 0, 2: 0}.get(priority, 0)

        if mode == "error_comment_too_long":
            self._get_response(context.context_id, request, 0xC001, {}, extra={0x0902: _lo(LONG_COMMENT)})
            return
        if mode == "remaining_rises":
            self._get_response(context.context_id, request, PENDING, {"remaining": total, **counts})

        for index, ds in enumerate(matches):
            store_context = self._storage_context(str(ds.SOPClassUID))
            status = None
            if store_context is not None:
                status = self._store(store_context, ds, (request.MessageID + index + 1) & 0xFFFF, priority)
            category = status_category(status) if status is not None else "Failure"
            if category == "Success":
                counts["completed"] += 1
            elif category == "Warning":
                counts["warning"] += 1
            else:
                counts["failed"] += 1
                failed_uids.append(str(ds.SOPInstanceUID))
            reported = dict(counts)
            if mode == "success_despite_failures" and counts["failed"]:
                # the lie: the first failed sub-op is reported as completed
                reported["completed"] += 1
                reported["failed"] -= 1
            remaining = total - index - 1
            if mode == "remaining_rises" and index == 1:
                remaining = total + 1
            pending = {"remaining": remaining, **reported}
            if mode == "pending_missing_counters":
                pending = {"completed": reported["completed"], "failed": reported["failed"]}
            self._get_response(context.context_id, request, PENDING, pending)
            if mode == "cancel_ignored" and index == 0:
                seen["cancel_seen"] = self._wait_for_cancel(request.MessageID, 3.0)
                if not seen["cancel_seen"]:
                    raise SampleError("the SCU sent no C-CANCEL")

        if mode == "success_despite_failures":
            counts["completed"] += 1
            counts["failed"] -= 1
        if counts["failed"] == 0 and counts["warning"] == 0:
            status = SUCCESS
        elif counts["completed"] == 0 and counts["warning"] == 0:
            status = REFUSED_SUBOPS
        else:
            status = WARNING
        if mode in ("success_despite_failures", "cancel_ignored"):
            status = SUCCESS
        elif mode == "undefined_status":
            status = 0xD000
        identifier_bytes = None
        if status != SUCCESS and failed_uids:
            failed = Dataset()
            failed.FailedSOPInstanceUIDList = failed_uids
            identifier_bytes = encode(failed, context.implicit, True)
        self._get_response(context.context_id, request, status, counts, identifier=identifier_bytes)
        if mode == "response_after_final":
            self._get_response(context.context_id, request, status, counts, identifier=identifier_bytes)
        elif mode == "store_after_final" and matches:
            ds = matches[0]
            store_context = self._storage_context(str(ds.SOPClassUID))
            seen["late_store_status"] = _hex(
                self._store(store_context, ds, (request.MessageID + total + 1) & 0xFFFF, priority)
            )


# ------------------------------------------------------------------------------------------
# the real SCUs
# ------------------------------------------------------------------------------------------


def run_pynetdicom_scu(port: int, fault: Fault, request: GetRequest) -> dict:
    """pynetdicom Get SCU: associate, one C-GET, release; returns what the SCU itself saw."""
    ae = AE(ae_title="GETSCU")
    ae.maximum_pdu_size = fault.scu_max_pdu
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    ae.add_requested_context(QUERY_MODELS[request.model], TRANSFER_SYNTAXES)
    for sop in (CT_IMAGE_STORAGE, MR_IMAGE_STORAGE):
        ae.add_requested_context(sop, TRANSFER_SYNTAXES)
    roles = [
        build_role(sop, scu_role=fault.scu_role_too, scp_role=True)
        for sop in (CT_IMAGE_STORAGE, MR_IMAGE_STORAGE)
    ]
    truth = _new_get_truth(request)
    late: list[dict] = []
    received: list[str] = []
    # Sub-ops as the SCU's DIMSE layer saw them: C-STORE-RQs received and the C-STORE-RSPs it sent
    # (pynetdicom itself answers 0x0122 to a C-STORE on a context without the SCP role, so the
    # handler alone would miss those). "open" ends with the first final C-GET-RSP received.
    state: dict[str, Any] = {"open": True, "uids": {}}

    def on_store(event) -> int:
        return fault.store_status

    def on_received(event) -> None:
        command = event.message.command_set
        field_ = command.get("CommandField")
        if field_ == C_GET_RSP:
            code = int(command.Status)
            received.append(_hex(code))
            if status_category(code) != "Pending":
                state["open"] = False
        elif field_ == C_STORE_RQ:
            uid = str(command.AffectedSOPInstanceUID)
            state["uids"][int(command.MessageID)] = uid
            if state["open"]:
                truth["c_store_subops_received"] += 1
                truth["c_store_sop_instance_uids"].append(uid)
            else:
                late.append({"sop_instance_uid": uid, "status_returned": None})

    def on_sent(event) -> None:
        command = event.message.command_set
        if command.get("CommandField") != C_STORE_RSP:
            return
        uid = state["uids"].get(int(command.MessageIDBeingRespondedTo))
        for entry in late:
            if entry["sop_instance_uid"] == uid and entry["status_returned"] is None:
                entry["status_returned"] = _hex(int(command.Status))
                return
        truth["c_store_statuses_returned"].append(_hex(int(command.Status)))

    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title=AE_TITLE,
        max_pdu=fault.scu_max_pdu,
        ext_neg=roles,
        evt_handlers=[
            (evt.EVT_C_STORE, on_store),
            (evt.EVT_DIMSE_RECV, on_received),
            (evt.EVT_DIMSE_SENT, on_sent),
        ],
    )
    if not assoc.is_established:
        raise SampleError(f"association to the misbehaving SCP on port {port} failed")
    record = {
        "calling_ae": assoc.requestor.ae_title,
        "called_ae": assoc.acceptor.ae_title,
        "requestor_max_pdu": assoc.requestor.maximum_length,
        "acceptor_max_pdu": assoc.acceptor.maximum_length,
        "client_port": assoc.requestor.port,
        "server_port": port,
        "ended_by": "release",
        "c_gets": [truth],
    }
    try:
        try:
            statuses = send_c_get(assoc, request, truth)
        except SampleError:
            if not fault.scu_may_fail:
                raise
            statuses = None  # the exchange was cut, as the fault intends
        if fault.linger:
            time.sleep(fault.linger)
        # What send_c_get handed to the application: it stops at the first final response.
        truth["send_c_get_yielded"] = statuses
    finally:
        if assoc.is_established:
            assoc.release()
    # Every C-GET-RSP the SCU's DIMSE layer received, including any after the final response.
    truth["response_statuses"] = received
    if late:
        truth["c_store_after_final"] = late
    return record


# ------------------------------------------------------------------------------------------
# scenario functions
# ------------------------------------------------------------------------------------------


def record_fault(mode: str, path: Path, workdir: Path) -> dict:
    """Run the SCU against the misbehaving SCP under a loopback capture; return the manifest details."""
    fault = FAULTS[mode]
    keys = {"StudyInstanceUID": study_uid(fault.study)}
    with MisbehavingScp(fault) as scp:
        with LoopbackCapture(path, scp.port):
            if fault.scu == "getscu":
                assoc = run_getscu(scp.port, workdir, keys, "STUDY", called_ae=AE_TITLE,
                                   check=not fault.scu_may_fail)
            else:
                request = GetRequest(
                    message_id=7,
                    identifier=get_identifier("STUDY", **keys),
                    priority=fault.priority,
                    cancel_after_pending=fault.cancel_after_pending,
                )
                assoc = run_pynetdicom_scu(scp.port, fault, request)
            scp.stop()
        scp.check()
    if assoc.get("client_port") is None:
        assoc["client_port"] = scp.view.get("client_port")
    if fault.scu == "getscu":
        peers = f"DCMTK {dcmtk_version()} getscu -> misbehaving socket SCP ({mode})"
        scu = (
            f"DCMTK {dcmtk_version()} getscu (/usr/bin/getscu -d -S -pdu 16384); truth parsed from its -d log"
        )
    else:
        peers = f"pynetdicom {PYNETDICOM_VERSION} Get SCU -> misbehaving socket SCP ({mode})"
        scu = f"pynetdicom {PYNETDICOM_VERSION} AE.associate + send_c_get"
    cut_short = fault.scu_may_fail and all(get["final_status"] is None for get in assoc["c_gets"])
    if cut_short:
        # Whatever the SCU logs ("Aborting Association"), the connection was closed under it:
        # no A-ABORT need reach the wire (getscu resets the connection, pynetdicom aborts locally).
        assoc["ended_by"] = "transport closed"
    return {
        **({"cut_short": True} if cut_short else {}),  # the C-GET never got a final response
        "description": f"FAULT by the acceptor (C-GET SCP): {fault.summary}. Study {fault.study}, "
        f"STUDY level; SCU max PDU {fault.scu_max_pdu}, C-GET priority "
        f"{fault.priority if fault.scu == 'pynetdicom' else 0}",
        "peers": peers,
        "scu": scu,
        "scp": "scripts/samples/misbehaving.py: plain-socket C-GET SCP with hand-encoded PDUs and "
        "command sets; scp_view lists every message it sent",
        "misbehaving_peer": "acceptor",
        "fault": mode,
        "expected_rules": list(fault.expected_rules),
        "server_ports": [scp.port],
        "associations": [assoc],
        "scp_view": [scp.view],
    }


__all__ = ["FAULTS", "Fault", "MisbehavingScp", "record_fault", "run_pynetdicom_scu"]
