"""Capture file input: pcap, pcapng and their gzip-compressed forms.

Layer: capture (the only layer that touches files). Both formats are read
here, without scapy (its import alone costs a tenth of a second, and its
pcapng reader is several times slower than a walk over the blocks): a plain
file is read by position in windows (never mapped: a file that shrinks while it is
read must not end the process with SIGBUS), a gzip-compressed one is inflated in
blocks. Records are yielded numbered as Wireshark numbers frames, never dissected.
A file that cannot be opened raises :class:`CaptureError`; a record cut short at
the end of the file stops the iteration and is reported
through ``on_problem``, so everything read before it is kept.
"""

from __future__ import annotations

import collections
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Loopback with segmentation offload (GSO/BIG TCP) records frames far beyond
# 65535 bytes, so no smaller bound is imposed; a longer record is damage, not data.
_MAX_RECORD = 64 * 1024 * 1024
#: What the first four bytes of a file say it is (for the wording of header errors).
_MAGICS = {
    b"\xa1\xb2\xc3\xd4": "pcap", b"\xd4\xc3\xb2\xa1": "pcap", b"\xa1\xb2\x3c\x4d": "pcap",
    b"\x4d\x3c\xb2\xa1": "pcap", b"\x0a\x0d\x0d\x0a": "pcapng", b"\x1f\x8b\x08\x00": "gzip",
}


class CaptureError(Exception):
    """A capture file that cannot be read at all."""


# The OSError kinds pandas, pydicom and scapy raise for the same faults, so that
# ``except FileNotFoundError`` works around ``trace_analyzer.analyze(path)`` as around them.
class CaptureNotFoundError(CaptureError, FileNotFoundError):
    """No file at the path."""


class CaptureIsADirectoryError(CaptureError, IsADirectoryError):
    """A directory without a capture file in it."""


class CapturePermissionError(CaptureError, PermissionError):
    """A file this user may not read."""


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    frame: int  # 1-based, as in Wireshark
    time: float  # seconds since the epoch
    linktype: int
    data: bytes
    wirelen: int


#: pcap magic numbers as they appear in the file: (byte order, nanosecond timestamps)
_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
                b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True)}

#: pcapng block types (the section header's reads the same in either byte order).
_SHB, _IDB, _OPB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6
#: A section header's byte-order magic as it appears in the file.
_BYTE_ORDERS = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
#: Timestamp units per second of an interface that does not say (microseconds).
_MICRO = 1_000_000


#: False: plain files are read in blocks through their handle, as streams are (tests compare).
READ_BY_POSITION = True


class _CaptureFile:
    """A capture file opened here: its format known, positioned after ``head``.

    ``head`` holds the bytes already read to recognise it (pcap: the global header;
    pcapng: the first section header block, which the block walk reads again)."""

    def __init__(self, handle, kind: str, endian: str, head: bytes, nano: bool = False,
                 linktype: int = 0) -> None:
        self.f = handle
        self.kind = kind  # "pcap" or "pcapng"
        self.endian = endian
        self.head = head
        self.nano = nano  # pcap only, as is linktype
        self.linktype = linktype
        self.frames = 0  # records walked so far (set by the walk when it stops)
        #: A plain file's descriptor and its size when opened: it is read by position in
        #: windows (os.pread), never mapped, so a file that shrinks while it is read (a capture
        #: ring overwriting its oldest file) ends the walk with a message, not a SIGBUS.
        self.fd: int | None = None
        self.size = 0
        #: (size when opened, size when found shorter) once the file shrank under the walk.
        self.changed: tuple[int, int] | None = None
        if READ_BY_POSITION and not isinstance(handle, (_Inflater, _Stream)):
            try:
                self.fd = handle.fileno()
                self.size = os.fstat(self.fd).st_size
            except (OSError, ValueError, AttributeError):
                self.fd = None  # read in blocks

    def refill(self, buf: bytes, pos: int, need: int) -> bytes:
        """The bytes from ``pos`` of ``buf`` on, and at least ``need`` more when the file has
        them (else as many as it has: no more than ``len(buf) - pos`` means the end)."""
        if self.fd is None:
            more = self.f.read(max(_BLOCK, need))
            return buf[pos:] + more if more else buf[pos:]
        # ``buf`` always starts at file offset self.base (the header's bytes come first).
        offset = self.base + pos
        want = min(max(_READ, len(buf) - pos + need), self.size - offset)
        data = os.pread(self.fd, want, offset) if want > 0 else b""
        if len(data) < want:
            now = os.fstat(self.fd).st_size
            if now < self.size:
                self.changed = (self.size, now)
        self.base = offset
        return data

    base = 0  # file offset of the buffer's first byte (plain files)

    def close(self) -> None:
        self.f.close()


