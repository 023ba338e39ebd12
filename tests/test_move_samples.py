"""The C-MOVE, C-FIND and C-ECHO samples, decoded, against what the peers themselves logged.

scripts/samples/move.py records them on loopback with real peers (DCMTK movescu, dcmqrscp,
storescp, findscu, echoscu; pynetdicom Move SCU, Move SCP and Storage SCP) and writes, into
sample_pcaps/manifest.json, the C-MOVE-RSPs the SCU received and the C-STOREs the destination
received, as their logs or handlers report them: never from decoding the capture.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trace_analyzer

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"
ENTRIES = {e["file"]: e for e in json.loads((SAMPLES / "manifest.json").read_text())["captures"]}
MOVES = sorted(name for name, entry in ENTRIES.items() if "move" in entry)


def _hex(value):
    return None if value is None else f"0x{value:04X}"


def test_the_move_samples_are_there():
    assert MOVES == ["dcmtk_move_success.pcap", "dcmtk_move_unknown_destination.pcap",
                     "pynetdicom_move_destination_down.pcap", "pynetdicom_move_failing_destination.pcap"]


@pytest.mark.parametrize("name", MOVES)
def test_c_move_matches_what_the_peers_logged(name):
    truth = ENTRIES[name]["move"]
    analysis = trace_analyzer.analyze(str(SAMPLES / name))
    assert analysis.errors == [] and analysis.rows("problems") == []
    [move_truth] = truth["c_moves"]
    [operation] = [o for o in analysis.rows("operations") if o["service"] == "C-MOVE"]
    assert operation["message_id"] == move_truth["message_id"]
    assert operation["move_destination"] == move_truth["move_destination"]
    assert _hex(operation["final_status"]) == move_truth["final_status_hex"]
    assert operation["pending_responses"] == move_truth["pending_responses"]
    counters = ("remaining", "completed", "failed", "warning")
    assert {k: operation[k] for k in counters} == move_truth["counters"]
    progress = [r for r in analysis.rows("progress") if r["operation"] == operation["operation"]]
    assert [r["status_hex"] for r in progress] == move_truth["response_statuses"]
    # The C-STOREs the destination received, each linked to the C-MOVE across associations.
    subs = analysis.rows("sub_operations")
    assert operation["sub_operations"] == len(subs) == truth["c_stores_received"]
    received = truth["c_stores"]
    assert [s["affected_sop_instance_uid"] for s in subs] == [s["sop_instance_uid"] for s in received]
    assert [s["move_originator_ae"] for s in subs] == [s["move_originator_ae"] for s in truth["c_stores"]]
    assert [s["move_originator_message_id"] for s in subs] == [
        s["move_originator_message_id"] for s in truth["c_stores"]]
    assert all(s["operation"] == operation["operation"] and s["get_message_id"] == operation["message_id"]
               for s in subs)
    if subs:
        [other] = {s["association"] for s in subs}
        assert other != operation["association"]
        statuses = [s["status"] for s in truth["c_stores"] if "status" in s]
        if statuses:  # the pynetdicom destination says what it answered
            assert [s["status_hex"] for s in subs] == statuses
    assert len(analysis.rows("associations")) == (2 if subs else 1)


def test_dcmtk_sub_operations_name_their_originator():
    analysis = trace_analyzer.analyze(str(SAMPLES / "dcmtk_move_success.pcap"))
    assert {s["link"] for s in analysis.rows("sub_operations")} == {"originator"}
    assert analysis.findings == []  # DCMTK peers do it by the book here


def test_pynetdicom_scp_writes_its_own_ae_title_as_originator():
    # Field fact from the destination's own handler: Move Originator AE Title = the SCP's title.
    entry = ENTRIES["pynetdicom_move_failing_destination.pcap"]
    assert {s["move_originator_ae"] for s in entry["move"]["c_stores"]} == {"QRSCP"}
    analysis = trace_analyzer.analyze(str(SAMPLES / "pynetdicom_move_failing_destination.pcap"))
    assert {s["link"] for s in analysis.rows("sub_operations")} == {"originator-id"}
    rules = {f.rule for f in analysis.findings}
    assert rules == {"MOVE-SUB-002"}  # counters agree with what the destination answered
    [operation] = analysis.rows("operations")
    assert (operation["sub_operations_completed"], operation["sub_operations_failed"]) == (4, 1)


@pytest.mark.parametrize("name", ["dcmtk_move_unknown_destination.pcap",
                                  "pynetdicom_move_destination_down.pcap"])
def test_unknown_destination_sample(name):
    analysis = trace_analyzer.analyze(str(SAMPLES / name))
    assert [f.rule for f in analysis.findings] == ["MOVE-RSP-004"]
    [status] = analysis.rows("statuses")
    assert (status["service"], status["status_hex"], status["meaning"]) == (
        "C-MOVE", "0xA801", "Refused: Move Destination unknown")


def test_find_and_echo_sample():
    entry = ENTRIES["dcmtk_find_echo.pcap"]
    analysis = trace_analyzer.analyze(str(SAMPLES / "dcmtk_find_echo.pcap"))
    assert analysis.errors == [] and analysis.findings == []
    echo, find = analysis.rows("operations")
    assert echo["service"] == "C-ECHO" and echo["status_category"] == entry["echo"]["responses"][0]
    assert find["service"] == "C-FIND" and find["matches"] == entry["find"]["matches"]
    assert _hex(find["final_status"]) == entry["find"]["final_status_hex"]
    progress = [r["status_hex"] for r in analysis.rows("progress") if r["service"] == "C-FIND"]
    assert progress == entry["find"]["response_statuses"]
    # Each match's identifier is decoded: the study UIDs dcmqrscp holds.
    [operation] = [o for o in analysis.operation_records if o.service == "C-FIND"]
    uids = [r.identifier_dataset.StudyInstanceUID for r in operation.pending_responses]
    assert len(set(uids)) == entry["find"]["matches"] and all(uids)
    assert {m["command"] for m in analysis.rows("messages")} == {
        "C-ECHO-RQ", "C-ECHO-RSP", "C-FIND-RQ", "C-FIND-RSP"}


def test_summary_report_and_plots_show_the_c_move():
    from trace_analyzer import plots, report

    analysis = trace_analyzer.analyze(str(SAMPLES / "pynetdicom_move_failing_destination.pcap"))
    lines = dict(report.summary_lines(analysis))
    assert lines["C-MOVEs"] == "1: 1 Warning" and lines["C-GETs"] == "0"
    html = report.render_html(analysis)
    assert "C-MOVEs" in html and "originator-id" in html
    ax = plots.plot_progress(analysis)
    assert ax.get_title().endswith("C-MOVE 5 (association 1): 0xB000 Warning")
    figure = plots.plot_all_progress(analysis)
    assert figure.get_suptitle() == "Sub-operation progress of 1 C-MOVE(s)"


def test_check_gates_on_retrieve_level_findings():
    import subprocess
    import sys

    def check(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "trace_analyzer", "check", str(SAMPLES / name),
                               "--fail-on", "warning"], capture_output=True, text=True, timeout=120)

    flagged = check("pynetdicom_move_failing_destination.pcap")
    assert flagged.returncode == 1 and "MOVE-SUB-002" in flagged.stdout
    clean = check("dcmtk_move_success.pcap")
    assert clean.returncode == 0 and "MOVE-" not in clean.stdout
