"""Upper Layer PDU framing (PS3.8 9.3).

Layer: Upper Layer. A :class:`PduReader` is fed the in-order bytes of one TCP
direction and gives back whole :class:`Pdu` records, each tagged with the
frame that completed it. After a hole in the stream, or when a capture starts
mid-association, it searches for the next plausible PDU boundary and
resynchronises there. :func:`split_pdvs` cuts a P-DATA-TF body into PDV
items. No I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from struct import unpack_from

A_ASSOCIATE_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ = 0x01, 0x02, 0x03
P_DATA_TF, A_RELEASE_RQ, A_RELEASE_RP, A_ABORT = 0x04, 0x05, 0x06, 0x07

PDU_NAMES = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE-RQ", A_ASSOCIATE_AC: "A-ASSOCIATE-AC",
    A_ASSOCIATE_RJ: "A-ASSOCIATE-RJ", P_DATA_TF: "P-DATA-TF",
    A_RELEASE_RQ: "A-RELEASE-RQ", A_RELEASE_RP: "A-RELEASE-RP", A_ABORT: "A-ABORT",
}

#: Largest PDU we buffer. Real peers stay far below (defaults are 16 KiB;
#: a few use 1 MiB); a length above this is taken as garbage or hostile.
MAX_PDU_LENGTH = 256 * 1024 * 1024
#: An A-ASSOCIATE is a few kilobytes even with hundreds of contexts.
MAX_ASSOCIATE_LENGTH = 1024 * 1024
#: The first command fragment of any DIMSE message starts with (0000,0000) UL, length 4.
_COMMAND_START = b"\x00\x00\x00\x00\x04\x00\x00\x00"
#: How long a candidate with several PDVs may keep us buffering before it is judged.
_MAX_CHAIN_WAIT = 1024 * 1024
_CANDIDATE = re.compile(rb"[\x01-\x07]\x00", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Pdu:
    type: int
    length: int  # the PDU-length field
    body: bytes  # the bytes after the 6-byte header
    frame: int  # frame that completed the PDU
    time: float
    first_frame: int  # frame holding its first byte
    offset: int  # position of its first byte in the direction's stream
    #: Bytes of a counted data fragment at the end of the body that were not kept (see
    #: PduReader.elide_data): the body holds len(body) + elided bytes on the wire.
    elided: int = 0
    first_time: float = 0.0  # time of first_frame
    #: False for a PDU cut short (the stream ended, or a hole): only its header and the
    #: bytes received are known; ``body`` is what arrived and ``length`` what was announced.
    complete: bool = True

    @property
    def name(self) -> str:
        return PDU_NAMES.get(self.type, f"unknown PDU type 0x{self.type:02X}")


@dataclass(frozen=True, slots=True)
class UlProblem:
    frame: int
    time: float
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Pdv:
    context_id: int
    control: int
    data: memoryview  # empty for a data fragment that was counted, not kept
    length: int  # the fragment's length on the wire (item-length - 2)


def split_pdvs(body: bytes, elided: int = 0) -> tuple[list[Pdv], str | None]:
    """Cut a P-DATA-TF body into PDV items; also returns a fault, if any.

    ``elided``: bytes at the end of the body's single data fragment that were
    counted but not kept (the body is then the PDV item header and the kept head).
    """
    if elided:
        return [Pdv(body[4], body[5], memoryview(body)[6:], len(body) - 6 + elided)], None
    items: list[Pdv] = []
    view = memoryview(body)
    offset = 0
    size = len(body)
    while offset < size:
        if size - offset < 6:
            return items, f"{size - offset} bytes after the last PDV are too short for a PDV item"
        length = unpack_from(">I", body, offset)[0]
        if length < 2:
            return items, f"PDV item length {length} at offset {offset} is less than 2"
        if length > size - offset - 4:
            return items, (f"PDV item length {length} at offset {offset} runs past the end "
                           f"of the PDU ({size - offset - 4} bytes left)")
        items.append(Pdv(body[offset + 4], body[offset + 5], view[offset + 6:offset + 4 + length],
                         length - 2))
        offset += 4 + length
    if not items:
        return items, "P-DATA-TF without any PDV item"
    return items, None


def split_cut_pdvs(body: bytes, elided: int = 0) -> list[Pdv]:
    """The PDV items of a P-DATA-TF cut short whose 6-byte headers arrived: each with the
    fragment bytes that came and the length its header announced."""
    view = memoryview(body)
    if elided:
        return [Pdv(body[4], body[5], view[6:], max(unpack_from(">I", body, 0)[0] - 2, 0))] \
            if len(body) >= 6 else []
    items: list[Pdv] = []
    offset = 0
    while len(body) - offset >= 6:
        length = unpack_from(">I", body, offset)[0]
        if length < 2:
            break  # not an item header: nothing after it can be framed
        items.append(Pdv(body[offset + 4], body[offset + 5], view[offset + 6:offset + 4 + length],
                         length - 2))
        offset += 4 + length
    return items


def _plausible_pdv_chain(buf: bytearray, start: int, length: int, require_command: bool) -> bool | None:
    """Check the PDV items of a P-DATA-TF candidate. None: not enough bytes yet."""
    end = start + 6 + length
    offset = start + 6
    # The first PDV header and 8 fragment bytes, or the whole PDU if it is shorter.
    if len(buf) < min(offset + 14, end):
        return None
    item_length = unpack_from(">I", buf, offset)[0]
    context_id, control = buf[offset + 4], buf[offset + 5]
    if item_length < 2 or item_length > length - 4 or not context_id & 1 or control > 3:
        return False
    if require_command and (not control & 1 or buf[offset + 6:offset + 14] != _COMMAND_START):
        return False
    if item_length == length - 4:
        return True  # one PDV filling the PDU exactly: hard to meet by chance
    # Several PDVs: believe it only if the whole chain adds up.
    if len(buf) < end:
        return None if length <= _MAX_CHAIN_WAIT else False
    while offset + 6 <= end:  # a tail shorter than a PDV header ends the loop (and fails below)
        item_length = unpack_from(">I", buf, offset)[0]
        if item_length < 2 or item_length > end - offset - 4 or not buf[offset + 4] & 1 \
                or buf[offset + 5] > 3:
            return False
        offset += 4 + item_length
    return offset == end


def plausible_pdu_at(buf: bytearray, start: int, require_command: bool = False) -> bool | None:
    """Is there a believable PDU header at ``start``? None: need more bytes."""
    if len(buf) < start + 6:
        return None
    pdu_type = buf[start]
    if buf[start + 1] != 0 or not 1 <= pdu_type <= 7:
        return False
    length = unpack_from(">I", buf, start + 2)[0]
    if pdu_type == P_DATA_TF:
        if not 6 <= length <= MAX_PDU_LENGTH:
            return False
        return _plausible_pdv_chain(buf, start, length, require_command)
    if require_command:
        return False
    if pdu_type in (A_ASSOCIATE_RJ, A_RELEASE_RQ, A_RELEASE_RP, A_ABORT):
        return length == 4
    # A-ASSOCIATE-RQ/AC: fixed part of 68 bytes, protocol version 1.
    if not 68 <= length <= MAX_ASSOCIATE_LENGTH:
        return False
    if len(buf) < start + 8:
        return None
    return buf[start + 6] == 0 and buf[start + 7] == 1


@dataclass(frozen=True, slots=True)
class PduRun:
    """P-DATA-TF PDUs counted, not framed one by one: ``count`` PDUs identical in their
    first 12 bytes (PDU header and single data PDV header, ``header``) to the last PDU
    framed before them, each ``length`` long, from ``first_offset`` of the stream on, the
    last completed at ``frame``; the next PDU begins at ``next_offset``. Only bulk data
    comes this way (see :mod:`.lane`)."""

    count: int
    length: int
    header: bytes
    first_offset: int  # where the first of them begins in the stream
    next_offset: int
    frame: int
    time: float


#: The 12 bytes that open a P-DATA-TF: PDU header, then the first PDV item's header.
RUN_HEADER = 12


class PduReader:
    """Frame the PDUs of one direction of a TCP connection."""

    def __init__(self, synced: bool = True, require_command: bool = False) -> None:
        self._buf = bytearray()
        self._pos = 0  # stream position of _buf[0]
        # Where each fed chunk still buffered begins (stream position) and its
        # frame: a PDU found after a wait or a hunt may start frames back.
        self._mark_positions: list[int] = []
        self._mark_frames: list[int] = []
        self._mark_times: list[float] = []
        self.synced = synced
        #: Buffer length the PDU being received needs: until then a feed only appends.
        self._need = 6
        #: Longest PDU believed; past it the length field is taken as garbage and the
        #: reader resynchronises rather than buffer what follows (set from the negotiation).
        self.limit = MAX_PDU_LENGTH
        self.receiver_max = 0
        #: When hunting for a boundary, demand a command PDV (used for detection
        #: mid-stream on a port nobody told us is DICOM).
        self.require_command = require_command
        self.skipped_bytes = 0
        #: Set by the association layer while the data fragments that follow are only
        #: counted (a C-STORE data set): a P-DATA-TF holding one data PDV then keeps
        #: just its first 12 bytes, and the rest of it is counted, not buffered.
        #: Cleared here by any PDU that is not such a data PDU.
        self.elide_data = False
        self._eliding = False
        self._elided = 0  # bytes of the current PDU counted, not buffered
        self._keep = 0  # bytes of a counted fragment still buffered (a data set's head)
        #: First 12 bytes of the last P-DATA-TF framed (for runs of identical PDUs).
        self._last_header = b""

    @property
    def position(self) -> int:
        return self._pos

    def feed(self, data: bytes, frame: int, time: float) -> list[Pdu | UlProblem]:
        buf = self._buf
        if self._eliding:
            rest = self._need - len(buf) - self._elided  # bytes of this PDU still to come
            room = RUN_HEADER + self._keep - len(buf)  # of them, the head still to keep
            if room > 0:
                buf += data[:min(room, rest)]
            if len(data) < rest:
                self._elided += max(0, len(data) - max(room, 0))
                return []
            self._elided += rest - min(max(room, 0), rest)
            out: list[Pdu | UlProblem] = [self._finish_elided(frame, time)]
            if len(data) > rest:
                out.extend(self.feed(data[rest:], frame, time))
            return out
        if self.synced and buf and len(buf) + len(data) < self._need:
            # The middle of a PDU, the common case for bulk data: its first byte,
            # and so its first frame, is already marked.
            if self.elide_data and len(buf) < RUN_HEADER:  # its 12-byte head was cut by a segment end
                buf += data
                self._try_elide()
                return []
            buf += data
            return []
        if data:
            self._mark_positions.append(self._pos + len(buf))
            self._mark_frames.append(frame)
            self._mark_times.append(time)
        buf += data
        if self.synced and len(buf) < self._need:
            return []
        out = []
        buf = self._buf
        consumed = 0
        self._need = 6
        while True:
            if not self.synced:
                status, index = self._hunt(consumed)
                self.skipped_bytes += index - consumed
                consumed = index
                if status != "found":
                    break
                self.synced = True
            if len(buf) - consumed < 6:
                break
            pdu_type = buf[consumed]
            length = unpack_from(">I", buf, consumed + 2)[0]
            if not 1 <= pdu_type <= 7 or length > self.limit:
                what = (f"PDU type 0x{pdu_type:02X} is not 0x01-0x07" if not 1 <= pdu_type <= 7
                        else f"PDU length {length} is beyond any believable PDU"
                        + (f" (the receiver accepts {self.receiver_max})" if self.receiver_max else ""))
                out.append(UlProblem(frame, time, "UL-001" if not 1 <= pdu_type <= 7 else "CAPTURE-RESYNC",
                                     f"{what} at stream offset {self._pos + consumed}; "
                                     "searching for the next PDU"))
                self.synced = False
                consumed += 1
                continue
            end = consumed + 6 + length
            if len(buf) < end:
                self._need = end - consumed  # measured from this PDU's start, once consumed bytes go
                break
            with memoryview(buf) as view:  # one copy of the body, and the buffer stays resizable
                body = bytes(view[consumed + 6:end])
            # Another PDU in between ends a run: the next data PDU is framed and checked first.
            self._last_header = bytes(buf[consumed:consumed + RUN_HEADER]) if pdu_type == P_DATA_TF else b""
            if self.elide_data and (pdu_type != P_DATA_TF
                                    or not self._continues_data(self._last_header, length)):
                self.elide_data = False
            first = self._mark_at(self._pos + consumed)
            out.append(Pdu(pdu_type, length, body, frame, time, self._mark_frames[first],
                           self._pos + consumed, 0, self._mark_times[first]))
            consumed = end
        if consumed:
            del buf[:consumed]
            self._pos += consumed
            keep = max(0, bisect_right(self._mark_positions, self._pos) - 1)
            del self._mark_positions[:keep], self._mark_frames[:keep], self._mark_times[:keep]
        if self.elide_data:
            self._try_elide()
        return out

    # -- bulk data: counted, not buffered ----------------------------------------

    @staticmethod
    def _continues_data(header: bytes, length: int) -> bool:
        """A P-DATA-TF of one data PDV that is not the last fragment (after it, more data)."""
        return (len(header) == RUN_HEADER and header[11] == 0
                and unpack_from(">I", header, 6)[0] == length - 4)

    def elide(self, keep: int = 0) -> None:
        """The data fragments that follow are only counted: stop buffering them, past their
        first ``keep`` bytes (what the data set's head still wants)."""
        self.elide_data = True
        self._keep = keep
        self._try_elide()

    def _try_elide(self) -> None:
        buf = self._buf
        kept = RUN_HEADER + self._keep
        if self._eliding:
            if len(buf) > kept:  # the head wants less than when this PDU began
                self._elided += len(buf) - kept
                del buf[kept:]
            return
        if (self.synced and self._need > RUN_HEADER and len(buf) >= RUN_HEADER
                and buf[0] == P_DATA_TF and buf[11] in (0, 2)
                and unpack_from(">I", buf, 6)[0] == self._need - 10):
            # One data PDV filling the PDU (item-length = PDU-length - 4).
            self._eliding = True
            self._elided = max(0, len(buf) - kept)
            del buf[kept:]

    def _finish_elided(self, frame: int, time: float) -> Pdu:
        buf = self._buf
        length = self._need - 6
        if buf[11] != 0:  # the last fragment: what follows is a new message
            self.elide_data = False
        self._last_header = bytes(buf[:RUN_HEADER])
        first = self._mark_at(self._pos)
        pdu = Pdu(P_DATA_TF, length, bytes(buf[6:]), frame, time, self._mark_frames[first], self._pos,
                  self._elided, self._mark_times[first])
        self._pos += self._need
        buf.clear()
        self._clear_marks()
        self._eliding = False
        self._elided = 0
        self._need = 6
        return pdu

    def elided_run(self) -> tuple[int, bytes | None] | None:
        """While a data PDU is being counted, not buffered: (bytes left in it, the 12 bytes
        that open it if the PDUs after it may be counted too, else None); else None.

        PDUs after it may be counted, and it may be completed without being framed, when
        it is identical in shape to the last PDU framed and not the last fragment: counted
        PDUs then repeat a PDU that went through every check."""
        buf = self._buf
        if not self._eliding or len(buf) < RUN_HEADER + self._keep:
            return None  # nothing, or a head still to keep: the lane keeps nothing
        left = self._need - len(buf) - self._elided
        if not self._keep and buf == self._last_header and buf[11] == 0:
            return left, self._last_header
        return left, None

    def skip_run(self, count: int, whole: int, first_frame: int, size: int, header: bytes,
                 first_time: float = 0.0) -> None:
        """``count`` more bytes arrived, counted elsewhere (the fast lane), in PDUs of the
        current run: ``size`` bytes each, opened by ``header``. They completed ``whole`` PDUs
        (the current one first, if one was being received); bytes after the last of them
        open the next, which began in ``first_frame``, unless they ended with a PDU."""
        if not whole and self._eliding:
            self._elided += count
            return
        buf = self._buf
        received = (len(buf) + self._elided if self._eliding else 0) + count - whole * size
        self._pos += whole * size
        buf.clear()
        self._clear_marks()
        if received:  # the middle of the next PDU of the run
            buf += header
            self._eliding, self._elided, self._need = True, received - RUN_HEADER, size
            self._mark_positions.append(self._pos)
            self._mark_frames.append(first_frame)
            self._mark_times.append(first_time)
        else:  # between two PDUs
            self._eliding, self._elided, self._need = False, 0, 6

    def _mark_at(self, position: int) -> int:
        """Index of the mark of the frame that held the byte at stream ``position`` (still buffered)."""
        return max(bisect_right(self._mark_positions, position) - 1, 0)

    def _clear_marks(self) -> None:
        self._mark_positions.clear()
        self._mark_frames.clear()
        self._mark_times.clear()

    def cut(self) -> Pdu | None:
        """The PDU being received, as far as it came (``complete`` False), if its header is in:
        what the stream ending or a hole cuts short. The reader itself is left as it is."""
        buf = self._buf
        if not self.synced or len(buf) < 6 or not self._mark_positions:
            return None
        first = self._mark_at(self._pos)
        length = unpack_from(">I", buf, 2)[0]
        body = bytes(buf[6:6 + length])
        return Pdu(buf[0], length, body, self._mark_frames[first], self._mark_times[first],
                   self._mark_frames[first], self._pos, self._elided, self._mark_times[first], False)

    def _hunt(self, start: int) -> tuple[str, int]:
        """Find the next believable PDU start: ("found" | "wait", index) or ("none", keep-from)."""
        buf = self._buf
        for match in _CANDIDATE.finditer(buf, start):
            index = match.start()
            verdict = plausible_pdu_at(buf, index, self.require_command)
            if verdict:
                return "found", index
            if verdict is None:
                return "wait", index
        # Nothing here; a header may still begin on the very last byte.
        return "none", max(start, len(buf) - 1)

    def lose_sync(self, missing: int) -> int:
        """A hole of ``missing`` bytes: drop the partial PDU, hunt for the next one.

        Returns how many buffered bytes were dropped.
        """
        dropped = len(self._buf) + self._elided
        self._eliding, self._elided, self.elide_data = False, 0, False
        self._last_header = b""
        self._buf.clear()
        self._clear_marks()
        self._pos += dropped + missing
        self.synced = False
        self._need = 6
        return dropped

    @property
    def pending(self) -> int:
        """Bytes of a partial PDU waiting for more data."""
        return len(self._buf) + self._elided

    @property
    def awaited(self) -> int:
        """Bytes the partial PDU announced (header included), once its header is in."""
        return self._need if self.synced and len(self._buf) >= 6 else 0

    def believe_up_to(self, receiver_max: int) -> None:
        """The receiver announced this Maximum Length (0 = none): far longer PDUs are garbage.

        A little over the limit is a peer's fault (rule UL-004) and is still decoded;
        sixteen times over, and at least 1 MiB, is not a PDU at all.
        """
        self.receiver_max = receiver_max
        if receiver_max:
            self.limit = min(MAX_PDU_LENGTH, max(16 * receiver_max, 1024 * 1024))
