"""GET-ID rules: the C-GET-RQ Identifier (catalog 5.3, facts in 3.3 and 3.4).

Checks run on the "c_get_rq" event and read the Identifier as pydicom
decoded it (``primitive.identifier_dataset``) together with the extended
negotiation of the association. They apply to the five Query/Retrieve GET
information models of catalog 3.4; the other classes that use C-GET
(Hanging Protocol, Color Palette ...) have identifiers of their own and are
left alone. An identifier cut short is judged by GET-RQ-011 (or by the lower
layers when the capture ends), not here: its key checks would only repeat it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ..status import FAILURE, status_category
from .engine import AssociationView, Event, Reporter, rule

PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
PATIENT_STUDY_ONLY_GET = "1.2.840.10008.5.1.4.1.2.3.3"
COMPOSITE_INSTANCE_ROOT_GET = "1.2.840.10008.5.1.4.1.2.4.3"
WITHOUT_BULK_DATA_GET = "1.2.840.10008.5.1.4.1.2.5.3"

#: Unique key of each retrieve level (PS3.4 C.6.1, C.6.2, Y.6.1, Z.6.1).
LEVEL_KEYS = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
              "IMAGE": "SOPInstanceUID", "FRAME": "SOPInstanceUID"}
FRAME_KEYS = ("SimpleFrameList", "CalculatedFrameList", "TimeRange")  # (0008,1161/1162/1163)
UID_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

_CHARSET = 0x00080005
_LEVEL = 0x00080052
_VIEW = 0x00080053
_PATIENT_ID = 0x00100020
_BASE_ALLOWED = frozenset((_LEVEL, _VIEW, 0x0020000D, 0x0020000E, 0x00080018))
_FRAME_TAGS = frozenset((0x00081161, 0x00081162, 0x00081163))


@dataclass(frozen=True, slots=True)
class RetrieveModel:
    """What catalog 3.4 says about one Q/R GET information model."""

    uid: str
    name: str
    levels: tuple[str, ...]  # top to bottom
    hierarchical: bool  # relational retrieve exists (C.4.3.2.2.1); higher-level keys otherwise needed
    instance_root: bool  # Composite Instance Root / Without Bulk Data: no (0008,0005), no relational
    allowed: frozenset[int]


MODELS: dict[str, RetrieveModel] = {m.uid: m for m in (
    RetrieveModel(PATIENT_ROOT_GET, "Patient Root", ("PATIENT", "STUDY", "SERIES", "IMAGE"), True, False,
                  _BASE_ALLOWED | {_CHARSET, _PATIENT_ID}),
    RetrieveModel(STUDY_ROOT_GET, "Study Root", ("STUDY", "SERIES", "IMAGE"), True, False,
                  _BASE_ALLOWED | {_CHARSET}),
    RetrieveModel(PATIENT_STUDY_ONLY_GET, "Patient/Study Only", ("PATIENT", "STUDY"), True, False,
                  _BASE_ALLOWED | {_CHARSET, _PATIENT_ID}),
    # (0008,0005) is left out of the allowed set here: GET-ID-009 reports it for these two.
    RetrieveModel(COMPOSITE_INSTANCE_ROOT_GET, "Composite Instance Root", ("IMAGE", "FRAME"), False, True,
                  _BASE_ALLOWED | _FRAME_TAGS | {_CHARSET}),
    RetrieveModel(WITHOUT_BULK_DATA_GET, "Composite Instance Without Bulk Data", ("IMAGE",), False, True,
                  _BASE_ALLOWED | {_CHARSET}),
)}


def model_of(view: AssociationView, primitive: Any) -> RetrieveModel | None:
    """The Q/R model named by the request (its Affected SOP Class, else its context)."""
    uid = primitive.wire.get("AffectedSOPClassUID")
    model = MODELS.get(uid) if isinstance(uid, str) else None
    if model is None and primitive.context_id is not None:
        model = MODELS.get(view.abstract_syntax(primitive.context_id) or "")
    return model


def extended_flag(view: AssociationView, sop_class: str, index: int) -> bool | None:
    """Was option byte ``index`` (0 relational retrieve, 1 enhanced multi-frame) accepted?

    None when the A-ASSOCIATE-AC is not in the capture. No item, or a short
    one, means the option is off (PS3.4 C.5.3.1).
    """
    accept = view.accept
    if accept is None:
        return None
    for item in accept.extended_negotiation:
        if item.sop_class_uid == sop_class:
            info = item.application_information
            return len(info) > index and info[index] == 1
    return False


# -- structural walk of the identifier bytes ------------------------------------------------

_VRS = frozenset((
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD",
    b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI",
    b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
))
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"UV"))
_UNDEFINED = 0xFFFFFFFF
# transfer syntax -> (explicit VR, little endian); other syntaxes are checked by pydicom only.
_WALKABLE = {"1.2.840.10008.1.2": (False, True), "1.2.840.10008.1.2.1": (True, True),
             "1.2.840.10008.1.2.2": (True, False)}
_TS_NAMES = {"1.2.840.10008.1.2": "Implicit VR Little Endian",
             "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
             "1.2.840.10008.1.2.2": "Explicit VR Big Endian"}


@dataclass(frozen=True, slots=True)
class IdentifierFault:
    kind: str  # "encoding": not in the accepted transfer syntax; "truncated": ends inside an element
    detail: str


def walk_identifier(data: bytes, transfer_syntax: str | None) -> IdentifierFault | None:
    """Walk the top-level element headers of ``data`` in ``transfer_syntax``.

    pydicom drops a cut-off last element silently and reads explicit data
    in an implicit context without complaint, so the framing is checked
    here: a header or value running past the end is "truncated", a header
    that belongs to the other VR encoding is "encoding". Stops (and accepts)
    at the first undefined-length element: its extent needs a full parse.
    """
    ts = (transfer_syntax or "").strip("\x00 ")
    if ts not in _WALKABLE:
        return None
    explicit, little = _WALKABLE[ts]
    name = _TS_NAMES[ts]
    order = "<" if little else ">"
    size = len(data)
    offset = 0
    while offset < size:
        if size - offset < 8:
            return IdentifierFault("truncated", f"the last {size - offset} bytes (offset {offset}) are too "
                                   "short for an element header")
        group, element = struct.unpack_from(order + "HH", data, offset)
        tag = f"({group:04X},{element:04X})"
        vr = bytes(data[offset + 4:offset + 6])
        if explicit:
            if vr not in _VRS:
                return IdentifierFault("encoding", f"element {tag} at offset {offset} has no VR (bytes "
                                       f"{vr.hex()}), as if Implicit VR, but the context's transfer syntax "
                                       f"is {name}")
            if vr in _LONG_VRS:
                if size - offset < 12:
                    return IdentifierFault("truncated", f"element {tag} at offset {offset} ends inside its "
                                           "header")
                (length,) = struct.unpack_from(order + "I", data, offset + 8)
                start = offset + 12
            else:
                (length,) = struct.unpack_from(order + "H", data, offset + 6)
                start = offset + 8
        else:
            (length,) = struct.unpack_from(order + "I", data, offset + 4)
            start = offset + 8
        if length == _UNDEFINED:
            return None
        if length > size - start:
            if not explicit and vr in _VRS:
                return IdentifierFault("encoding", f"element {tag} at offset {offset} is followed by the "
                                       f"VR '{vr.decode()}', as if Explicit VR, but the context's transfer "
                                       f"syntax is {name}")
            return IdentifierFault("truncated", f"element {tag} at offset {offset} declares {length} bytes "
                                   f"but only {size - start} remain")
        offset = start + length
    return None


def identifier_state(view: AssociationView, primitive: Any) -> tuple[Dataset | None, IdentifierFault | None]:
    """The decoded identifier and its framing fault, computed once per request."""
    cached = view.scratch.get("GET-ID-012")
    if cached is not None and cached[0] is primitive:
        return cached[1], cached[2]
    dataset = primitive.identifier_dataset
    raw = primitive.Identifier
    fault = walk_identifier(raw.getvalue(), primitive.transfer_syntax) if raw is not None else None
    view.scratch["GET-ID-012"] = (primitive, dataset, fault)  # one entry: the latest request
    return dataset, fault


def _checkable(event: Event) -> tuple[Dataset, RetrieveModel] | None:
    """The identifier and model when the key rules apply, else None."""
    model = model_of(event.view, event.primitive)
    if model is None:
        return None
    dataset, fault = identifier_state(event.view, event.primitive)
    if dataset is None or (fault is not None and fault.kind == "truncated"):
        return None
    if _refused_early(event):
        return None  # 9.3.3.4: after an early Failed/Refused answer the SCU may cut the identifier short
    return dataset, model


def _refused_early(event: Event) -> bool:
    """Was the request answered Failed or Refused before its identifier was complete (the
    same allowance GET-RQ-011 makes)?"""
    operation, request = event.operation, event.primitive
    if operation is None or not operation.responses:
        return False
    ended = request.data_frame or request.frame or 0
    return any(status_category(r.Status) == FAILURE and (r.frame or 0) <= ended for r in operation.responses)


# -- value helpers ------------------------------------------------------------------------


def _values(dataset: Dataset, keyword: str) -> list[str] | None:
    """The element's values as strings; None when absent, [] when present but empty."""
    if keyword not in dataset:
        return None
    value = dataset[keyword].value
    if value is None or value == "":
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _filled(dataset: Dataset, keyword: str) -> bool:
    values = _values(dataset, keyword)
    return bool(values) and any(v.strip() for v in values)