#: The name that stands for standard input (a pcap or pcapng stream, gzipped or not).
STDIN = "-"


class _Stream:
    """Standard input (a pipe) read as it arrives: ``read(size)`` gives what is there, at
    least one byte and at most ``size``, and b"" only at the end; nothing is held beyond
    the block the walk asks for, so memory stays bounded however long the stream runs."""

    def __init__(self, fd: int, head: bytes = b"") -> None:
        self.fd = fd
        self._head = head  # bytes read to recognise the stream, handed back first

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data = self._head[:size] if size >= 0 else self._head
            self._head = self._head[len(data):]
            return data
        if size < 0:
            chunks = []
            while chunk := os.read(self.fd, _BLOCK):
                chunks.append(chunk)
            return b"".join(chunks)
        return os.read(self.fd, size) if size else b""

    def close(self) -> None:
        pass  # standard input stays open: it is not ours to close


def _read_exact(handle, size: int) -> bytes:
    """``size`` bytes, fewer only at the end (a stream gives what has arrived)."""
    data = handle.read(size)
    while len(data) < size:
        more = handle.read(size - len(data))
        if not more:
            break
        data += more
    return data


def _open(path: str, stdin_fd: int = 0) -> _CaptureFile:
    """Open ``path``, a (possibly gzipped) pcap or pcapng file, or ``-`` for standard
    input, and read its header."""
    if path == STDIN:
        stream = _Stream(stdin_fd)
        first = _read_exact(stream, 4)
        stream = _Stream(stdin_fd, first)
        compressed = first[:2] == b"\x1f\x8b"
        handle = _Inflater(stream) if compressed else stream
        if not first:
            raise CaptureError(f"{path}: standard input is empty")
    else:
        with open(path, "rb") as probe:
            first = probe.read(4)
        compressed = first[:2] == b"\x1f\x8b"
        handle = _Inflater(path) if compressed else open(path, "rb")  # noqa: SIM115 (closed by close())
    try:
        return _read_header(path, handle, first, compressed)
    except BaseException:
        handle.close()
        raise


def capture_kind(path: str) -> str | None:
    """"pcap" or "pcapng" when the file is a capture by its magic number (inflated first
    when gzipped), else None: how captures are told apart from other files in a directory."""
    try:
        with open(path, "rb") as probe:
            first = probe.read(4)
        if first[:2] == b"\x1f\x8b":
            inflater = _Inflater(path)
            try:
                first = inflater.read(4)
            finally:
                inflater.close()
    except OSError:
        return None
    if first in _PCAP_MAGICS:
        return "pcap"
    return "pcapng" if first == b"\x0a\x0d\x0d\x0a" else None


def snap_length(path: str) -> int:
    """A pcap file's snap length from its header; 0 for pcapng (declared per interface) or
    when unreadable. Rotated files of one capture share it."""
    try:
        reader = _open(path)
    except (OSError, zlib.error, CaptureError):
        return 0
    try:
        if reader.kind != "pcap":
            return 0
        return struct.unpack(reader.endian + "I", reader.head[16:20])[0]
    finally:
        reader.close()


