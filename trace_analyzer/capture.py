"""Capture file input: pcap, pcapng and their gzip-compressed forms.

Layer: capture (the only layer that touches files). Reads classic pcap
itself, in blocks (it is a simple format, and scapy's import alone is a tenth
of a second), and pcapng with scapy's raw reader, never dissecting a packet;
yields records numbered as Wireshark numbers frames. A file
that cannot be opened raises :class:`CaptureError`; a record cut short at the
end of the file stops the iteration and is reported through ``on_problem``,
so everything read before it is kept.
"""

from __future__ import annotations

import gzip
import logging
import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Loopback frames exceed 65535 bytes and scapy's readers cut at 65535 unless
# asked for more; this is larger than any record a capture can hold.
_NO_CUT = 1 << 31
# scapy's pcap reader also cuts records above 4 x 65535 bytes (GSO/BIG TCP on
# loopback goes beyond), so pcap records are read here, in chunks, up to this
# bound; a larger record length is damage, not data.
_MAX_RECORD = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
_MAGICS = {
    b"\xa1\xb2\xc3\xd4": "pcap", b"\xd4\xc3\xb2\xa1": "pcap", b"\xa1\xb2\x3c\x4d": "pcap",
    b"\x4d\x3c\xb2\xa1": "pcap", b"\x0a\x0d\x0d\x0a": "pcapng", b"\x1f\x8b\x08\x00": "gzip",
}

# scapy logs each damaged record as a warning; we report them ourselves.
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)


class CaptureError(Exception):
    """A capture file that cannot be read at all."""


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


class _PcapFile:
    """A classic pcap file opened here: its global header read, positioned at the first record.

    pcap is simple enough to read without scapy, whose import alone costs a
    tenth of a second on every run; pcapng still goes to scapy's reader."""

    def __init__(self, handle, endian: str, nano: bool, linktype: int) -> None:
        self.f = handle
        self.endian = endian
        self.nano = nano
        self.linktype = linktype
        #: The whole file, mapped, when it is a plain file: records are then read in
        #: place, with no copy into blocks (see _pcap_records for how memory stays flat).
        self.map: mmap.mmap | None = None
        if not isinstance(handle, _Inflater):
            try:
                self.map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                self.map = None  # not mappable: read in blocks

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        self.f.close()


def _open_pcap(path: str) -> _PcapFile | None:
    """Open ``path`` if it is a (possibly gzipped) classic pcap file; None if it is something else."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    handle = _Inflater(path, 0) if compressed else open(path, "rb")  # noqa: SIM115 (closed by close())
    header = handle.read(24)
    kind = _PCAP_MAGICS.get(header[:4])
    if kind is None:
        handle.close()
        return None
    if len(header) < 24:
        handle.close()
        raise CaptureError(f"{path}: truncated or damaged pcap header ({len(header)} of 24 bytes)")
    linktype = struct.unpack(kind[0] + "I", header[20:24])[0] & 0x0FFFFFFF  # upper bits: FCS length
    return _PcapFile(handle, kind[0], kind[1], linktype)


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise CaptureError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CaptureError(f"{path}: is a directory, not a capture file")
    if not os.path.isfile(path):
        raise CaptureError(f"{path}: not a regular file (a pipe or a device), not a capture file")
    if not os.access(path, os.R_OK):
        raise CaptureError(f"{path}: permission denied")
    if os.path.getsize(path) == 0:
        raise CaptureError(f"{path}: empty file")


def _open_reader(path: str):
    """pcapng (or what is neither): scapy's reader, imported only when needed."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    try:
        # RawPcapReader's metaclass picks the pcap or pcapng reader and
        # sees through gzip compression.
        return RawPcapReader(path)
    except Scapy_Exception as exc:
        with open(path, "rb") as handle:
            kind = _MAGICS.get(handle.read(4))
        if kind is not None:  # the right magic: the header after it is cut short or damaged
            raise CaptureError(f"{path}: truncated or damaged {kind} header ({exc})") from None
        raise CaptureError(f"{path}: not a pcap or pcapng capture ({exc})") from None
    except (OSError, EOFError, struct.error, ValueError, zlib.error) as exc:
        with open(path, "rb") as handle:
            if handle.read(2) == b"\x1f\x8b":
                raise CaptureError(f"{path}: truncated or damaged gzip-compressed capture ({exc})") from None
        raise CaptureError(f"{path}: unreadable capture header ({exc})") from None


class _Inflater:
    """Reads a gzip file as it decompresses, handing over every byte that can be
    recovered: Python's gzip module drops a whole read's worth of data when the
    file is cut short, which would lose the frames before the cut."""

    def __init__(self, path: str, skip: int) -> None:
        self._raw = open(path, "rb")  # noqa: SIM115 (closed in close())
        self._inflate = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._done = False
        #: The compressed stream ended before its end-of-stream marker (the file was cut).
        self.cut_short = False
        while skip > 0:
            skipped = self.read(min(skip, _BLOCK))
            if not skipped:
                break
            skip -= len(skipped)

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
        if size < 0:
            size = len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        self._raw.close()


class _ReadWatcher:
    """Wraps the reader's file to notice a read cut short by the end of the file.

    scapy's readers treat a record cut short at the end of a file like a clean
    end; a read that returns some but not all of the bytes asked for tells
    the two apart without a second pass over the file.
    """

    def __init__(self, handle) -> None:
        self._handle = handle
        self.short_read = False

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if size is not None and 0 < len(data) < size:
            self.short_read = True
        return data

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