def _level(dataset: Dataset) -> str | None:
    values = _values(dataset, "QueryRetrieveLevel")
    if values is None:
        return None
    return "\\".join(v.strip() for v in values)


def _valid_level(dataset: Dataset, model: RetrieveModel) -> str | None:
    level = _level(dataset)
    return level if level in model.levels else None


def _at_valid_level(event: Event) -> tuple[Dataset, RetrieveModel, str] | None:
    """(identifier, model, level) when the identifier can be checked and names a level of
    its model (GET-ID-001/002 report the others)."""
    checked = _checkable(event)
    if checked is None:
        return None
    dataset, model = checked
    level = _valid_level(dataset, model)
    return None if level is None else (dataset, model, level)


def _key_tag(keyword: str) -> str:
    return {"PatientID": "(0010,0020)", "StudyInstanceUID": "(0020,000D)",
            "SeriesInstanceUID": "(0020,000E)", "SOPInstanceUID": "(0008,0018)"}[keyword]


def _named(keyword: str) -> str:
    return f"{keyword} {_key_tag(keyword)}"


# -- rules ------------------------------------------------------------------------------


@rule("GET-ID-001", "c_get_rq")
def level_present(report: Reporter, event: Event) -> None:
    checked = _checkable(event)
    if checked is not None and "QueryRetrieveLevel" not in checked[0]:
        report(f"{checked[1].name} C-GET-RQ identifier has no Query/Retrieve Level (0008,0052); "
               "every C-GET identifier must carry it")