def _read_header(path: str, handle, first: bytes, compressed: bool) -> _CaptureFile:
    head = _read_exact(handle, 12)
    magic = head[:4]
    pcap = _PCAP_MAGICS.get(magic)
    if pcap is not None:
        head += _read_exact(handle, 12)
        if len(head) < 24:
            raise CaptureError(f"{path}: truncated or damaged pcap header ({len(head)} of 24 bytes)")
        linktype = struct.unpack(pcap[0] + "I", head[20:24])[0] & 0x0FFFFFFF  # upper bits: FCS length
        return _CaptureFile(handle, "pcap", pcap[0], head, pcap[1], linktype)
    if magic == b"\x0a\x0d\x0d\x0a":
        endian = _BYTE_ORDERS.get(head[8:12])
        if endian is None:
            detail = (f"{len(head)} of the section header's first 12 bytes" if len(head) < 12
                      else "the section header has no byte-order magic")
            raise CaptureError(f"{path}: truncated or damaged pcapng header ({detail})")
        total = struct.unpack(endian + "I", head[4:8])[0]
        if total < 28 or total % 4 or total > _MAX_RECORD:
            raise CaptureError(f"{path}: truncated or damaged pcapng header "
                               f"(a section header block of {total} bytes)")
        head += _read_exact(handle, total - 12)
        if len(head) < total:
            raise CaptureError(f"{path}: truncated or damaged pcapng header "
                               f"({len(head)} of the section header's {total} bytes)")
        return _CaptureFile(handle, "pcapng", endian, head)
    if compressed and len(head) < 4 and handle.cut_short:
        detail = f"the compressed data is cut short or damaged after {len(head)} bytes"
    elif compressed:
        detail = "once inflated, it starts with neither a pcap nor a pcapng magic number"
    else:
        detail = "it starts with neither a pcap nor a pcapng magic number"
    kind = _MAGICS.get(first)
    if kind is not None:  # a gzip magic (pcap and pcapng ones are read above)
        raise CaptureError(f"{path}: truncated or damaged {kind} header ({detail})")
    raise CaptureError(f"{path}: not a pcap or pcapng capture ({detail})")


def check_file(path: str) -> None:
    """Raise the CaptureError (an OSError kind where one fits) for a path no capture can be read from."""
    if not os.path.exists(path):
        raise CaptureNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        # (a directory's captures are found by analysis.find_inputs; this one holds none)
        raise CaptureIsADirectoryError(f"{path}: is a directory with no pcap or pcapng capture file in it")
    if not os.path.isfile(path):
        raise CaptureError(f"{path}: not a regular file (a pipe or a device), not a capture file")
    if not os.access(path, os.R_OK):
        raise CapturePermissionError(f"{path}: permission denied")
    if os.path.getsize(path) == 0:
        raise CaptureError(f"{path}: empty file")


class _Inflater:
    """Reads a gzip file as it decompresses, handing over every byte that can be
    recovered: Python's gzip module drops a whole read's worth of data when the
    file is cut short, which would lose the frames before the cut."""

    def __init__(self, path: str | _Stream) -> None:
        #: A stream gives what it has: inflate what arrived rather than wait for a whole block.
        self._eager = isinstance(path, _Stream)
        self._raw = path if self._eager else open(path, "rb")  # noqa: SIM115 (closed in close())
        self._inflate = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._done = False
        #: The compressed stream ended before its end-of-stream marker (the file was cut).
        self.cut_short = False

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._pending) < size) and not self._done:
            chunk = self._raw.read(_BLOCK)
            try:
                if not chunk:
                    self._pending += self._inflate.flush()
                    self._done = True
                    self.cut_short = not self._inflate.eof
                    break
                self._pending += self._inflate.decompress(chunk)
                rest = self._inflate.unused_data if self._inflate.eof else b""
                if rest:  # another gzip member follows
                    self._inflate = zlib.decompressobj(wbits=31)
                    self._pending += self._inflate.decompress(rest)
            except zlib.error:
                self._done = self.cut_short = True  # damaged from here on: keep what came before
            if self._eager and self._pending and size >= 0:
                break
        if size < 0:
            size = len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self) -> None:
        self._raw.close()


#: Streams and gzip files are read in blocks of this size and cut into records in
#: memory: one read call per block instead of two per record.
_BLOCK = 1024 * 1024


#: Plain files are read in windows of this size (a window holds the record that spans its end
#: whole): one read call per window, memory flat however large the file.
_READ = 1024 * 1024
#: The lane walks at most this far in one call (then hands back to the walk).
_WINDOW = 16 * 1024 * 1024


