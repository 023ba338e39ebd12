"""CMD rules (command set encoding), each with a capture that triggers it and one that does not."""

from __future__ import annotations

import struct

import pytest
from builders import retrieve
from rules_helpers import analyze_exchanges, findings

from rules.rq_builders import (
    element,
    get_exchange,
    get_rq_command,
    get_rq_elements,
    raw_command,
    sample_findings,
)

RQ_FRAME = 6  # SYN, SYN-ACK, ACK, A-ASSOCIATE-RQ, -AC, then the C-GET-RQ
SCU = "GETSCU @ 127.0.0.1:40001"


def _explicit(tag: int, vr: bytes, raw: bytes) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(raw)) + raw


def _analyze(tmp_path, command: bytes, data: bytes | None = None):
    return analyze_exchanges(tmp_path, get_exchange(command, data))


def _one(analysis, rule_id: str):
    found = findings(analysis, rule_id)
    assert len(found) == 1, found
    return found[0]


def _no_data(**changes) -> dict[int, bytes]:
    elements = get_rq_elements(data_set_type=0x0101)
    elements.update(changes)
    return elements


def test_cmd_001_explicit_vr_command_set(tmp_path):
    body = (_explicit(0x0002, b"UI", b"1.2.840.10008.5.1.4.1.2.1.3\x00")
            + _explicit(0x0100, b"US", b"\x10\x00") + _explicit(0x0110, b"US", b"\x01\x00")
            + _explicit(0x0800, b"US", b"\x01\x01"))
    command = _explicit(0x0000, b"UL", struct.pack("<I", len(body))) + body
    finding = _one(_analyze(tmp_path, command), "CMD-001")
    assert finding.severity == "error" and finding.peer == SCU and finding.peer_side == "requestor"
    assert finding.frame == RQ_FRAME
    assert "VR 'UL'" in finding.detail and "Explicit VR" in finding.detail


def test_cmd_001_element_runs_past_the_end(tmp_path):
    elements = _no_data()
    elements[0x0800] = struct.pack("<HHI", 0, 0x0800, 40) + b"\x01\x01"  # claims 40 bytes, has 2
    finding = _one(_analyze(tmp_path, raw_command(*(elements[t] for t in sorted(elements)))), "CMD-001")
    assert "(0000,0800)" in finding.detail and "declares 40 bytes" in finding.detail
    assert finding.peer_role == "C-GET SCU" and finding.message_id == 1


def test_cmd_001_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=2)), "CMD-001") == []


def test_cmd_002_order_and_repeats(tmp_path):
    elements = _no_data()
    ordered = [elements[t] for t in sorted(elements)]
    # Message ID before Command Field, and Priority twice.
    command = raw_command(ordered[0], ordered[2], ordered[1], ordered[3], ordered[3], ordered[4])
    finding = _one(_analyze(tmp_path, command), "CMD-002")
    assert finding.severity == "error" and finding.frame == RQ_FRAME and finding.peer_role == "C-GET SCU"
    assert "(0000,0100) after (0000,0110)" in finding.detail and "repeated: (0000,0700)" in finding.detail


def test_cmd_002_conformant(tmp_path):
    assert findings(_analyze(tmp_path, get_rq_command(_no_data())), "CMD-002") == []


def test_cmd_003_element_outside_group_0000(tmp_path):
    command = get_rq_command(_no_data()) + element(0x00080052, "STUDY ")
    command = raw_command(command[12:])  # rebuild the group length around the extra element
    finding = _one(_analyze(tmp_path, command), "CMD-003")
    assert finding.severity == "error" and "(0008,0052)" in finding.detail and finding.peer == SCU
    assert findings(_analyze(tmp_path, command), "CMD-004") == []


def test_cmd_003_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=1)), "CMD-003") == []


def test_cmd_004_group_length_wrong(tmp_path):
    elements = _no_data()
    body = [elements[t] for t in sorted(elements)]
    right = sum(map(len, body))
    finding = _one(_analyze(tmp_path, raw_command(*body, group_length=right + 10)), "CMD-004")
    assert finding.severity == "error" and finding.message_id == 1
    assert f"is {right + 10} but {right} command bytes follow" in finding.detail


def test_cmd_004_group_length_missing(tmp_path):
    elements = _no_data()
    command = raw_command(*(elements[t] for t in sorted(elements)), with_length=False)
    finding = _one(_analyze(tmp_path, command), "CMD-004")
    assert "no Command Group Length (0000,0000)" in finding.detail and finding.frame == RQ_FRAME


def test_cmd_004_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=2)), "CMD-004") == []


def test_cmd_005_lengths_that_do_not_fit(tmp_path):
    elements = _no_data()
    elements[0x0700] = element(0x0700, b"\x00\x00\x00\x00")  # US with 4 bytes
    elements[0x0002] = element(0x0002, b"1.2.840.10008.5.1.4.1.2.1.3")  # odd length, no pad
    finding = _one(_analyze(tmp_path, get_rq_command(elements)), "CMD-005")
    assert finding.severity == "error" and finding.peer_role == "C-GET SCU"
    assert "(0000,0002) has odd length 27" in finding.detail
    assert "(0000,0700) US has length 4, expected 2" in finding.detail


def test_cmd_005_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=2)), "CMD-005") == []


def test_cmd_006_retired_and_undefined_elements(tmp_path):
    elements = _no_data()
    elements[0x0850] = element(0x0850, 3)  # Number of Matches, retired
    elements[0x0ABC] = element(0x0ABC, 1)  # defined nowhere
    finding = _one(_analyze(tmp_path, get_rq_command(elements)), "CMD-006")
    assert finding.severity == "warning" and finding.peer == SCU and finding.message_id == 1
    assert "retired (0000,0850) NumberOfMatches" in finding.detail
    assert "private or undefined (0000,0ABC)" in finding.detail


def test_cmd_006_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=2)), "CMD-006") == []


@pytest.mark.parametrize("field", [0x0040, 0x8FFF])
def test_cmd_007_unknown_command_field(tmp_path, field):
    command = raw_command(element(0x0100, field), element(0x0110, 9), element(0x0800, 0x0101))
    finding = _one(_analyze(tmp_path, command), "CMD-007")
    assert finding.severity == "error" and f"0x{field:04X}" in finding.detail
    assert finding.peer_side == "requestor"
    assert finding.peer_role == "association requestor" and finding.message_id == 9


def test_cmd_007_conformant(tmp_path):
    command = raw_command(element(0x0100, 0x0030), element(0x0110, 9), element(0x0800, 0x0101))  # C-ECHO
    assert findings(_analyze(tmp_path, command), "CMD-007") == []


def test_real_captures_have_no_cmd_findings():
    # Catalog section 6 documents no command-encoding deviation for pynetdicom or DCMTK.
    for name, found in sample_findings().items():
        assert [f for f in found if f.rule.startswith("CMD-")] == [], name
