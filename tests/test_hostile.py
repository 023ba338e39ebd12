"""Hostile sizes: memory stays bounded and the report says what was seen.

Each test streams frames straight into a :class:`CaptureAnalyzer` (no file,
no scapy) and measures the peak of Python allocations with ``tracemalloc``
while it does. The bounds are stated per test; they are far below what
keeping the hostile bytes would take.
"""

from __future__ import annotations

import struct
import tracemalloc
from contextlib import contextmanager

from builders import CT, PATIENT_ROOT_GET, associate, c_get_rq, c_get_rsp, command_set, release_rp, release_rq
from fuzz_support import Conversation, feed_frames

from trace_analyzer import CaptureAnalyzer

MB = 1024 * 1024
CONTEXTS = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]


@contextmanager
def peak_memory(limit: int, what: str):
    """Fail if Python allocations inside the block peak above ``limit`` bytes."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit, f"{what}: peak {peak / MB:.1f} MiB, bound {limit / MB:.0f} MiB"


def _pdu(pdu_type: int, body: bytes, length: int | None = None) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, len(body) if length is None else length) + body


def _pdv(context_id: int, control: int, fragment: bytes, length: int | None = None) -> bytes:
    item_length = len(fragment) + 2 if length is None else length
    return struct.pack(">IBB", item_length, context_id, control) + fragment


def _open(conversation: Conversation) -> None:
    conversation.send("c", associate(True, CONTEXTS, roles=[(CT, 0, 1)]))
    conversation.send("s", associate(False, CONTEXTS, roles=[(CT, 0, 1)]))


def _finish(conversation: Conversation, analyzer: CaptureAnalyzer) -> CaptureAnalyzer:
    feed_frames(analyzer, conversation.frames)
    analyzer.finish()
    return analyzer


def _one_get(conversation: Conversation, message_id: int) -> None:
    conversation.send("c", c_get_rq(message_id))
    conversation.send("s", c_get_rsp(message_id, 0xA701, (None, 0, 0, 0)))


def _codes(analyzer: CaptureAnalyzer) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for problem in analyzer.problems:
        assert problem.frame >= 1
        out.setdefault(problem.code, []).append(problem.detail)
    return out


def _rules(analyzer: CaptureAnalyzer) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for finding in analyzer.rules.findings:
        assert finding.frame is not None and finding.frame >= 1
        out.setdefault(finding.rule, []).append(finding.detail)
    return out


def test_p_data_claiming_4_gb_then_more_traffic():
    conversation = Conversation()
    _open(conversation)
    _one_get(conversation, 1)
    # A P-DATA-TF whose length field says 4 GiB - 1, with a little of "its" body, then normal traffic.
    conversation.send("c", _pdu(0x04, _pdv(1, 0x03, bytes(64)), length=0xFFFFFFFF))
    _one_get(conversation, 2)
    conversation.send("c", release_rq())
    conversation.send("s", release_rp())
    conversation.close()
    analyzer = CaptureAnalyzer("hostile")
    with peak_memory(16 * MB, "4 GiB PDU length"):
        _finish(conversation, analyzer)
    codes = _codes(analyzer)
    assert any("4294967295" in detail for detail in codes["CAPTURE-RESYNC"]), codes
    statuses = [(op.message_id, op.final.Status if op.final else None)
                for op in analyzer.correlator.operations]
    assert statuses == [(1, 0xA701), (2, 0xA701)], "the C-GETs before and after it are both reported"


def test_pdv_length_0xffffffff():
    conversation = Conversation()
    _open(conversation)
    _one_get(conversation, 1)
    conversation.send("c", _pdu(0x04, _pdv(1, 0x03, bytes(40), length=0xFFFFFFFF)))
    _one_get(conversation, 2)
    conversation.close()
    analyzer = CaptureAnalyzer("hostile")
    with peak_memory(16 * MB, "PDV length 0xFFFFFFFF"):
        _finish(conversation, analyzer)
    assert any("4294967295" in detail for detail in _codes(analyzer)["UL-025"])
    assert any("4294967295" in detail for detail in _rules(analyzer)["UL-025"])
    assert [op.message_id for op in analyzer.correlator.operations if op.complete] == [1, 2]


def _associate_rq(items: bytes) -> bytes:
    body = struct.pack(">HH", 1, 0) + b"QRSCP".ljust(16) + b"GETSCU".ljust(16) + bytes(32) + items
    return _pdu(0x01, body)


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def test_associate_rq_with_5000_presentation_contexts():
    items = _item(0x10, b"1.2.840.10008.3.1.1.1")
    for index in range(5000):
        context_id = (2 * index + 1) & 0xFF  # only 128 odd IDs exist: most are used again
        items += _item(0x20, bytes([context_id, 0, 0, 0]) + _item(0x30, CT.encode())
                       + _item(0x40, b"1.2.840.10008.1.2"))
    items += _item(0x50, _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.3.4"))
    conversation = Conversation()
    conversation.send("c", _associate_rq(items))
    conversation.send("s", associate(False, CONTEXTS))
    conversation.close()
    analyzer = CaptureAnalyzer("hostile")
    with peak_memory(64 * MB, "5000 presentation contexts"):
        _finish(conversation, analyzer)
    [record] = analyzer.associations
    assert len(record.request.contexts) == 5000
    rules = _rules(analyzer)
    [ul_008] = rules["UL-008"]
    assert "proposed more than once" in ul_008 and "122 more" in ul_008 and len(ul_008) < 1000
    assert len(analyzer.rules.findings) < 20, "one finding per rule, not one per context"


def test_associate_rq_with_5000_user_items():
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.3.4")
    user += b"".join(_item(0x55, b"V%05d" % i) for i in range(5000))
    context = bytes([1, 0, 0, 0]) + _item(0x30, PATIENT_ROOT_GET.encode()) + _item(0x40, b"1.2.840.10008.1.2")
    items = _item(0x10, b"1.2.840.10008.3.1.1.1") + _item(0x20, context)
    items += _item(0x50, user)
    conversation = Conversation()
    conversation.send("c", _associate_rq(items))
    conversation.close()
    analyzer = CaptureAnalyzer("hostile")
    with peak_memory(32 * MB, "5000 user items"):
        _finish(conversation, analyzer)
    [record] = analyzer.associations
    assert len(record.request.user_items) == 5002
    rules = _rules(analyzer)
    assert "UL-007" in rules, rules.keys()
    assert all(len(detail) < 2000 for details in rules.values() for detail in details)
    assert len(analyzer.rules.findings) < 20, "one finding per rule, not one per item"


def test_command_set_with_10000_elements():
    conversation = Conversation()
    _open(conversation)
    base = command_set({0x0002: PATIENT_ROOT_GET, 0x0100: 0x0010, 0x0110: 5, 0x0700: 0, 0x0800: 0x0101})
    extra = b"".join(struct.pack("<HHI", 0, 0x6000 + i, 2) + b"\x00\x00" for i in range(10000))
    command = base[:8] + struct.pack("<I", len(base) - 12 + len(extra)) + base[12:] + extra
    conversation.send("c", _pdu(0x04, _pdv(1, 0x03, command)))
    _one_get(conversation, 6)
    conversation.close()
    analyzer = CaptureAnalyzer("hostile")
    with peak_memory(64 * MB, "10000 command elements"):
        _finish(conversation, analyzer)
    [message] = [m for m in analyzer.messages if m.MessageID == 5]
    assert len(message.elements) == 10006
    details = [p.detail for p in analyzer.problems if p.code == "DECODE-COMMAND"]
    assert any("(0000,6000)" in d for d in details)
    assert len(details) <= 40 and "9968 more element faults not listed (10006 elements)" in details[-1]
    [cmd_006] = [f.detail for f in analyzer.rules.findings if f.rule == "CMD-006"]
    assert "(0000,6000)" in cmd_006 and "and 9984 more" in cmd_006 and len(cmd_006) < 1000
    assert analyzer.correlator.operations[-1].message_id == 6


def _endless_data_set(command: bytes, context_id: int, total: int, side: str) -> tuple[Conversation, object]:
    """A conversation whose ``side`` sends ``command`` then ``total`` data set bytes with no last fragment."""
    conversation = Conversation(mss=65000)
    _open(conversation)
    conversation.send("c", c_get_rq(1))
    conversation.send(side, _pdu(0x04, _pdv(context_id, 0x03, command)))
    head = conversation.frames
    fragment = bytes(16384 - 12)
    pdu = _pdu(0x04, _pdv(context_id, 0x00, fragment))  # data, not last
    per_frame = 65000 // len(pdu)
    chunk = pdu * per_frame

    def frames():
        yield from head
        sent = 0
        while sent < total:
            yield from conversation.segments(side, chunk)
            sent += len(fragment) * per_frame
        conversation.close()
        yield from conversation.frames[-2:]

    return conversation, frames()


def test_c_store_data_set_of_300_mb_without_last_fragment():
    total = 300 * MB
    command = command_set({0x0002: CT, 0x0100: 0x0001, 0x0110: 100, 0x0700: 0, 0x0800: 0x0000,
                           0x1000: "1.2.3.4.1"})
    _, frames = _endless_data_set(command, 3, total, "s")
    analyzer = CaptureAnalyzer("hostile")
    with peak_memory(32 * MB, "300 MB C-STORE data set"):
        feed_frames(analyzer, frames)
        analyzer.finish()
    details = [p.detail for p in analyzer.problems if p.code == "CAPTURE-INCOMPLETE"]
    assert details and "C-STORE-RQ" in details[0]
    seen = int(details[0].split("(")[1].split(" bytes")[0])
    assert seen >= total, details
    [store] = [m for m in analyzer.messages if m.MessageID == 100]
    assert store.data_set_length == seen and not store.data_set_complete


def test_identifier_that_never_ends():
    """A C-GET-RSP data set is kept (it is small by nature) only up to a bound, then counted."""
    total = 40 * MB
    command = command_set({0x0002: PATIENT_ROOT_GET, 0x0100: 0x8010, 0x0120: 1, 0x0800: 0x0000,
                           0x0900: 0xA702, 0x1021: 0, 0x1022: 1, 0x1023: 0})
    _, frames = _endless_data_set(command, 1, total, "s")
    analyzer = CaptureAnalyzer("hostile")
    with peak_memory(24 * MB, "40 MB response data set"):
        feed_frames(analyzer, frames)
        analyzer.finish()
    details = [p.detail for p in analyzer.problems if p.code == "CAPTURE-INCOMPLETE"]
    assert details and "C-GET-RSP" in details[0] and "bytes seen" in details[0]
    [response] = [m for m in analyzer.messages if getattr(m, "MessageIDBeingRespondedTo", None) == 1]
    assert response.data_set_length >= total
    assert any("not kept" in p for p in response.problems) or response.data_set_length >= total


def test_p_data_claiming_far_more_than_the_receiver_accepts():
    """200 MB claimed where the receiver announced 16 KiB: garbage, not a PDU to wait for."""
    conversation = Conversation()
    _open(conversation)
    _one_get(conversation, 1)
    conversation.send("c", _pdu(0x04, _pdv(1, 0x03, bytes(64)), length=200 * 1024 * 1024))
    _one_get(conversation, 2)
    conversation.send("c", release_rq())
    conversation.send("s", release_rp())
    conversation.close()
    analyzer = CaptureAnalyzer("hostile")
    with peak_memory(16 * MB, "200 MB PDU length"):
        _finish(conversation, analyzer)
    codes = _codes(analyzer)
    assert any(str(200 * 1024 * 1024) in detail and "the receiver accepts" in detail
               for detail in codes["CAPTURE-RESYNC"]), codes
    requests = [op.request is not None for op in analyzer.correlator.operations]
    assert requests == [True, True], "the C-GET-RQ after the garbage is decoded, not swallowed"
