"""Command sets decoded by a precompiled layout (commandset.Layout) come out exactly as the
general decoder gives them, and so does every table.

Each sample capture's command sets are decoded both ways and compared element by element;
then every sample is analysed with and without layouts and every table must be the same.
Hypothesis varies the values, lengths and tags of real command sets: a variant of a known
layout's size must either match it and decode the same, or fall back to the general decoder.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from fuzz_support import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ul_builders import c_get_rq_message, c_get_rsp_message, c_store_rq_message, command_bytes

from trace_analyzer import commandset, dimse
from trace_analyzer.analysis import Analysis, analyze_capture
from trace_analyzer.commandset import decode_command_set, decode_general
from trace_analyzer.primitives import C_CANCEL, C_GET, C_STORE

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.name for p in (ROOT / "sample_pcaps").iterdir() if p.name != "manifest.json"
                 and p.suffix in (".pcap", ".pcapng", ".gz"))


def _fields(command) -> tuple:
    return ([(e.tag, e.keyword, e.vr, e.length, type(e.value), e.value) for e in command.elements],
            command.problems, command.stopped, dict(command._by_keyword), command.keywords,
            command.command_field, command.has_data_set)


def _same_both_ways(raw: bytes) -> bool:
    """Decode ``raw`` twice (the second time a layout may take it) and the general way;
    True if a layout decoded it."""
    general = decode_general(raw)
    first = decode_command_set(raw)
    again = decode_command_set(bytearray(raw))
    assert first == general and again == general  # before command_field caches itself
    for command in (first, again):
        assert _fields(command) == _fields(general)
    return again.layout is not None


def _command_sets(path: Path, monkeypatch) -> list[bytes]:
    seen: list[bytes] = []
    real = dimse.decode_command_set

    def record(data):
        seen.append(bytes(data))
        return real(data)

    monkeypatch.setattr(dimse, "decode_command_set", record)
    analyze_capture(str(path))
    monkeypatch.undo()
    return seen


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_command_sets_decode_the_same(name, monkeypatch):
    raws = _command_sets(ROOT / "sample_pcaps" / name, monkeypatch)
    taken = [_same_both_ways(raw) for raw in raws]
    if raws and not decode_general(raws[0]).problems:
        assert any(taken), f"{name}: no command set was decoded by a layout"


def _attributes(primitive) -> dict:
    names = [n for cls in type(primitive).__mro__ for n in getattr(cls, "__slots__", ())]
    out = {name: getattr(primitive, name) for name in names if name not in ("_identifier",)}
    out["problems"], out["findings"] = primitive.problems, primitive.findings
    identifier = primitive.Identifier if isinstance(primitive, C_GET) else None
    out["identifier"] = identifier.getvalue() if identifier is not None else None
    return out


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_tables_same_with_and_without_layouts(name, monkeypatch):
    """The fast ways (layouts, C-STORE and C-CANCEL primitives built without the generic
    loop) against the general ones: every table and every primitive attribute."""
    path = str(ROOT / "sample_pcaps" / name)
    fast = Analysis([analyze_capture(path)], [])
    monkeypatch.setattr(commandset, "USE_LAYOUTS", False)
    monkeypatch.setattr(C_STORE, "_PLAIN", False)
    monkeypatch.setattr(C_CANCEL, "_PLAIN", False)
    slow = Analysis([analyze_capture(path)], [])
    fast_tables, slow_tables = fast.to_dict(), slow.to_dict()
    for table in slow_tables:
        assert fast_tables[table] == slow_tables[table], f"{name}: table {table} differs"
    assert len(fast.primitives) == len(slow.primitives)
    for one, other in zip(fast.primitives, slow.primitives, strict=True):
        assert type(one) is type(other)
        assert _attributes(one) == _attributes(other), f"{name}: frame {one.frame} differs"


_BASES = [command_bytes(c_get_rq_message(7)), command_bytes(c_get_rsp_message(0xFF00, counters=True)),
          command_bytes(c_get_rsp_message(0x0000, counters=False)), command_bytes(c_store_rq_message())]


@settings(max_examples=EXAMPLES * 5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(_BASES), edits=st.lists(
    st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=6)), max_size=4))
def test_varied_command_sets_decode_the_same(base, edits):
    _same_both_ways(base)  # the layout of the unchanged command set is known from here on
    raw = bytearray(base)
    for offset, patch in edits:
        offset %= len(raw)
        raw[offset:offset + len(patch)] = patch[:len(raw) - offset]
    _same_both_ways(bytes(raw))


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(message_id=st.integers(0, 0xFFFF), status=st.sampled_from([0, 0xFF00, 0xB000, 0xA702, 0xFE00]),
       counters=st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4),
       group_length_delta=st.sampled_from([0, 0, 0, 2, -2]))
def test_values_vary_within_a_layout(message_id, status, counters, group_length_delta):
    raw = bytearray(command_bytes(c_get_rsp_message(status, counters=True)))
    _same_both_ways(bytes(raw))
    # Rewrite the US values in place (same layout, other values) and maybe the group length.
    offset = 0
    while offset + 8 <= len(raw):
        group, elem, length = struct.unpack_from("<HHI", raw, offset)
        if elem == 0x0120:
            struct.pack_into("<H", raw, offset + 8, message_id)
        elif elem == 0x0900:
            struct.pack_into("<H", raw, offset + 8, status)
        elif elem in (0x1020, 0x1021, 0x1022, 0x1023):
            struct.pack_into("<H", raw, offset + 8, counters[elem - 0x1020])
        elif elem == 0 and length == 4:
            value = struct.unpack_from("<I", raw, offset + 8)[0]
            struct.pack_into("<I", raw, offset + 8, max(0, value + group_length_delta))
        offset += 8 + length
    took = _same_both_ways(bytes(raw))
    assert took == (group_length_delta == 0)
