"""pcapng output: section header, interface descriptions, enhanced packet blocks with comments.

Layer: capture output (shared by ``--annotate`` and the proxy's ``--write``). Blocks are built
as bytes by plain functions; :class:`PcapngWriter` writes them to a binary handle it is given
(it opens nothing itself). Little-endian, microsecond timestamps (the pcapng default), as
Wireshark, tshark and this tool's reader expect.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_SHB, _IDB, _EPB = 0x0A0D0D0A, 1, 6
_OPT_END, _OPT_COMMENT = 0, 1
_IF_NAME, _IF_DESCRIPTION = 2, 3
_SHB_USERAPPL = 4
_MICRO = 1_000_000
#: The largest packet a reader is asked to accept (the snap length written in each IDB).
SNAP_LENGTH = 262144


def _option(code: int, value: bytes) -> bytes:
    padding = -len(value) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * padding


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    return b"".join(_option(code, value) for code, value in options) + struct.pack("<HH", _OPT_END, 0)


def _block(kind: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


def section_header(application: str = "trace-analyzer") -> bytes:
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)  # byte-order magic, version 1.0, length unknown
    return _block(_SHB, body + _options([(_SHB_USERAPPL, application.encode())]))


def interface_description(linktype: int, name: str | None = None, description: str | None = None,
                          snaplen: int = SNAP_LENGTH) -> bytes:
    options = []
    if name:
        options.append((_IF_NAME, name.encode("utf-8", "replace")))
    if description:
        options.append((_IF_DESCRIPTION, description.encode("utf-8", "replace")))
    return _block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + _options(options))


def enhanced_packet(interface: int, time: float, data: bytes, wirelen: int | None = None,
                    comments: list[str] = ()) -> bytes:
    """One packet; each comment becomes an ``opt_comment`` (Wireshark's frame.comment)."""
    return b"".join(_packet_parts(interface, time, data, wirelen, comments))


def _packet_parts(interface: int, time: float, data: bytes, wirelen: int | None,
                  comments: list[str]) -> tuple[bytes, bytes, bytes]:
    """An enhanced packet block as (what precedes the data, the data, what follows it)."""
    stamp = round(time * _MICRO)
    captured = len(data)
    options = _options([(_OPT_COMMENT, c.encode("utf-8", "replace")[:65000]) for c in comments])
    padding = -captured % 4
    total = 32 + captured + padding + len(options)
    head = struct.pack("<IIIIIII", _EPB, total, interface, stamp >> 32, stamp & 0xFFFFFFFF, captured,
                       max(captured, wirelen or 0))
    return head, data, b"\0" * padding + options + struct.pack("<I", total)


class PcapngWriter:
    """Writes a pcapng stream to ``handle``: one section, interfaces declared as they are added."""

    def __init__(self, handle: BinaryIO, application: str = "trace-analyzer") -> None:
        self.handle = handle
        self.interfaces = 0
        self.packets = 0
        handle.write(section_header(application))

    def add_interface(self, linktype: int, name: str | None = None, description: str | None = None) -> int:
        """Declare an interface; returns its number for :meth:`packet`."""
        self.handle.write(interface_description(linktype, name, description))
        self.interfaces += 1
        return self.interfaces - 1

    def packet(self, interface: int, time: float, data: bytes, wirelen: int | None = None,
               comments: list[str] = ()) -> None:
        for part in _packet_parts(interface, time, data, wirelen, comments):  # the data not copied
            self.handle.write(part)
        self.packets += 1

    def flush(self) -> None:
        self.handle.flush()