def _pcap_records(reader: _CaptureFile, on_problem: Callable[[int, str], None] | None,
                  lane=None, first_frame: int = 0) -> Iterator[tuple]:
    """(frame, time, linktype, data, wirelen) for each record of a pcap file.

    ``lane`` (a :class:`~trace_analyzer.lane.BulkLane`), while it has armed flows, is
    handed the buffer before each record and passes over the records it counts.
    """
    unpack = struct.Struct(reader.endian + "IIII").unpack_from
    divisor = 1e9 if reader.nano else 1e6
    linktype = reader.linktype
    if lane is not None and not lane.configure(reader.endian, reader.nano, linktype):
        lane = None
    try_lane = False
    buf, pos = _start(reader, 24, b"")
    refill = reader.refill
    frame = first_frame  # the frame before this file's first (files of a set number on)
    try:
        while True:
            if len(buf) - pos < 16:
                more = refill(buf, pos, 16)
                if len(more) <= len(buf) - pos:
                    if len(buf) > pos and on_problem is not None:
                        on_problem(frame + 1, f"capture ends inside record {frame + 1 - first_frame} "
                                              f"({len(buf) - pos} bytes of its header): the file is "
                                              "truncated")
                    return
                buf, pos = more, 0
                continue
            sec, usec, caplen, wirelen = unpack(buf, pos)
            if caplen > _MAX_RECORD:
                if on_problem is not None:
                    on_problem(frame + 1, f"capture record {frame + 1 - first_frame} is unreadable: it "
                                          f"claims {caplen} bytes, beyond any captured frame; the rest "
                                          "of the file is skipped")
                return
            end = pos + 16 + caplen
            if end > len(buf):
                more = refill(buf, pos, end - len(buf))
                if len(more) > len(buf) - pos:
                    buf, pos = more, 0
                    continue
                # The file ends inside this record: hand over what is there, as a snaplen cut would be
                # (unless the file shrank under the walk: what is there may be anything).
                frame += 1
                data = buf[pos + 16:]
                if on_problem is not None:
                    on_problem(frame, f"capture ends inside record {frame - first_frame} ({len(data)} of "
                                      f"{caplen} bytes present): the file is truncated")
                if reader.changed is None:
                    yield frame, sec + usec / divisor, linktype, data, wirelen
                else:
                    frame -= 1
                return
            if try_lane:
                # The next record is whole in the buffer: the lane takes it (and more, up to a
                # window's end), or says no.
                before = pos
                pos, frame, refused = lane.skip(buf, pos, frame, min(len(buf), pos + _WINDOW))
                try_lane = not refused and lane.active and pos != before
                continue
            frame += 1
            yield frame, sec + usec / divisor, linktype, buf[pos + 16:end], wirelen
            pos = end
            try_lane = lane is not None and lane.active
    finally:
        reader.frames = frame  # iter_records reports from it


def _start(reader: _CaptureFile, first: int, head: bytes) -> tuple[bytes, int]:
    """(buffer, position of the first record) for a reader: a plain file's buffer starts at
    ``first``, the first record's file offset (read as the walk asks: see refill); otherwise
    the buffer starts with ``head``, the bytes already read, and grows by blocks."""
    if reader.fd is not None:
        reader.base = first
        return b"", 0
    return head, 0


def _pcapng_structs(endian: str) -> tuple[Callable, Callable, Callable]:
    """Readers of a block's type and length, of an Enhanced Packet Block's fields after
    them (interface, timestamp high and low, captured and original lengths), and of an
    Obsolete Packet Block's (the same with a 16-bit interface)."""
    return (struct.Struct(endian + "II").unpack_from, struct.Struct(endian + "IIIII").unpack_from,
            struct.Struct(endian + "H2xIIII").unpack_from)


def _interface(buf, pos: int, end: int, endian: str) -> tuple[int, int, int, int]:
    """(link type, timestamp units per second, offset in seconds, snaplen) of the Interface
    Description Block from ``pos`` to ``end``."""
    linktype, snaplen = struct.unpack_from(endian + "H2xI", buf, pos + 8)
    units, offset = _MICRO, 0
    option = struct.Struct(endian + "HH").unpack_from
    at, stop = pos + 16, end - 4
    while at + 4 <= stop:
        code, length = option(buf, at)
        value = at + 4
        if code == 0 or value + length > stop:
            break  # the end of the options, or options that overrun the block: keep what was read
        if code == 9 and length >= 1:  # if_tsresol: a power of ten, or of two if the top bit is set
            exponent = buf[value]
            units = 1 << (exponent & 0x7F) if exponent & 0x80 else 10 ** exponent
        elif code == 14 and length >= 8:  # if_tsoffset: whole seconds added to every timestamp
            offset = struct.unpack_from(endian + "q", buf, value)[0]
        at = value + length + (-length % 4)
    return linktype, units, offset, snaplen


