"""pynetdicom Get SCP and Get SCU used for the sample recordings.

Both sides record what they saw themselves (statuses, counters, how many
C-STOREs, AE titles, max PDU sizes) so that the manifest's ground truth comes
from the peers and never from decoding the capture.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynetdicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
)
from pynetdicom.status import code_to_category

from .capture import SampleError
from .instances import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE

PYNETDICOM_VERSION = pynetdicom.__version__
TIMEOUT = 10

QUERY_MODELS = {
    "P": PatientRootQueryRetrieveInformationModelGet,
    "S": StudyRootQueryRetrieveInformationModelGet,
}
TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]

_LEVEL_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


def status_category(code: int | None) -> str | None:
    if code is None:
        return None
    return code_to_category(code)


def _hex(code: int | None) -> str | None:
    return None if code is None else f"0x{code:04X}"


def _match(datasets: list[Dataset], identifier: Dataset) -> list[Dataset]:
    """Instances whose unique key at the requested level matches."""
    level = str(identifier.get("QueryRetrieveLevel", "")).upper()
    keyword = _LEVEL_KEYS.get(level)
    if keyword is None or keyword not in identifier:
        return []
    wanted = {str(v) for v in _as_list(identifier[keyword].value)}
    return [ds for ds in datasets if str(getattr(ds, keyword, "")) in wanted]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


# --------------------------------------------------------------------------------------------
# Get SCP
# --------------------------------------------------------------------------------------------


@dataclass
class ScpBehaviour:
    """How the pynetdicom Get SCP handler answers a C-GET."""

    #: instead of sending the matches, yield the match count and then this status Dataset
    fail_with: Dataset | None = None
    #: pause between sub-operations (lets two associations interleave)
    delay: float = 0.0
    #: after each sub-op, poll ``event.is_cancelled`` for up to this many seconds
    wait_for_cancel: float = 0.0


@dataclass
class PynScp:
    """A running pynetdicom Get SCP; keeps one record per association it accepted."""

    ae_title: str
    datasets: list[Dataset]
    behaviour: ScpBehaviour = field(default_factory=ScpBehaviour)
    max_pdu: int = 16382
    host: str = "127.0.0.1"
    port: int = 0
    storage_classes: tuple[str, ...] = (CT_IMAGE_STORAGE, MR_IMAGE_STORAGE)
    associations: list[dict] = field(default_factory=list)
    _server: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, assoc) -> dict:
        with self._lock:
            for rec in self.associations:
                if rec["_id"] == id(assoc):
                    return rec
            rec = {
                "_id": id(assoc),
                "calling_ae": assoc.requestor.ae_title,
                "called_ae": assoc.acceptor.ae_title,
                "requestor_max_pdu": assoc.requestor.maximum_length,
                "acceptor_max_pdu": assoc.acceptor.maximum_length,
                "client_port": assoc.requestor.port,
                "c_gets": [],
            }
            self.associations.append(rec)
            return rec

    def _on_established(self, event) -> None:
        self._record(event.assoc)

    def _on_get(self, event):
        rec = self._record(event.assoc)
        req = event.request
        identifier = event.identifier
        matches = _match(self.datasets, identifier)
        seen = {
            "message_id": req.MessageID,
            "priority": req.Priority,
            "matches": len(matches),
            "yielded": [],
            "cancel_seen": False,
        }
        rec["c_gets"].append(seen)
        behaviour = self.behaviour

        yield len(matches)

        if behaviour.fail_with is not None:
            seen["yielded"].append(_hex(int(behaviour.fail_with.Status)))
            yield behaviour.fail_with, None
            return

        for index, ds in enumerate(matches):
            # event.is_cancelled consumes the stored C-CANCEL: read it once per check
            cancelled = event.is_cancelled
            if index and behaviour.wait_for_cancel:
                deadline = time.monotonic() + behaviour.wait_for_cancel
                while not cancelled and time.monotonic() < deadline:
                    time.sleep(0.02)
                    cancelled = event.is_cancelled
            if cancelled:
                seen["cancel_seen"] = True
                seen["yielded"].append("0xFE00")
                yield 0xFE00, None
                return
            if index and behaviour.delay:
                time.sleep(behaviour.delay)
            seen["yielded"].append("0xFF00")
            yield 0xFF00, ds

    def start(self) -> int:
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = self.max_pdu
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
        ae.maximum_associations = 4
        for model in QUERY_MODELS.values():
            ae.add_supported_context(model, TRANSFER_SYNTAXES)
        for sop in self.storage_classes:
            # Accept the requestor's proposed SCP role (we act as Storage SCU).
            ae.add_supported_context(sop, TRANSFER_SYNTAXES, scu_role=False, scp_role=True)
        handlers = [
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_ESTABLISHED, self._on_established),
        ]
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def public_associations(self) -> list[dict]:
        return [{k: v for k, v in rec.items() if not k.startswith("_")} for rec in self.associations]

    def __enter__(self) -> PynScp:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Get SCU
# --------------------------------------------------------------------------------------------


@dataclass
class GetRequest:
    """One C-GET the pynetdicom SCU sends."""

    message_id: int
    identifier: Dataset
    model: str = "S"  # "S" study root, "P" patient root
    priority: int = 2
    #: SOP Instance UID -> status the SCU's C-STORE handler returns (default 0x0000)
    store_statuses: dict[str, int] = field(default_factory=dict)
    #: send C-CANCEL right after this many Pending responses (None: never)
    cancel_after_pending: int | None = None
    #: sub-ops the SCP will count as failed without a C-STORE on the wire (known from setup)
    subops_without_c_store: int = 0


@dataclass
class ScuConfig:
    calling_ae: str = "GETSCU"
    called_ae: str = "GETSCP"
    max_pdu: int = 16382
    #: storage SOP classes proposed with an SCP role selection item
    role_classes: tuple[str, ...] = (CT_IMAGE_STORAGE, MR_IMAGE_STORAGE)
    #: storage SOP classes proposed *without* a role item (sub-ops for them cannot be sent)
    no_role_classes: tuple[str, ...] = ()


def run_get_scu(
    host: str,
    port: int,
    config: ScuConfig,
    requests: list[GetRequest],
    start_barrier: threading.Barrier | None = None,
) -> dict:
    """Associate, run the C-GETs one after another, release; return what the SCU saw."""
    ae = AE(ae_title=config.calling_ae)
    ae.maximum_pdu_size = config.max_pdu
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    for model in sorted({r.model for r in requests}):
        ae.add_requested_context(QUERY_MODELS[model], TRANSFER_SYNTAXES)
    for sop in config.role_classes + config.no_role_classes:
        ae.add_requested_context(sop, TRANSFER_SYNTAXES)
    roles = [build_role(sop, scp_role=True) for sop in config.role_classes]

    current: dict[str, Any] = {}

    def on_store(event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        req: GetRequest | None = current.get("request")
        status = req.store_statuses.get(uid, 0x0000) if req else 0x0000
        truth = current.get("truth")
        if truth is not None:
            truth["c_store_subops_received"] += 1
            truth["c_store_sop_instance_uids"].append(uid)
            truth["c_store_statuses_returned"].append(_hex(status))
        return status

    if start_barrier is not None:
        start_barrier.wait(timeout=TIMEOUT)
    assoc = ae.associate(
        host,
        port,
        ae_title=config.called_ae,
        max_pdu=config.max_pdu,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    if not assoc.is_established:
        raise SampleError(f"association {config.calling_ae}->{config.called_ae} on port {port} failed")
    record = {
        "calling_ae": assoc.requestor.ae_title,
        "called_ae": assoc.acceptor.ae_title,
        "requestor_max_pdu": assoc.requestor.maximum_length,
        "acceptor_max_pdu": assoc.acceptor.maximum_length,
        "client_port": assoc.requestor.port,
        "server_port": port,
        "ended_by": "release",
        "c_gets": [],
    }
    try:
        for req in requests:
            truth = _new_get_truth(req)
            current["request"], current["truth"] = req, truth
            truth["response_statuses"] = send_c_get(assoc, req, truth)
            record["c_gets"].append(truth)
            current.clear()
    finally:
        if assoc.is_established:
            assoc.release()
    return record


def send_c_get(assoc, req: GetRequest, truth: dict) -> list[str]:
    """Send one C-GET, recording what the SCU received in ``truth``; the statuses yielded, as hex.

    Cancels after the request's ``cancel_after_pending``-th Pending response, if it has one.
    """
    statuses = []
    for status, identifier in assoc.send_c_get(
        req.identifier, QUERY_MODELS[req.model], msg_id=req.message_id, priority=req.priority
    ):
        if status is None or "Status" not in status:
            raise SampleError(f"C-GET {req.message_id}: no response (timeout or abort)")
        code = int(status.Status)
        statuses.append(_hex(code))
        if status_category(code) == "Pending":
            truth["pending_responses"] += 1
            if req.cancel_after_pending == truth["pending_responses"] and not truth["cancel_sent"]:
                assoc.send_c_cancel(req.message_id, query_model=QUERY_MODELS[req.model])
                truth["cancel_sent"] = True
            continue
        _fill_final(truth, status, identifier)
    return statuses


def _new_get_truth(req: GetRequest) -> dict:
    level = str(req.identifier.get("QueryRetrieveLevel", ""))
    keys = {elem.keyword: str(elem.value) for elem in req.identifier if elem.keyword != "QueryRetrieveLevel"}
    return {
        "message_id": req.message_id,
        "affected_sop_class_uid": str(QUERY_MODELS[req.model]),
        "priority": req.priority,
        "query_retrieve_level": level,
        "identifier_keys": keys,
        "final_status": None,
        "final_status_hex": None,
        "final_status_category": None,
        "counters": None,
        "pending_responses": 0,
        "c_store_subops_received": 0,
        "c_store_sop_instance_uids": [],
        "c_store_statuses_returned": [],
        "subops_without_c_store": req.subops_without_c_store,
        "cancel_sent": False,
        "error_comment": None,
        "offending_element": None,
        "failed_sop_instance_uid_list": None,
    }


def _fill_final(truth: dict, status: Dataset, identifier: Dataset | None) -> None:
    code = int(status.Status)
    truth["final_status"] = code
    truth["final_status_hex"] = _hex(code)
    truth["final_status_category"] = status_category(code)

    def counter(keyword: str) -> int | None:
        return int(status.get(keyword)) if keyword in status and status.get(keyword) is not None else None

    truth["counters"] = {
        "remaining": counter("NumberOfRemainingSuboperations"),
        "completed": counter("NumberOfCompletedSuboperations"),
        "failed": counter("NumberOfFailedSuboperations"),
        "warning": counter("NumberOfWarningSuboperations"),
    }
    if "ErrorComment" in status and status.ErrorComment is not None:
        truth["error_comment"] = str(status.ErrorComment)
    if "OffendingElement" in status and status.OffendingElement is not None:
        truth["offending_element"] = [f"0x{int(v):08X}" for v in _as_list(status.OffendingElement)]
    if identifier is not None and "FailedSOPInstanceUIDList" in identifier:
        value = identifier.FailedSOPInstanceUIDList
        truth["failed_sop_instance_uid_list"] = [str(v) for v in _as_list(value) if str(v)]


def get_identifier(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def run_in_threads(funcs: list[Callable[[], dict]], timeout: float = 60) -> list[dict]:
    """Run the callables concurrently; re-raise the first error."""
    results: list[Any] = [None] * len(funcs)
    errors: list[BaseException] = []

    def wrap(i: int, fn: Callable[[], dict]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i, fn), daemon=True) for i, fn in enumerate(funcs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    if any(t.is_alive() for t in threads):
        raise SampleError("SCU thread did not finish in time")
    if errors:
        raise errors[0]
    return results
