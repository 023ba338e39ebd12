"""MOVE-RQ rules: the C-MOVE-RQ as sent (PS3.7 9.1.4.1, 9.3.4.1; PS3.4 C.4.2).

Checked on the ``c_move_rq`` event, from what the wire carried (``primitive.wire``):
the required elements, the Move Destination's form as an AE title, the Priority, that
the SOP class is the presentation context's, and that the Identifier names a level.
"""

from __future__ import annotations

import re

from ..commandset import NO_DATA_SET
from .engine import Event, Reporter, rule

_REQUIRED = (("AffectedSOPClassUID", "(0000,0002)"), ("MessageID", "(0000,0110)"),
             ("Priority", "(0000,0700)"), ("MoveDestination", "(0000,0600)"))
_AE_FORBIDDEN = re.compile(r"[\\\x00-\x1f\x7f]")


def missing(wire: dict, required: tuple[tuple[str, str], ...]) -> list[str]:
    """The tags of the ``required`` (keyword, tag) pairs absent from a message's wire elements."""
    return [tag for keyword, tag in required if keyword not in wire]


def level_problem(primitive) -> str | None:
    """What is wrong with a Query/Retrieve request's Identifier as a query (None if nothing)."""
    if primitive.Identifier is None:
        return None  # the required-elements rule says when it was announced and is missing
    dataset = primitive.identifier_dataset
    if dataset is None:
        return "Identifier cannot be decoded: " + "; ".join(
            p for p in primitive.problems if p.startswith("identifier"))
    if "QueryRetrieveLevel" not in dataset:
        return "Identifier lacks Query/Retrieve Level (0008,0052)"
    return None


@rule("MOVE-RQ-001", "c_move_rq")
def required_elements(report: Reporter, event: Event) -> None:
    wire = event.primitive.wire
    missing_tags = missing(wire, _REQUIRED)
    if missing_tags:
        report(f"C-MOVE-RQ lacks {', '.join(missing_tags)}; Table 9.3-9 requires them")
    if wire.get("CommandDataSetType") == NO_DATA_SET:
        report("C-MOVE-RQ says no data set follows ((0000,0800) = 0x0101); its Identifier is required")


@rule("MOVE-RQ-002", "c_move_rq")
def destination_is_an_ae_title(report: Reporter, event: Event) -> None:
    value = event.primitive.wire.get("MoveDestination")
    if value is None:
        return  # MOVE-RQ-001
    if isinstance(value, (bytes, bytearray)):
        report(f"Move Destination is {len(value)} bytes that are not text")
    elif not value.strip():
        report("Move Destination (0000,0600) is empty or only spaces")
    elif len(value) > 16:
        report(f"Move Destination {value!r} is {len(value)} characters long; an AE title has at most 16")
    elif _AE_FORBIDDEN.search(value):
        report(f"Move Destination {value!r} holds a backslash or control character")


@rule("MOVE-RQ-003", "c_move_rq")
def priority_is_defined(report: Reporter, event: Event) -> None:
    value = event.primitive.wire.get("Priority")
    if value is not None and value not in (0, 1, 2):
        report(f"C-MOVE-RQ Priority is {value!r}; only 0x0000 (medium), 0x0001 (high), 0x0002 (low) exist")


@rule("MOVE-RQ-004", "c_move_rq")
def sop_class_is_the_contexts(report: Reporter, event: Event) -> None:
    primitive = event.primitive
    uid = primitive.wire.get("AffectedSOPClassUID")
    abstract = event.view.abstract_syntax(primitive.context_id)
    if isinstance(uid, str) and abstract is not None and uid != abstract:
        report(f"C-MOVE-RQ Affected SOP Class UID {uid} is not the abstract syntax {abstract} of "
               f"presentation context {primitive.context_id}")


@rule("MOVE-RQ-005", "c_move_rq")
def identifier_names_a_level(report: Reporter, event: Event) -> None:
    problem = level_problem(event.primitive)
    if problem:
        report(f"C-MOVE-RQ {problem}")
