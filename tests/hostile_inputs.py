"""The hostile captures of issue 15, built byte by byte (no committed blobs).

Each builder returns the bytes of a classic pcap (Ethernet); ``python tests/hostile_inputs.py DIR``
writes them all to DIR, for running the command line on them by hand. Encodings are written out
here from PS3.8 9.3 and PS3.7 6.3.1 / E.1 with ``struct``, not with the code under test.

* ``bad_message_id_length(n)``: a C-GET-RSP whose Message ID Being Responded To (0000,0120) has
  length ``n`` (0, 4 or 5) instead of 2, then an A-ABORT.
* ``deflate_bomb(size)``: a context accepted with Deflated Explicit VR Little Endian, and a
  C-GET-RQ identifier that inflates to ``size`` bytes (one UN element of zeros).
* ``empty_command_flood(count)``: ``count`` 6-byte command PDVs (control 0x03, empty fragment).
* ``orphan_data_flood(count)``: ``count`` 2-byte data PDVs with no command before them.
* ``backwards_time()``: a C-STORE data set in the middle of which one record is stamped an hour
  later than its neighbours (the fast lane must take the largest time, as the ordinary path does).
* ``mathtext_strings()``: a calling AE title and an error comment that matplotlib would read as
  mathtext.
* ``large_retrieve(instances)``: a plain retrieve of ``instances`` C-STOREs of 64 KiB (for
  truncating a capture while it is read).
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

from fuzz_support import Conversation
from hostile_builders import _element, _item, _pdu, _us, command

GET = b"1.2.840.10008.5.1.4.1.2.1.3\x00"  # Patient Root Query/Retrieve - GET, padded even
CT = b"1.2.840.10008.5.1.4.1.1.2\x00"
IMPLICIT = b"1.2.840.10008.1.2"
DEFLATED = b"1.2.840.10008.1.2.1.99"


def associate(request: bool, syntax: bytes = IMPLICIT, calling: bytes = b"GETSCU",
              called: bytes = b"QRSCP") -> bytes:
    """A-ASSOCIATE-RQ or -AC: context 1 C-GET, context 3 CT storage (SCP role), in ``syntax``."""
    items = _item(0x10, b"1.2.840.10008.3.1.1.1")
    for context_id, abstract in ((1, GET.rstrip(b"\x00")), (3, CT.rstrip(b"\x00"))):
        if request:
            items += _item(0x20, bytes([context_id, 0, 0, 0]) + _item(0x30, abstract) + _item(0x40, syntax))
        else:
            items += _item(0x21, bytes([context_id, 0, 0, 0]) + _item(0x40, syntax))
    ct = CT.rstrip(b"\x00")
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.3.4")
    user += _item(0x54, struct.pack(">H", len(ct)) + ct + bytes([0, 1]))
    items += _item(0x50, user)
    body = struct.pack(">HH", 1, 0) + called[:16].ljust(16) + calling[:16].ljust(16) + bytes(32) + items
    return _pdu(0x01 if request else 0x02, body)


us = _us


def pdv(context_id: int, control: int, fragment: bytes) -> bytes:
    return struct.pack(">IBB", len(fragment) + 2, context_id, control) + fragment


def message(context_id: int, command_set: bytes, data: bytes | None = None, room: int = 16378) -> bytes:
    out = _pdu(0x04, pdv(context_id, 3, command_set))
    if data is not None:
        chunks = [data[i:i + room] for i in range(0, len(data), room)] or [b""]
        for index, chunk in enumerate(chunks):
            out += _pdu(0x04, pdv(context_id, 2 if index == len(chunks) - 1 else 0, chunk))
    return out


def get_rq(message_id: int, identifier: bytes) -> bytes:
    return message(1, command([(0x0002, GET), (0x0100, us(0x0010)), (0x0110, us(message_id)),
                               (0x0700, us(0)), (0x0800, us(0x0001))]), identifier)


def get_rsp(responded_to: bytes, status: int, comment: bytes | None = None) -> bytes:
    fields = [(0x0002, GET), (0x0100, us(0x8010)), (0x0120, responded_to), (0x0800, us(0x0101)),
              (0x0900, us(status)), (0x1021, us(0)), (0x1022, us(0)), (0x1023, us(0))]
    if comment is not None:
        fields.append((0x0902, comment + b" " * (len(comment) % 2)))
    return message(1, command(fields))


def store_rq(message_id: int, instance: bytes, size: int) -> bytes:
    dataset = _element(0x0008, 0x0016, CT) + _element(0x0008, 0x0018, instance) + bytes(size)
    return message(3, command([(0x0002, CT), (0x0100, us(0x0001)), (0x0110, us(message_id)), (0x0700, us(0)),
                               (0x0800, us(0x0001)), (0x1000, instance)]), dataset)


def store_rsp(message_id: int, instance: bytes) -> bytes:
    return message(3, command([(0x0002, CT), (0x0100, us(0x8001)), (0x0120, us(message_id)),
                               (0x0800, us(0x0101)), (0x0900, us(0)), (0x1000, instance)]))


def identifier_implicit() -> bytes:
    return (_element(0x0008, 0x0052, b"STUDY ") + _element(0x0010, 0x0020, b"PAT1")
            + _element(0x0020, 0x000D, b"1.2.3\x00"))


RELEASE = [("c", _pdu(0x05, bytes(4))), ("s", _pdu(0x06, bytes(4)))]
ABORT = _pdu(0x07, bytes([0, 0, 0, 0]))


def pcap(frames: list[bytes], times: list[float] | None = None) -> bytes:
    """A classic pcap (microseconds, Ethernet) of ``frames``, 1 ms apart unless ``times`` says."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for index, frame in enumerate(frames):
        time = times[index] if times is not None else 1_700_000_000 + index * 0.001
        sec = int(time)
        usec = round((time - sec) * 1e6)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return b"".join(out)