def _clock(endian: str, interfaces: list[tuple[int, int, int, int]]) -> Callable[[bytes, int], float]:
    """The time of the Enhanced Packet Block at a position (for the lane, which notes positions)."""
    fields = struct.Struct(endian + "III").unpack_from

    def time_at(buf, pos: int) -> float:
        number, high, low = fields(buf, pos + 8)
        units, offset = interfaces[number][1:3]
        # As in _pcapng_records: whole seconds and fraction apart, as a pcap's are.
        seconds, fraction = divmod(high << 32 | low, units)
        return seconds + fraction / units + offset

    return time_at


def _unreadable(on_problem: Callable[[int, str], None] | None, frame: int, text: str,
                first_frame: int = 0) -> None:
    if on_problem is not None:
        on_problem(frame + 1, f"capture record {frame + 1 - first_frame} is unreadable ({text}); "
                              "the rest of the file is skipped")


def _cut(on_problem: Callable[[int, str], None] | None, frame: int, first_frame: int = 0) -> None:
    if on_problem is not None:
        on_problem(frame + 1, f"capture ends inside record {frame + 1 - first_frame}: the file is truncated")


def _pcapng_records(reader: _CaptureFile, on_problem: Callable[[int, str], None] | None,
                    lane=None, first_frame: int = 0) -> Iterator[tuple]:
    """(frame, time, linktype, data, wirelen) for each packet block of a pcapng file.

    Frames are numbered over Enhanced, Obsolete and Simple Packet Blocks; every other
    block is read only for what it says of the packets (section byte order, interfaces)
    or passed over. ``lane`` is handed the buffer before Enhanced Packet Blocks, as in
    :func:`_pcap_records`, while every interface met so far has the link type it walks.
    """
    endian = reader.endian
    block_head, enhanced, obsolete = _pcapng_structs(endian)
    #: Interfaces of the current section: (link type, units per second, offset, snaplen).
    interfaces: list[tuple[int, int, int, int]] = []
    lane_link: int | None = None  # the link type the lane was configured for
    try_lane = False
    buf, pos = _start(reader, 0, reader.head)
    refill = reader.refill
    frame = first_frame  # the frame before this file's first (files of a set number on)
    time = 0.0  # the last packet's: a Simple Packet Block has none of its own
    try:
        while True:
            if len(buf) - pos < 12:  # less than the smallest block
                more = refill(buf, pos, 12)
                if len(more) <= len(buf) - pos:
                    if len(buf) > pos:
                        _cut(on_problem, frame, first_frame)
                    return
                buf, pos = more, 0
                continue
            kind, total = block_head(buf, pos)
            if kind == _SHB:  # its length is in the byte order it announces
                order = _BYTE_ORDERS.get(buf[pos + 8:pos + 12])
                if order is None:
                    _unreadable(on_problem, frame, "a section header with no byte-order magic", first_frame)
                    return
                if order != endian:
                    endian = order
                    block_head, enhanced, obsolete = _pcapng_structs(endian)
                    total = block_head(buf, pos)[1]
            if total < 12 or total & 3 or total > _MAX_RECORD:
                _unreadable(on_problem, frame, f"a block claims a length of {total} bytes", first_frame)
                return
            end = pos + total
            if end > len(buf):
                more = refill(buf, pos, end - len(buf))
                if len(more) > len(buf) - pos:
                    buf, pos = more, 0
                    continue
                _cut(on_problem, frame, first_frame)
                return
            if kind == _EPB or kind == _OPB:
                if try_lane and kind == _EPB:
                    # The block is whole in the buffer: the lane takes it (and more, up to a
                    # window's end), or says no.
                    before = pos
                    pos, frame, refused = lane.skip(buf, pos, frame, min(len(buf), pos + _WINDOW))
                    if pos != before:
                        time = lane.last_time
                    try_lane = not refused and lane.active and pos != before
                    continue
                if total < 32:
                    _unreadable(on_problem, frame, f"a packet block of {total} bytes", first_frame)
                    return
                fields = enhanced if kind == _EPB else obsolete  # the obsolete one: a 16-bit interface
                number, high, low, caplen, wirelen = fields(buf, pos + 8)
                if caplen + 32 > total:
                    _unreadable(on_problem, frame, f"{caplen} bytes of packet in a block of {total}",
                                first_frame)
                    return
                try:
                    linktype, units, offset, _ = interfaces[number]
                except IndexError:  # no such interface: the frame is counted, not decoded
                    linktype, units, offset = -1, _MICRO, 0
                frame += 1
                # Whole seconds and fraction apart, as a pcap's are: the same capture in either
                # format gives the same times to the last bit (see also _clock).
                seconds, fraction = divmod(high << 32 | low, units)
                time = seconds + fraction / units + offset
                yield frame, time, linktype, buf[pos + 28:pos + 28 + caplen], wirelen
                pos = end
                try_lane = lane is not None and lane.active
                continue
            if kind == _IDB:
                if total < 20:
                    _unreadable(on_problem, frame, f"an interface description block of {total} bytes",
                                first_frame)
                    return
                interfaces.append(_interface(buf, pos, end, endian))
                if lane is not None:
                    linktype = interfaces[-1][0]
                    if lane_link is None:
                        lane_link = linktype
                    # Reconfigured for each interface, so that it knows how many there are; a link
                    # type other than the first stops it for good (it has flushed: nothing is lost).
                    clock = _clock(endian, interfaces)
                    if linktype != lane_link or not lane.configure(endian, False, linktype, clock,
                                                                   len(interfaces)):
                        lane.configure(endian, False, -1)
                        lane.clear()
                        lane = None
                        try_lane = False
            elif kind == _SHB:
                interfaces = []  # a new section declares its interfaces anew
                if lane is not None and lane_link is not None:
                    lane.configure(endian, False, lane_link, _clock(endian, interfaces), 0)
            elif kind == _SPB:
                if total < 16:
                    _unreadable(on_problem, frame, f"a packet block of {total} bytes", first_frame)
                    return
                wirelen = block_head(buf, pos + 4)[1]
                caplen = min(wirelen, total - 16)
                if interfaces and interfaces[0][3]:
                    caplen = min(caplen, interfaces[0][3])
                linktype = interfaces[0][0] if interfaces else -1
                frame += 1  # no timestamp of its own: the time of the packet before
                yield frame, time, linktype, buf[pos + 12:pos + 12 + caplen], wirelen
                try_lane = lane is not None and lane.active
            pos = end  # any other block (name resolution, statistics, secrets...) is passed over
    finally:
        reader.frames = frame  # iter_records reports from it