@rule("GET-ID-002", "c_get_rq")
def level_valid_for_model(report: Reporter, event: Event) -> None:
    checked = _checkable(event)
    if checked is None:
        return
    dataset, model = checked
    level = _level(dataset)
    if level is None or level in model.levels or model.uid == WITHOUT_BULK_DATA_GET:
        return  # GET-ID-001 reports an absent level; GET-ID-010 the Without Bulk Data one
    shown = f"'{level}'" if level else "empty"
    report(f"Query/Retrieve Level (0008,0052) is {shown}, not valid for {model.name} GET; "
           f"expected one of {', '.join(model.levels)}")


@rule("GET-ID-003", "c_get_rq")
def level_key_present(report: Reporter, event: Event) -> None:
    checked = _at_valid_level(event)
    if checked is None:
        return
    dataset, model, level = checked
    key = LEVEL_KEYS[level]
    if not _filled(dataset, key):
        state = "absent" if key not in dataset else "empty"
        report(f"{level}-level {model.name} C-GET-RQ has its unique key {_named(key)} {state}; the key of "
               "the retrieve level must hold a value")


@rule("GET-ID-004", "c_get_rq")
def higher_keys_without_relational(report: Reporter, event: Event) -> None:
    checked = _at_valid_level(event)
    if checked is None:
        return
    dataset, model, level = checked
    if not model.hierarchical:
        return
    relational = extended_flag(event.view, model.uid, 0)
    if relational is not False:
        return  # accepted, or the negotiation is not in the capture
    missing = [_named(LEVEL_KEYS[upper]) for upper in model.levels[:model.levels.index(level)]
               if not _filled(dataset, LEVEL_KEYS[upper])]
    if missing:
        report(f"{level}-level {model.name} C-GET-RQ lacks {', '.join(missing)} although relational retrieve "
               "was not accepted; a baseline retrieve needs the unique key of every higher level")