def conversation(exchanges: list[tuple[str, bytes]], mss: int = 1460) -> list[bytes]:
    talk = Conversation(mss=mss)
    for side, data in exchanges:
        talk.send(side, data)
    talk.close()
    return talk.frames


# -- the inputs ------------------------------------------------------------------------


def bad_message_id_length(length: int) -> bytes:
    raw = bytes([1, 0, 0, 0, 0][:length])  # the value 1, cut or padded to ``length`` bytes
    exchanges = [("c", associate(True)), ("s", associate(False)), ("c", get_rq(1, identifier_implicit())),
                 ("s", get_rsp(raw, 0xFF00)), ("c", ABORT)]
    return pcap(conversation(exchanges))


def deflate_bomb(size: int = 90 * 1024 * 1024) -> bytes:
    # One UN element (Explicit VR LE: tag, "UN", 2 reserved bytes, 4-byte length) of zeros.
    element = struct.pack("<HH2sHI", 0x0009, 0x1000, b"UN", 0, size)
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [squeezer.compress(element)]
    for _ in range(size // len(chunk)):
        parts.append(squeezer.compress(chunk))
    parts.append(squeezer.compress(bytes(size % len(chunk))))
    parts.append(squeezer.flush())
    exchanges = [("c", associate(True, DEFLATED)), ("s", associate(False, DEFLATED)),
                 ("c", get_rq(1, b"".join(parts))), ("s", get_rsp(us(1), 0x0000)), *RELEASE]
    return pcap(conversation(exchanges))


def empty_command_flood(count: int) -> bytes:
    # Many PDVs to a PDU, PDUs of at most 16 KiB, segments of 64 KB: the file stays small.
    per_pdu = 16384 // 6
    pdus = []
    left = count
    while left:
        n = min(per_pdu, left)
        pdus.append(_pdu(0x04, pdv(1, 0x03, b"") * n))
        left -= n
    exchanges = [("c", associate(True)), ("s", associate(False)), ("c", b"".join(pdus)), *RELEASE]
    return pcap(conversation(exchanges, mss=65000))


def orphan_data_flood(count: int, reserved: bool = False) -> bytes:
    """``reserved``: each PDV's control byte also has a reserved bit set (a UL-029 problem each)."""
    per_pdu = 16384 // 6
    pdus = []
    left = count
    extra = 0x04 if reserved else 0x00
    while left:
        n = min(per_pdu, left)
        # Alternate contexts and last-fragment bits.
        pdus.append(_pdu(0x04, b"".join(pdv(1 + 2 * (i % 2), extra | (i % 2) * 2, b"") for i in range(n))))
        left -= n
    exchanges = [("c", associate(True)), ("s", associate(False)), ("c", b"".join(pdus)), *RELEASE]
    return pcap(conversation(exchanges, mss=65000))


def backwards_time(jump: float = 3600.0, where: float = 0.5) -> bytes:
    """A retrieve of one 256 KiB instance; the record at ``where`` through the C-STORE data set is
    stamped ``jump`` seconds later than the others."""
    instance = b"1.2.3.4.1\x00"
    exchanges = [("c", associate(True)), ("s", associate(False)), ("c", get_rq(1, identifier_implicit())),
                 ("s", store_rq(100, instance, 256 * 1024)), ("c", store_rsp(100, instance)),
                 ("s", get_rsp(us(1), 0x0000)), *RELEASE]
    frames = conversation(exchanges)
    times = [1_700_000_000 + i * 0.000001 for i in range(len(frames))]
    # The C-STORE data set's records are the long run of full segments from the server.
    server_port = struct.pack(">H", 11112)
    full = [i for i, f in enumerate(frames) if len(f) == 14 + 40 + 1460 and f[34:36] == server_port]
    times[full[int(len(full) * where)]] += jump
    return pcap(frames, times)


def mathtext_strings() -> bytes:
    calling = rb"$\frac{1}{$"
    called = rb"$\sqrt{x$"
    comment = rb"$\sqrt{$ out of $resources"
    exchanges = [("c", associate(True, calling=calling, called=called)),
                 ("s", associate(False, calling=calling, called=called)),
                 ("c", get_rq(1, identifier_implicit())),
                 ("s", get_rsp(us(1), 0xA702, comment)), *RELEASE]
    return pcap(conversation(exchanges))


def large_retrieve(instances: int = 400, size: int = 64 * 1024) -> bytes:
    exchanges = [("c", associate(True)), ("s", associate(False)), ("c", get_rq(1, identifier_implicit()))]
    for index in range(instances):
        instance = b"1.2.3.4.%d" % (index + 1)
        instance += b"\x00" * (len(instance) % 2)
        exchanges += [("s", store_rq(100 + index, instance, size)), ("c", store_rsp(100 + index, instance))]
    exchanges += [("s", get_rsp(us(1), 0x0000)), *RELEASE]
    return pcap(conversation(exchanges))


INPUTS = {
    **{f"message_id_length_{n}": (lambda n=n: bad_message_id_length(n)) for n in (0, 4, 5)},
    "deflate_bomb": deflate_bomb,
    "empty_command_flood": lambda: empty_command_flood(300_000),
    "orphan_data_flood": lambda: orphan_data_flood(300_000),
    "backwards_time": backwards_time,
    "mathtext_strings": mathtext_strings,
}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    target.mkdir(parents=True, exist_ok=True)
    for name, build in INPUTS.items():
        path = target / f"{name}.pcap"
        path.write_bytes(build())
        print(path, path.stat().st_size)