def iter_records(path: str, on_problem: Callable[[int, str], None] | None = None,
                 lane=None, first_frame: int = 0, stdin_fd: int = 0) -> Iterator[tuple]:
    """Yield ``(frame, time, linktype, data, wirelen)`` for every record of the capture.

    Plain tuples, because this runs once per frame of captures that hold
    millions. ``on_problem(frame, text)`` hears of a damaged or truncated
    file; everything before the damage has been yielded by then. Records
    that ``lane`` (a :class:`~trace_analyzer.lane.BulkLane`) counts are not
    yielded. ``path`` ``-`` reads standard input as it arrives. ``first_frame`` is
    the number of the frame before the file's first (the files of a capture set are
    numbered on from each other). ``stdin_fd``: the descriptor ``-`` reads (a capture tool's pipe).
    """
    if path != STDIN:
        check_file(path)
    try:
        reader = _open(path, stdin_fd)
    except (OSError, zlib.error) as exc:
        raise CaptureError(f"{path}: unreadable capture header ({exc})") from None
    inflater = reader.f if isinstance(reader.f, _Inflater) else None
    told = on_problem

    def problem(frame: int, text: str) -> None:
        if reader.changed is not None:  # the end it found is not the file's: say so, once
            if reader.changed == (-1, -1):
                return
            size, now = reader.changed
            reader.changed = (-1, -1)
            text = (f"the capture file changed while being read: {size} bytes when opened, {now} when "
                    f"read past record {frame - 1 - first_frame} (a capture ring overwriting it?); the "
                    "records before are analysed")
        told(frame, text)

    try:
        walk = _pcap_records if reader.kind == "pcap" else _pcapng_records
        if on_problem is not None:
            on_problem = problem
        try:
            yield from walk(reader, on_problem, lane, first_frame)
        except (OSError, EOFError, zlib.error) as exc:
            if on_problem is not None:
                on_problem(reader.frames + 1,
                           f"capture unreadable past record {reader.frames - first_frame} ({exc})")
        # The walk's own count: the last record yielded may be followed by some the lane took.
        frame = reader.frames
        if reader.changed is not None and reader.changed != (-1, -1) and on_problem is not None:
            on_problem(frame + 1, "")  # it shrank without cutting a record: said all the same
        if inflater is not None and inflater.cut_short and on_problem is not None:
            on_problem(frame + 1, f"the gzip-compressed capture is cut short after record "
                                  f"{frame - first_frame}: the file is truncated")
    finally:
        reader.close()