@rule("GET-ID-005", "c_get_rq")
def single_valued_keys(report: Reporter, event: Event) -> None:
    checked = _checkable(event)
    if checked is None:
        return
    dataset, model = checked
    level = _valid_level(dataset, model)
    single = ["PatientID"]
    if level is not None:
        single += [LEVEL_KEYS[upper] for upper in model.levels[:model.levels.index(level)]]
        if level in ("PATIENT", "FRAME"):
            single.append(LEVEL_KEYS[level])
    many = []
    for key in dict.fromkeys(single):
        values = _values(dataset, key)
        if values is not None and len(values) > 1:
            many.append(f"{_named(key)} has {len(values)}")
    if many:
        where = f"{level}-level " if level else ""
        report(f"In a {where}{model.name} C-GET-RQ {', '.join(many)} values; Patient ID, the keys above the "
               "retrieve level and the PATIENT or FRAME key must be single-valued")


@rule("GET-ID-006", "c_get_rq")
def no_wildcards(report: Reporter, event: Event) -> None:
    checked = _checkable(event)
    if checked is None:
        return
    dataset, _ = checked
    bad = []
    for key in ("PatientID", *UID_KEYS):
        # '-' is range matching only where it cannot be data: a Patient ID may contain it, a UID may not.
        marks = "*?-" if key in UID_KEYS else "*?"
        for value in _values(dataset, key) or ():
            if any(mark in value for mark in marks):
                bad.append(f"{_named(key)} '{value}'")
                break
    if bad:
        report(f"C-GET-RQ unique keys use wild-card or range matching: {', '.join(bad)}; a retrieve names "
               "entities by single values or UID lists only")


@rule("GET-ID-007", "c_get_rq")
def only_unique_keys(report: Reporter, event: Event) -> None:
    checked = _checkable(event)
    if checked is None:
        return
    dataset, model = checked
    extra = []
    for tag in dataset.keys():
        if tag in model.allowed or tag.element == 0:  # group lengths are framing, not keys
            continue
        keyword = keyword_for_tag(tag) or ("private" if tag.is_private else "unknown")
        extra.append(f"{keyword} ({tag.group:04X},{tag.element:04X})")
    if extra:
        report(f"{model.name} C-GET-RQ identifier carries {', '.join(extra)}; only the unique keys, "
               "(0008,0052), (0008,0053) and (0008,0005) may appear (Required and Optional keys are not "
               "allowed in a C-GET)")


