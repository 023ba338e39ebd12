"""The live view's picture of C-MOVEs, C-FINDs and C-ECHOs while a capture is fed, frame by frame.

A C-MOVE's sub-operations are on another association: the view links them at each refresh on
copies, so what it shows while the retrieve runs must count the C-STOREs answered so far, and
what the analysis gives at the end must be what ``analyze`` gives (the view left no mark).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from rich.console import Console

import trace_analyzer
from trace_analyzer.analysis import Analysis, CaptureAnalyzer
from trace_analyzer.capture import iter_records
from trace_analyzer.live_view import LiveView

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"


def _render(view: LiveView) -> str:
    console = Console(width=240, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(view)
    return console.export_text()


def _row(text: str, service: str) -> list[str]:
    rows = [line for line in text.splitlines() if re.search(rf"│ {service}\s+│", line)]
    assert len(rows) == 1, text
    return [cell.strip() for cell in rows[0].split("│")]


def _watch(name: str, stops: set[int]) -> tuple[CaptureAnalyzer, LiveView, dict[int, str]]:
    """Feed a sample frame by frame, rendering the view after each frame in ``stops`` (and at the end)."""
    analyzer = CaptureAnalyzer(str(SAMPLES / name), fast_lane=False)
    view = LiveView(analyzer, threading.Lock(), "test")
    screens = {}
    for frame, time, linktype, data, _ in iter_records(str(SAMPLES / name), lambda *_: None):
        analyzer.feed_frame(frame, time, linktype, data)
        if frame in stops:
            screens[frame] = _render(view)
        elif frame % 7 == 0:
            _render(view)  # refreshes between the looks: the linking is redone on what came
    analyzer.finish()
    screens[0] = _render(view)
    return analyzer, view, screens


def _same_as_analyze(analyzer: CaptureAnalyzer, name: str) -> None:
    live = json.loads(Analysis([analyzer], []).to_json())
    analysed = json.loads(trace_analyzer.analyze(str(SAMPLES / name)).to_json())
    assert live == analysed


def test_a_c_move_climbing_with_its_sub_operations_linked_across_associations():
    name = "dcmtk_move_success.pcap"
    analysis = trace_analyzer.analyze(str(SAMPLES / name))
    [move] = analysis.rows("operations")
    messages = analysis.rows("messages")
    pending = [m for m in messages if m["command"] == "C-MOVE-RSP" and m["status"] == 0xFF00]
    look = pending[2]["frame"]  # the third pending C-MOVE-RSP
    answered = [m for m in messages if m["command"] == "C-STORE-RSP" and m["frame"] <= look]
    assert 0 < len(answered) < move["sub_operations"]
    progress = [p for p in analysis.rows("progress") if p["frame"] == look]
    [counters] = progress
    _, view, screens = _watch(name, {look})
    cells = _row(screens[look], "C-MOVE")
    # assoc, service, msg id, destination, status, remaining, completed, failed, warning, sub-ops, on, link
    assert cells[0:5] == [str(move["association"]), "C-MOVE", str(move["message_id"]), "STORESCP", "pending"]
    assert cells[5:9] == [str(counters[c]) for c in ("remaining", "completed", "failed", "warning")]
    assert cells[9] == f"{len(answered)}/0/0"
    assert cells[10] == move["sub_operation_associations"] != str(move["association"])
    assert cells[11] == "originator"
    final = _row(screens[0], "C-MOVE")
    assert final[4] == "0x0000 Success" and final[6] == str(move["completed"]) == "5"
    assert final[9] == f"{move['sub_operations_completed']}/0/0" and final[11] == move["link"]


def test_the_view_leaves_the_records_as_the_analysis_needs_them():
    """Refreshing the view while the capture is fed (every third frame) changes nothing the
    analysis at the end reads: its tables are analyze's of the same file."""
    for name in ("dcmtk_move_success.pcap", "pynetdicom_move_failing_destination.pcap"):
        analyzer, _, _ = _watch(name, set(range(0, 200, 3)))
        _same_as_analyze(analyzer, name)


def test_failed_sub_operations_and_statuses_of_every_service():
    name = "pynetdicom_move_failing_destination.pcap"
    analysis = trace_analyzer.analyze(str(SAMPLES / name))
    [move] = analysis.rows("operations")
    _, _, screens = _watch(name, set())
    cells = _row(screens[0], "C-MOVE")
    ok, failed = move["sub_operations_completed"], move["sub_operations_failed"]
    assert (ok, failed) == (4, 1)
    assert cells[9] == f"{ok}/0/{failed}" and cells[11] == move["link"] == "originator-id"
    # The destination's refusal and the C-MOVE's warning, on their frames.
    failures = {(m["frame"], m["command"]) for m in analysis.rows("messages")
                if m["command"].endswith("-RSP") and m["status"] not in (0, 0xFF00)}
    assert {c.split("-RSP")[0] for _, c in failures} == {"C-STORE", "C-MOVE"}
    for frame, command in failures:
        assert re.search(rf"{frame}\s+│ \d+\s+│ {command}\s+│ 0x", screens[0]), screens[0]


def test_c_find_and_c_echo_with_their_status():
    name = "dcmtk_find_echo.pcap"
    analysis = trace_analyzer.analyze(str(SAMPLES / name))
    operations = {o["service"]: o for o in analysis.rows("operations")}
    _, _, screens = _watch(name, set())
    find, echo = _row(screens[0], "C-FIND"), _row(screens[0], "C-ECHO")
    assert find[3] == f"{operations['C-FIND']['status_hex']} Success"
    assert find[4] == str(operations["C-FIND"]["matches"]) and int(find[4]) > 0
    assert echo[3] == f"{operations['C-ECHO']['status_hex']} Success"