def sample(path: str, count: int) -> tuple[int, list[tuple], list[tuple]]:
    """(frames, the first ``count`` records, the last ``count``) of a capture file, records as
    ``(time, linktype, data)``: what the capture-set layer needs to tell which files continue
    each other. A plain pcap file is walked by its record headers alone (no record is copied but
    those kept), so this costs little beside the analysis; other files are read through.
    Raises CaptureError as :func:`iter_records` does; damage simply ends the walk."""
    check_file(path)
    try:
        reader = _open(path)
    except (OSError, zlib.error) as exc:
        raise CaptureError(f"{path}: unreadable capture header ({exc})") from None
    try:
        if reader.kind != "pcap" or reader.fd is None:
            reader.close()
            head: list[tuple] = []
            tail: collections.deque = collections.deque(maxlen=count)
            frames = 0
            for _, time, linktype, data, _ in iter_records(path):
                frames += 1
                if len(head) < count:
                    head.append((time, linktype, data))
                tail.append((time, linktype, data))
            return frames, head, list(tail)
        unpack = struct.Struct(reader.endian + "IIII").unpack_from
        captured = struct.Struct(reader.endian + "8xI").unpack_from  # the walk reads this alone
        divisor = 1e9 if reader.nano else 1e6
        linktype, size, fd = reader.linktype, reader.size, reader.fd
        ends: collections.deque = collections.deque(maxlen=count)  # where the last records start
        note, pos = ends.append, 24
        frames = 0
        while pos + 16 <= size:
            # A window of record headers (read by position: a file that shrinks gives a short
            # read, never a signal); the records between them are not read.
            window = os.pread(fd, _READ, pos)
            base, last = pos, len(window) - 16
            if last < 0:
                break
            at = 0
            while at <= last:  # the hot loop: a record header a turn, nothing else
                caplen, = captured(window, at)
                if caplen > _MAX_RECORD:
                    break
                note(base + at)
                frames += 1
                at += 16 + caplen
            else:
                pos = base + at
                continue
            break

        def record(at: int) -> tuple:
            raw = os.pread(fd, 16, at)
            sec, usec, caplen, _ = unpack(raw) if len(raw) == 16 else (0, 0, 0, 0)
            return sec + usec / divisor, linktype, os.pread(fd, caplen, at + 16)

        head = []
        pos = 24
        while len(head) < min(count, frames):
            head.append(record(pos))
            raw = os.pread(fd, 16, pos)
            if len(raw) < 16:
                break
            pos += 16 + unpack(raw)[2]
        return frames, head, [record(at) for at in ends]
    finally:
        reader.close()


def read_capture(
    path: str, on_problem: Callable[[int, str], None] | None = None
) -> Iterator[CaptureRecord]:
    """Yield every record of the capture at ``path`` as a :class:`CaptureRecord`."""
    for frame, time, linktype, data, wirelen in iter_records(path, on_problem):
        yield CaptureRecord(frame, time, linktype, data, wirelen)