@rule("GET-ID-008", "c_get_rq")
def retrieve_view(report: Reporter, event: Event) -> None:
    checked = _checkable(event)
    if checked is None or "QueryRetrieveView" not in checked[0]:
        return
    dataset, model = checked
    faults = []
    values = _values(dataset, "QueryRetrieveView") or []
    shown = "\\".join(values)
    if [v.strip() for v in values] not in (["CLASSIC"], ["ENHANCED"]):
        faults.append(f"its value '{shown}' is not CLASSIC or ENHANCED")
    if extended_flag(event.view, model.uid, 1) is False:
        faults.append("Enhanced Multi-Frame Image Conversion was not accepted in extended negotiation")
    if faults:
        report(f"Query/Retrieve View (0008,0053) '{shown}' is present but {' and '.join(faults)}")


@rule("GET-ID-009", "c_get_rq")
def specific_character_set(report: Reporter, event: Event) -> None:
    checked = _checkable(event)
    if checked is None:
        return
    dataset, model = checked
    if model.instance_root:
        if "SpecificCharacterSet" in dataset:
            report(f"{model.name} C-GET-RQ identifier contains Specific Character Set (0008,0005); it must "
                   "not be present for this model")
        return
    patient_id = "".join(_values(dataset, "PatientID") or ())
    if "SpecificCharacterSet" not in dataset and any(ord(c) > 0x7F for c in patient_id):
        report(f"Patient ID (0010,0020) '{patient_id}' has characters outside the default repertoire but "
               "Specific Character Set (0008,0005) is absent", severity="warning")


@rule("GET-ID-010", "c_get_rq")
def frame_keys_and_bulk_data_level(report: Reporter, event: Event) -> None:
    checked = _checkable(event)
    if checked is None:
        return
    dataset, model = checked
    level = _level(dataset)
    if model.uid == WITHOUT_BULK_DATA_GET and level is not None and level != "IMAGE":
        shown = f"'{level}'" if level else "empty"
        report(f"Composite Instance Without Bulk Data C-GET-RQ has Query/Retrieve Level {shown}; "
               "it must be IMAGE")
    elif model.uid == COMPOSITE_INSTANCE_ROOT_GET and level == "FRAME":
        present = [k for k in FRAME_KEYS if k in dataset]
        if len(present) != 1:
            shown = ", ".join(present) if present else "none"
            report(f"FRAME-level Composite Instance Root C-GET-RQ has {len(present)} frame-range keys "
                   f"({shown}); exactly one of (0008,1161), (0008,1162), (0008,1163) is required")


@rule("GET-ID-011", "c_get_rq")
def no_lower_level_keys(report: Reporter, event: Event) -> None:
    checked = _at_valid_level(event)
    if checked is None:
        return
    dataset, model, level = checked
    lower = model.levels[model.levels.index(level) + 1:]
    found = [_named(LEVEL_KEYS[below]) for below in lower
             if LEVEL_KEYS[below] != LEVEL_KEYS[level] and LEVEL_KEYS[below] in dataset]
    if model.uid == COMPOSITE_INSTANCE_ROOT_GET and level == "IMAGE":
        found += [k for k in FRAME_KEYS if k in dataset]
    if found:
        report(f"{level}-level {model.name} C-GET-RQ also carries {', '.join(found)}, a key of a lower "
               "level; a retrieve names entities by the keys of its level and above")


@rule("GET-ID-012", "c_get_rq")
def parses_in_transfer_syntax(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    if primitive.Identifier is None:
        return  # GET-RQ-003 reports a missing identifier
    dataset, fault = identifier_state(event.view, primitive)
    ts = primitive.transfer_syntax or "unknown"
    if fault is not None and fault.kind == "encoding":
        report(f"C-GET-RQ identifier does not parse in transfer syntax {ts}: {fault.detail}")
    elif dataset is None and fault is None:
        why = next((p for p in reversed(primitive.problems) if p.startswith("identifier")), "decoding failed")
        report(f"C-GET-RQ identifier cannot be decoded in transfer syntax {ts}: {why}")
