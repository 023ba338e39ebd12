"""Real Upper Layer and DIMSE bytes, made with pynetdicom, for the layer tests."""

from __future__ import annotations

from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_CANCEL_RQ, C_GET_RQ, C_GET_RSP, C_STORE_RQ
from pynetdicom.dimse_primitives import C_CANCEL, C_GET, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ, A_RELEASE_RP, A_RELEASE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

GET_STUDY = "1.2.840.10008.5.1.4.1.2.2.3"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT = "1.2.840.10008.1.2"


def identifier() -> bytes:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = "1.2.3.4.5"
    return encode(ds, True, True)


def c_get_rq_message(message_id: int = 7) -> C_GET_RQ:
    primitive = C_GET()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = GET_STUDY
    primitive.Priority = 0
    primitive.Identifier = BytesIO(identifier())
    message = C_GET_RQ()
    message.primitive_to_message(primitive)
    return message


def c_get_rsp_message(status: int = 0xFF00, counters: bool = True, message_id: int = 7) -> C_GET_RSP:
    primitive = C_GET()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = GET_STUDY
    primitive.Status = status
    if counters:
        primitive.NumberOfRemainingSuboperations = 3
        primitive.NumberOfCompletedSuboperations = 0
        primitive.NumberOfFailedSuboperations = 1
        primitive.NumberOfWarningSuboperations = 2
    message = C_GET_RSP()
    message.primitive_to_message(primitive)
    return message


def c_store_rq_message(data: bytes = b"\x08\x00\x16\x00\x04\x00\x00\x001.2\x00" * 4) -> C_STORE_RQ:
    primitive = C_STORE()
    primitive.MessageID = 9
    primitive.AffectedSOPClassUID = CT_IMAGE
    primitive.AffectedSOPInstanceUID = "1.2.3.4.5.6"
    primitive.Priority = 0
    primitive.MoveOriginatorApplicationEntityTitle = "GETSCU"
    primitive.MoveOriginatorMessageID = 7
    primitive.DataSet = BytesIO(data)
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    return message


def c_cancel_rq_message(message_id: int = 7) -> C_CANCEL_RQ:
    primitive = C_CANCEL()
    primitive.MessageIDBeingRespondedTo = message_id
    message = C_CANCEL_RQ()
    message.primitive_to_message(primitive)
    return message


def command_bytes(message) -> bytes:
    """The command set of a pynetdicom message, Implicit VR Little Endian."""
    return encode(message.command_set, True, True)


def p_data_pdus(message, context_id: int = 1, max_pdu: int = 16382) -> list[bytes]:
    """The P-DATA-TF PDUs pynetdicom would send for ``message``."""
    out = []
    for primitive in message.encode_msg(context_id, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        out.append(pdu.encode())
    return out


def p_data(*pdvs: tuple[int, int, bytes]) -> bytes:
    """A P-DATA-TF PDU from (context id, message control header, fragment) triples."""
    primitive = P_DATA()
    primitive.presentation_data_value_list = [[cid, bytes([mch]) + frag] for cid, mch, frag in pdvs]
    pdu = P_DATA_TF()
    pdu.from_primitive(primitive)
    return pdu.encode()


def release_rq() -> bytes:
    return A_RELEASE_RQ().encode()


def release_rp() -> bytes:
    return A_RELEASE_RP().encode()


def abort(source: int = 2, reason: int = 1) -> bytes:
    pdu = A_ABORT_RQ()
    pdu.source = source
    pdu.reason_diagnostic = reason
    return pdu.encode()


def reject(result: int = 1, source: int = 1, reason: int = 7) -> bytes:
    pdu = A_ASSOCIATE_RJ()
    pdu.result = result
    pdu.source = source
    pdu.reason_diagnostic = reason
    return pdu.encode()