#: pcap files are read in blocks of this size and cut into records in memory:
#: one read call per block instead of two per record.
_BLOCK = 1024 * 1024


#: A mapped file is walked in windows of this size; the pages of each window are handed
#: back once it is passed, so resident memory stays flat however large the file.
_WINDOW = 16 * 1024 * 1024


def _pcap_records(reader: _PcapFile, on_problem: Callable[[int, str], None] | None,
                  lane=None) -> Iterator[tuple]:
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
    mapped = reader.map
    if mapped is not None:
        buf, pos, read = mapped, 24, _nothing  # the whole file is there already
        release = hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED")
        released = 0
    else:
        buf, pos, read, release = b"", 0, reader.f.read, False
    frame = 0
    while True:
        if release and pos - released >= _WINDOW:
            start = released
            released = pos - pos % mmap.PAGESIZE
            mapped.madvise(mmap.MADV_DONTNEED, start, released - start)
        if len(buf) - pos < 16:
            more = read(_BLOCK)
            if not more:
                if len(buf) > pos and on_problem is not None:
                    on_problem(frame + 1, f"capture ends inside record {frame + 1} "
                                          f"({len(buf) - pos} bytes of its header): the file is truncated")
                return
            buf = buf[pos:] + more if pos < len(buf) else more
            pos = 0
            continue
        sec, usec, caplen, wirelen = unpack(buf, pos)
        if caplen > _MAX_RECORD:
            if on_problem is not None:
                on_problem(frame + 1, f"capture record {frame + 1} is unreadable: it claims {caplen} "
                                      "bytes, beyond any captured frame; the rest of the file is skipped")
            return
        end = pos + 16 + caplen
        if end > len(buf):
            more = read(max(_BLOCK, end - len(buf)))
            if more:
                buf = buf[pos:] + more
                pos = 0
                continue
            # The file ends inside this record: hand over what is there, as a snaplen cut would be.
            frame += 1
            data = buf[pos + 16:]
            if on_problem is not None:
                on_problem(frame, f"capture ends inside record {frame} ({len(data)} of "
                                  f"{caplen} bytes present): the file is truncated")
            yield frame, sec + usec / divisor, linktype, data, wirelen
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


def _nothing(size: int) -> bytes:
    return b""


def _pcapng_records(reader, on_problem: Callable[[int, str], None] | None) -> Iterator[tuple]:
    from scapy.error import Scapy_Exception

    watcher = reader.f = _ReadWatcher(reader.f)
    frame = 0
    previous_time = 0.0
    while True:
        try:
            data, meta = reader._read_packet(size=_NO_CUT)
        except EOFError:
            if watcher.short_read and on_problem is not None:
                on_problem(frame + 1, f"capture ends inside record {frame + 1}: the file is truncated")
            return
        except (OSError, struct.error, ValueError, zlib.error, Scapy_Exception) as exc:
            if on_problem is not None:
                on_problem(frame + 1, f"capture record {frame + 1} is unreadable ({exc}); "
                                      "the rest of the file is skipped")
            return
        frame += 1
        if meta.tshigh is None:  # a Simple Packet Block has no timestamp
            time = previous_time
        else:
            time = ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
        previous_time = time
        yield frame, time, meta.linktype, data, meta.wirelen if meta.wirelen is not None else len(data)


def iter_records(path: str, on_problem: Callable[[int, str], None] | None = None,
                 lane=None) -> Iterator[tuple]:
    """Yield ``(frame, time, linktype, data, wirelen)`` for every record of the capture.

    Plain tuples, because this runs once per frame of captures that hold
    millions. ``on_problem(frame, text)`` hears of a damaged or truncated
    file; everything before the damage has been yielded by then. Records
    that ``lane`` (a :class:`~trace_analyzer.lane.BulkLane`) counts are not
    yielded (classic pcap only).
    """
    _check_file(path)
    try:
        reader = _open_pcap(path)
    except (OSError, zlib.error) as exc:
        raise CaptureError(f"{path}: unreadable capture header ({exc})") from None
    if reader is None:
        reader = _open_reader(path)
        if isinstance(reader.f, gzip.GzipFile):
            position = reader.f.tell()
            reader.f.close()
            reader.f = _Inflater(path, position)
    inflater = reader.f if isinstance(reader.f, _Inflater) else None
    frame = 0
    try:
        records = _pcap_records(reader, on_problem, lane) if isinstance(reader, _PcapFile) \
            else _pcapng_records(reader, on_problem)
        try:
            for record in records:
                frame = record[0]
                yield record
        except (OSError, EOFError, zlib.error) as exc:
            if on_problem is not None:
                on_problem(frame + 1, f"capture unreadable past record {frame} ({exc})")
        if inflater is not None and inflater.cut_short and on_problem is not None:
            on_problem(frame + 1, f"the gzip-compressed capture is cut short after record {frame}: "
                                  "the file is truncated")
    finally:
        reader.close()


def read_capture(
    path: str, on_problem: Callable[[int, str], None] | None = None
) -> Iterator[CaptureRecord]:
    """Yield every record of the capture at ``path`` as a :class:`CaptureRecord`."""
    for frame, time, linktype, data, wirelen in iter_records(path, on_problem):
        yield CaptureRecord(frame, time, linktype, data, wirelen)
