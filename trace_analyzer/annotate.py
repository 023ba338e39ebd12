"""``--annotate OUT.pcapng``: the capture again, with the analysis as packet comments.

Every finding (rule ID, severity, title, detail), every capture or protocol problem and every
operation's final status (C-GET, C-MOVE, C-FIND, C-ECHO, C-STORE) becomes an ``opt_comment``
of the frame it names, so that Wireshark's packet list and ``tshark -Y frame.comment`` show
them where they happened.

Frames are matched per file, as the tables number them (a row names its file and the frame in
it). Several files (a capture set of rotated files, or unrelated captures) are copied into the
one output one after another, in the order they were analysed; each comment then also names
its file and frame there, since the output's numbering runs on across files. Standard input
cannot be read twice: the live commands (watch, proxy) spool what they read to a file and
annotate that.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .capture import STDIN, iter_records
from .output_files import open_output
from .pcapng_writer import PcapngWriter
from .safe_text import for_packet_comment, free_text

if TYPE_CHECKING:
    from .analysis import Analysis


@dataclass(slots=True)
class Annotated:
    """What :func:`write_annotated` wrote."""

    path: str
    frames: int = 0
    comments: int = 0
    #: Comments whose frame is not in any file copied (a frame past a truncated file's end).
    unplaced: int = 0


def comments(analysis: Analysis) -> dict[str, dict[int, list[str]]]:
    """file (as the tables name it) -> frame in that file -> comments, in table order."""
    found: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    readable = [c for c in analysis.capture_summaries if c.error is None]
    by_name = {free_text(c.capture): c for c in readable}
    for file, frame, text in _notes(analysis):
        file, frame = _in_its_file(readable, by_name, file, frame)
        found[file][frame].append(text)
    return found


def _in_its_file(summaries: list, by_name: dict, file: str, frame: int) -> tuple[str, int]:
    """A row names the file of its first frame; a later frame of it (a C-GET's final response)
    may count on past that file's end into the next files of its capture set: the file it is in,
    and its frame there."""
    mine = by_name.get(file)
    if mine is None or frame <= mine.frames:
        return file, frame
    in_set = frame + mine.frame_offset
    for other in summaries:
        if (other.capture_set == mine.capture_set
                and other.frame_offset < in_set <= other.frame_offset + other.frames):
            return free_text(other.capture), in_set - other.frame_offset
    return file, frame


def _notes(analysis: Analysis):
    """(file, frame, comment) for every finding, problem and operation's final status."""
    for row in analysis.rows("violations"):
        if row["frame"] is not None:
            text = f"{row['rule']} [{row['severity']}] {row['title']}: {row['detail']}"
            yield row["capture"], row["frame"], text
    for row in analysis.rows("problems"):
        if row["frame"] is not None:
            yield row["capture"], row["frame"], f"{row['code']}: {row['detail']}"
    for row in analysis.rows("operations"):
        if row["final_frame"] is None:
            continue
        counters = ", ".join(f"{name} {row[name]}" for name in ("remaining", "completed", "failed", "warning")
                             if row[name] is not None)
        text = (f"{row['service'] or 'C-GET'} final status {row['status_hex']} {row['status_category']} "
                f"(message ID "
                f"{row['message_id']}, association {row['association']}): {row['status_meaning']}"
                + (f"; {counters}" if counters else "")
                + (f"; error comment: {row['error_comment']}" if row["error_comment"] else ""))
        yield row["capture"], row["final_frame"], text


def write_annotated(analysis: Analysis, out: str, files: Iterable[str | tuple[str, str]] | None = None,
                    ) -> Annotated:
    """Copy ``files`` (default: every file analysed, in order) into ``out`` as pcapng, each frame
    with its comments. A file may be given as (path, the name the tables know it by), for a
    recording spooled under another name. Raises CaptureError when a file cannot be read,
    OutputError (output_files) when ``out`` cannot be written."""
    if files is None:
        files = [c.capture for c in analysis.capture_summaries if c.error is None and c.capture != STDIN]
    files = list(files)
    notes = comments(analysis)
    result = Annotated(out)
    several = len(files) > 1
    placed = 0
    with open_output(out, binary=True) as handle:
        writer = PcapngWriter(handle)
        interfaces: dict[int, int] = {}
        for item in files:
            path, name = item if isinstance(item, tuple) else (item, item)
            mine = notes.get(free_text(name), {})
            for frame, time, linktype, data, wirelen in iter_records(path):
                interface = interfaces.get(linktype)
                if interface is None:
                    interface = interfaces[linktype] = writer.add_interface(
                        max(linktype, 0), os.path.basename(path))
                texts = mine.get(frame, ())
                if texts:
                    where = f" [{free_text(name)} frame {frame}]" if several else ""
                    texts = [for_packet_comment(text + where) for text in texts]
                    placed += len(texts)
                writer.packet(interface, time, data, wirelen, texts)
                result.frames += 1
    result.comments = placed
    result.unplaced = sum(len(texts) for frames in notes.values() for texts in frames.values()) - placed
    return result
