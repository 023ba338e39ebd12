"""Capture file input: pcap, pcapng and their gzip-compressed forms.

Layer: capture (the only layer that touches files). Reads records with
scapy's raw readers, without dissecting them, and yields
:class:`CaptureRecord` items numbered as Wireshark numbers frames. A file
that cannot be opened raises :class:`CaptureError`; a record cut short at the
end of the file stops the iteration and is reported through ``on_problem``,
so everything read before it is kept.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from scapy.error import Scapy_Exception
from scapy.utils import RawPcapNgReader, RawPcapReader

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


def _open_reader(path: str):
    if not os.path.exists(path):
        raise CaptureError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CaptureError(f"{path}: is a directory, not a capture file")
    if not os.access(path, os.R_OK):
        raise CaptureError(f"{path}: permission denied")
    if os.path.getsize(path) == 0:
        raise CaptureError(f"{path}: empty file")
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
    except (OSError, EOFError, struct.error, ValueError) as exc:
        raise CaptureError(f"{path}: unreadable capture header ({exc})") from None


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


def _read_pcap_record(reader: RawPcapReader) -> tuple[bytes, RawPcapReader.PacketMetadata]:
    """One pcap record, whole; EOFError at the end of the file."""
    header = reader.f.read(16)
    if len(header) < 16:
        raise EOFError
    sec, usec, caplen, wirelen = struct.unpack(reader.endian + "IIII", header)
    if caplen > _MAX_RECORD:
        raise ValueError(f"record length {caplen} is beyond any captured frame")
    # In chunks, so that a length in a damaged file allocates no more than the file holds.
    chunks = []
    remaining = caplen
    while remaining:
        chunk = reader.f.read(min(remaining, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks), RawPcapReader.PacketMetadata(sec=sec, usec=usec, wirelen=wirelen, caplen=caplen)


def read_capture(
    path: str, on_problem: Callable[[int, str], None] | None = None
) -> Iterator[CaptureRecord]:
    """Yield every record of the capture at ``path``.

    ``on_problem(frame, text)`` hears of a file that ends inside a record
    (the part present is still yielded, as a snaplen cut would be).
    """
    reader = _open_reader(path)
    frame = 0
    previous_time = 0.0
    is_ng = isinstance(reader, RawPcapNgReader)
    watcher = reader.f = _ReadWatcher(reader.f)
    try:
        while True:
            try:
                if is_ng:
                    data, meta = reader._read_packet(size=_NO_CUT)
                else:
                    data, meta = _read_pcap_record(reader)
            except EOFError:
                if watcher.short_read and on_problem is not None:
                    on_problem(frame + 1, f"capture ends inside record {frame + 1}: the file is truncated")
                break
            except (OSError, struct.error, ValueError, zlib.error, Scapy_Exception) as exc:
                if on_problem is not None:
                    on_problem(frame + 1, f"capture record {frame + 1} is unreadable ({exc}); "
                                          "the rest of the file is skipped")
                break
            frame += 1
            if is_ng:
                linktype = meta.linktype
                if meta.tshigh is None:  # a Simple Packet Block has no timestamp
                    time = previous_time
                else:
                    time = ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
                wirelen = meta.wirelen if meta.wirelen is not None else len(data)
            else:
                linktype = reader.linktype
                time = meta.sec + meta.usec / (1e9 if reader.nano else 1e6)
                wirelen = meta.wirelen
                if len(data) < meta.caplen:
                    watcher.short_read = False  # reported here, with the record's frame
                    if on_problem is not None:
                        on_problem(frame, f"capture ends inside record {frame} ({len(data)} of "
                                          f"{meta.caplen} bytes present): the file is truncated")
            previous_time = time
            yield CaptureRecord(frame, time, linktype, data, wirelen)
    finally:
        reader.close()
