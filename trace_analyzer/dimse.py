"""DIMSE message assembly from PDVs (PS3.8 Annex E, PS3.7 6.3.1).

Layer: DIMSE. One :class:`MessageAssembler` per association direction is fed
the PDV items of P-DATA-TF PDUs, in order, and gives back complete
:class:`DimseMessage` records and :class:`DimseProblem` records. It joins
command fragments, decodes the command set with :mod:`.commandset`, and
then either keeps the data set bytes (identifiers, status data sets: small)
or only counts them (C-STORE data sets: bulk). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .commandset import C_STORE_RQ, CommandSet, decode_command_set

#: Data sets larger than this are counted, not kept, even when wanted:
#: an identifier is a few hundred bytes; anything this big is bulk or hostile.
MAX_KEPT_DATA_SET = 4 * 1024 * 1024
#: A command set is a few hundred bytes; bound the buffer against garbage.
MAX_COMMAND_SET = 1024 * 1024
#: Bytes kept from the start of a data set that is otherwise only counted:
#: enough to reach (0008,0016)/(0008,0018) in any sane data set (GET-SUB-012).
DATA_SET_HEAD = 8 * 1024


@dataclass(slots=True)
class DimseMessage:
    """One DIMSE message: its command set and what followed it.

    ``frame``/``time`` are where the command set became complete (the frame
    that completed the PDU holding its last fragment, as Wireshark numbers
    frames). ``data_set`` holds the data set bytes when they were kept;
    ``data_set_length`` always counts them.
    """

    command: CommandSet
    context_id: int
    frame: int
    time: float
    sender: str = ""  # "requestor" or "acceptor" of the association
    data_set: bytes | None = None
    #: The first DATA_SET_HEAD bytes of a data set that was counted, not kept.
    data_set_head: bytes = b""
    data_set_length: int = 0
    data_set_expected: bool = False
    data_set_complete: bool = False
    data_frame: int | None = None
    data_time: float | None = None
    problems: list[str] = field(default_factory=list)
    #: Why its data set never completed, when the capture (not the peer) cut it: "at end of
    #: stream" or "where the capture lost bytes"; None otherwise.
    cut: str | None = None
    # Filled in by the association layer.
    capture: str = ""
    association: int = 0
    transfer_syntax: str | None = None

    @property
    def command_field(self) -> int | None:
        return self.command.command_field

    @property
    def name(self) -> str:
        return self.command.command_name


@dataclass(frozen=True, slots=True)
class DimseProblem:
    """A fault in PDV framing or message assembly, with where it was seen."""

    frame: int
    time: float
    code: str
    detail: str


def _keep_data_set(command: CommandSet) -> bool:
    return command.command_field != C_STORE_RQ


class MessageAssembler:
    """Assemble the messages of one direction of an association."""

    def __init__(self, sender: str = "") -> None:
        self.sender = sender
        self._command = bytearray()
        self._command_context: int | None = None
        self._pending: DimseMessage | None = None  # command done, data set awaited
        self._data: bytearray | None = None
        #: Data fragments with no command awaiting them, since the last command: after a hole
        #: they are the rest of a message whose start was lost. [fragments, bytes, first frame,
        #: last frame, time]; reported in one row when the run ends, not one row each.
        self._orphans: list | None = None
        self._after_loss = False

    @property
    def in_progress(self) -> DimseMessage | None:
        """The message whose command set is complete and whose data set is still arriving."""
        return self._pending

    @property
    def busy(self) -> bool:
        """True while a message is partly received."""
        return bool(self._command) or self._pending is not None

    @property
    def counting(self) -> int | None:
        """While a data set is arriving that is only counted: how many of its bytes are
        still wanted for its head (0 once it is in; see PduReader.elide). Else None."""
        pending = self._pending
        if pending is None or self._data is not None or self._command:
            return None
        return max(0, DATA_SET_HEAD - len(pending.data_set_head))

    def count_data(self, size: int) -> None:
        """``size`` more bytes of the counted data set, in fragments that are not the last."""
        if self._pending is not None:
            self._pending.data_set_length += size

    def feed_pdv(
        self, context_id: int, control: int, fragment: bytes | memoryview, frame: int, time: float,
        length: int | None = None,
    ) -> list[DimseMessage | DimseProblem]:
        """One PDV; ``length`` is the fragment's length on the wire when its bytes were
        not kept (a counted data fragment), else len(fragment)."""
        out: list[DimseMessage | DimseProblem] = []
        if length is None:
            length = len(fragment)
        if control & 0xFC:
            out.append(DimseProblem(frame, time, "UL-029",
                                    f"PDV message control header 0x{control:02X} has reserved bits set"))
        is_command = bool(control & 0x01)
        is_last = bool(control & 0x02)
        if is_command:
            if self._orphans is not None:
                if self._after_loss or self._orphans[0] > 1:
                    out.append(self._orphan_summary())
                self._orphans = None
            self._after_loss = False
            if self._pending is not None:
                self._pending.problems.append("data set never completed before the next command")
                out.append(DimseProblem(frame, time, "UL-033",
                                        f"{self._pending.name} data set ended without a last fragment "
                                        "when a new command began"))
                out.append(self._finish_pending())
            if self._command_context is not None and context_id != self._command_context:
                out.append(DimseProblem(frame, time, "UL-031",
                                        f"command fragment on context {context_id} continues a command "
                                        f"begun on context {self._command_context}"))
            self._command_context = context_id
            if len(self._command) + len(fragment) > MAX_COMMAND_SET:
                out.append(DimseProblem(frame, time, "CAPTURE-RESYNC",
                                        f"command set exceeds {MAX_COMMAND_SET} bytes; discarded"))
                self._command.clear()
                self._command_context = None
                return out
            self._command += fragment
            if is_last:
                out.extend(self._command_complete(frame, time))
            return out
        # data fragment
        pending = self._pending
        if pending is None:
            orphans = self._orphans
            if orphans is None:
                self._orphans = [1, length, frame, frame, time]
                if not self._after_loss:  # the first one is a fault of its own; the rest go in one row
                    out.append(DimseProblem(frame, time, "UL-033",
                                            f"{length} data set bytes on context {context_id} "
                                            "with no command awaiting a data set"))
            else:
                orphans[0] += 1
                orphans[1] += length
                orphans[3], orphans[4] = frame, time
            return out
        if context_id != pending.context_id:
            text = f"data fragment on context {context_id}, command on context {pending.context_id}"
            if text not in pending.problems:  # once per message, however many fragments
                pending.problems.append(text)
        if self._data is None and len(pending.data_set_head) < DATA_SET_HEAD:
            pending.data_set_head += bytes(fragment[:DATA_SET_HEAD - len(pending.data_set_head)])
        pending.data_set_length += length
        if self._data is not None:
            if len(self._data) + len(fragment) > MAX_KEPT_DATA_SET:
                pending.problems.append(f"data set larger than {MAX_KEPT_DATA_SET} bytes; counted, not kept")
                self._data = None
            else:
                self._data += fragment
        if is_last:
            pending.data_set_complete = True
            pending.data_frame = frame
            pending.data_time = time
            out.append(self._finish_pending())
        return out

    def _command_complete(self, frame: int, time: float) -> list[DimseMessage | DimseProblem]:
        command = decode_command_set(self._command)
        message = DimseMessage(command, self._command_context or 0, frame, time, self.sender)
        self._command = bytearray()
        self._command_context = None
        if command.has_data_set:
            message.data_set_expected = True
            self._pending = message
            self._data = bytearray() if _keep_data_set(command) else None
            return []
        return [message]

    def _finish_pending(self) -> DimseMessage:
        message = self._pending
        assert message is not None
        if self._data is not None:
            message.data_set = bytes(self._data)
        self._pending = None
        self._data = None
        return message

    def _orphan_summary(self) -> DimseProblem:
        count, size, first, last, time = self._orphans
        self._orphans = None
        if self._after_loss:
            return DimseProblem(last, time, "CAPTURE-SKIPPED",
                                f"{count} data fragment(s), {size} bytes, in frames {first}-{last}: the "
                                "rest of a message whose start the capture lost, skipped")
        return DimseProblem(last, time, "UL-033",
                            f"{count} data fragment(s), {size} bytes, in frames {first}-{last} with no "
                            "command awaiting a data set (the first one reported above)")

    def close(self, frame: int, time: float,
              why: str = "at end of stream") -> list[DimseMessage | DimseProblem]:
        """End of stream (or, ``why`` says, a hole): hand over whatever is partly received."""
        out: list[DimseMessage | DimseProblem] = []
        if self._orphans is not None and (self._after_loss or self._orphans[0] > 1):
            out.append(self._orphan_summary())
        self._orphans = None
        if self._pending is not None:
            self._pending.problems.append(f"data set incomplete {why}")
            self._pending.cut = why
            out.append(DimseProblem(frame, time, "CAPTURE-INCOMPLETE",
                                    f"{self._pending.name} data set incomplete {why} "
                                    f"({self._pending.data_set_length} bytes seen)"))
            out.append(self._finish_pending())
        if self._command:
            out.append(DimseProblem(frame, time, "CAPTURE-INCOMPLETE",
                                    f"command set incomplete {why} "
                                    f"({len(self._command)} bytes seen)"))
            self._command.clear()
            self._command_context = None
        return out

    def reset(self, frame: int, time: float) -> list[DimseMessage | DimseProblem]:
        """A hole in the stream: drop partial state, keep what is whole."""
        out = self.close(frame, time, "where the capture lost bytes")
        self._after_loss = True
        return out
