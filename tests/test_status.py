"""Tests for trace_analyzer.status."""

from __future__ import annotations

import pytest

from trace_analyzer.status import (
    CATEGORIES,
    is_final,
    status_category,
    status_hex,
    status_meaning,
)


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (0x0000, "Success"),
        (0x0001, "Warning"),
        (0xB000, "Warning"),
        (0xBFFF, "Warning"),
        (0x0107, "Warning"),
        (0x0116, "Warning"),
        (0xA701, "Failure"),
        (0xA900, "Failure"),
        (0xC000, "Failure"),
        (0xC413, "Failure"),
        (0x0122, "Failure"),
        (0x0110, "Failure"),
        (0x01FF, "Failure"),
        (0x0210, "Failure"),
        (0x0213, "Failure"),
        (0xFE00, "Cancel"),
        (0xFF00, "Pending"),
        (0xFF01, "Pending"),
        (0x0002, "Unknown"),
        (0x1000, "Unknown"),
        (0xD000, "Unknown"),
        (0xFE01, "Unknown"),
        (0xEE01, "Unknown"),
        (0x10000, "Unknown"),
        (-1, "Unknown"),
    ],
)
def test_category(code, category):
    assert status_category(code) == category
    assert category in CATEGORIES


def test_category_of_non_int_wire_value():
    assert status_category(b"\x00\xff\x00\x00") == "Unknown"
    assert status_category(None) == "Unknown"


def test_c_get_meanings():
    assert status_meaning("C-GET", 0xFF00) == "Sub-operations are continuing"
    assert "unable to perform sub-operations" in status_meaning("C-GET", 0xA702)
    assert "unable to calculate number of matches" in status_meaning("C-GET", 0xA701)
    assert "Identifier does not match SOP Class" in status_meaning("C-GET", 0xA900)
    assert status_meaning("C-GET", 0xC000) == status_meaning("C-GET", 0xC413) == "Failed: Unable to process"
    assert "Cancel" in status_meaning("C-GET", 0xFE00)
    assert "one or more failures or warnings" in status_meaning("C-GET", 0xB000)
    assert "no failures or warnings" in status_meaning("C-GET", 0x0000)
    assert "frames" in status_meaning("C-GET", 0xAA00)
    assert status_meaning("C-GET", 0xAA04) == "Failed: Invalid request"
    assert status_meaning("C-GET", 0x0122) == "Refused: SOP Class not supported"
    assert status_meaning("C-GET", 0x0124) == "Refused: Not authorized"
    assert status_meaning("C-GET", 0x0210) == "Duplicate invocation"
    assert status_meaning("C-GET", 0x0211) == "Unrecognized operation"
    assert status_meaning("C-GET", 0x0212) == "Mistyped argument"
    assert status_meaning("C-GET", 0x0110) == "Processing failure"


def test_c_get_ff00_is_not_c_find_wording():
    meaning = status_meaning("C-GET", 0xFF00)
    assert "Match" not in meaning and "match" not in meaning
    assert "match" in status_meaning("C-FIND", 0xFF00).lower()


def test_b000_differs_between_services():
    get = status_meaning("C-GET", 0xB000)
    store = status_meaning("C-STORE", 0xB000)
    assert get != store
    assert store == "Coercion of data elements"


def test_c_store_meanings():
    assert status_meaning("C-STORE", 0xA700) == "Refused: Out of resources"
    assert status_meaning("C-STORE", 0xA7FF) == "Refused: Out of resources"
    assert status_meaning("C-STORE", 0xA900) == "Error: Data Set does not match SOP Class"
    assert status_meaning("C-STORE", 0xC123) == "Error: Cannot understand"
    assert status_meaning("C-STORE", 0xB006) == "Elements discarded"
    assert status_meaning("C-STORE", 0xB007) == "Data Set does not match SOP Class"
    assert status_meaning("C-STORE", 0x0000) == "Success"
    assert status_meaning("C-STORE", 0x0117) == "Invalid SOP Instance"
    assert status_meaning("C-STORE", 0x0122) == "Refused: SOP Class not supported"
    assert status_meaning("C-STORE", 0x0124) == "Refused: Not authorized"


def test_c_move_and_c_find_minimal():
    assert status_meaning("C-MOVE", 0xA801) == "Refused: Move Destination unknown"
    assert status_meaning("C-MOVE", 0xFF00) == "Sub-operations are continuing"
    assert status_meaning("C-FIND", 0xA700) == "Refused: Out of resources"
    assert status_meaning("C-FIND", 0xC001) == "Failed: Unable to process"


def test_unknown_codes():
    assert status_meaning("C-GET", 0xEE01) == "Unknown status for C-GET (Unknown)"
    # a valid class but not a C-GET code
    assert status_meaning("C-GET", 0xA801) == "Unknown status for C-GET (Failure)"
    assert status_meaning("C-STORE", 0xFF00) == "Unknown status for C-STORE (Pending)"
    assert status_meaning("C-GET", b"\x01") == "Unknown status for C-GET (Unknown)"


def test_service_name_forms():
    assert status_meaning("c_get", 0xFF00) == "Sub-operations are continuing"
    assert status_meaning("C-GET-RSP", 0xFF00) == "Sub-operations are continuing"
    # services without their own table use the general Annex C table
    assert status_meaning("C-ECHO", 0x0122) == "Refused: SOP Class not supported"


def test_status_hex():
    assert status_hex(0xA702) == "0xA702"
    assert status_hex(0) == "0x0000"
    assert status_hex(0xFF00) == "0xFF00"
    assert status_hex(b"\x00\xff\x00") == "raw:00ff00"


def test_is_final():
    assert not is_final(0xFF00)
    assert not is_final(0xFF01)
    for code in (0x0000, 0xB000, 0xA702, 0xC000, 0xFE00, 0xEE01):
        assert is_final(code)
