"""C_MOVE, C_FIND and C_ECHO keep pynetdicom's API: the same names, and setters that refuse what
pynetdicom's refuse (pynetdicom's own primitives are the oracle here)."""

from __future__ import annotations

import warnings
from io import BytesIO

import pytest
from pynetdicom import dimse_primitives as pyn

from trace_analyzer import primitives as ours

MOVE_DESTINATIONS = ["STORESCP", "A", "A" * 16, "A" * 17, "", "    ", "BAD\\AE", "TAB\tAE", None, 5]


def _outcome(cls, name: str, value):
    primitive = cls()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynetdicom warns on bytes; the outcome is what counts
        try:
            setattr(primitive, name, value)
        except (TypeError, ValueError) as exc:
            return type(exc)
    return getattr(primitive, name)


@pytest.mark.parametrize("value", MOVE_DESTINATIONS, ids=repr)
def test_move_destination_setter_agrees_with_pynetdicom(value):
    assert _outcome(ours.C_MOVE, "MoveDestination", value) == _outcome(pyn.C_MOVE, "MoveDestination", value)


def test_move_destination_from_bytes_as_pynetdicom():
    assert _outcome(ours.C_MOVE, "MoveDestination", b"STORESCP  ") == "STORESCP"
    assert _outcome(pyn.C_MOVE, "MoveDestination", b"STORESCP  ") == "STORESCP"


@pytest.mark.parametrize("cls", ["C_MOVE", "C_FIND", "C_ECHO"])
def test_same_parameter_names_as_pynetdicom(cls):
    theirs = getattr(pyn, cls)()
    mine = getattr(ours, cls)()
    for name in ("MessageID", "MessageIDBeingRespondedTo", "AffectedSOPClassUID", "Status", "ErrorComment",
                 *getattr(theirs, "REQUEST_KEYWORDS", ()), *getattr(theirs, "STATUS_OPTIONAL_KEYWORDS", ())):
        assert hasattr(mine, name), (cls, name)
        assert getattr(mine, name) is None or name == "Priority", (cls, name)
    assert mine.msg_type == cls.replace("_", "-")


def test_c_move_shares_the_c_get_setters():
    move = ours.C_MOVE()
    with pytest.raises(ValueError):
        move.Priority = 3
    with pytest.raises(ValueError):
        move.NumberOfCompletedSuboperations = -1
    with pytest.raises(TypeError):
        move.Identifier = b"raw"
    move.Identifier = BytesIO(b"")
    assert not isinstance(move, ours.C_GET) and not isinstance(ours.C_GET(), ours.C_MOVE)
