"""--annotate: findings, problems and final statuses as pcapng packet comments, read back by tshark."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from tshark_oracle import tshark_path

from trace_analyzer import analyze
from trace_analyzer.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?")


def _tshark_comments(path: Path) -> tuple[dict[int, list[str]], int, str]:
    """frame -> comments as tshark reads them, the frame count, and tshark's standard error."""
    run = subprocess.run([tshark_path(), "-n", "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.comment", "-E", "occurrence=a", "-E", "aggregator=\x1f"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    found: dict[int, list[str]] = {}
    frames = 0
    for line in run.stdout.splitlines():
        number, _, comments = line.partition("\t")
        frames += 1
        if comments:
            found[int(number)] = comments.split("\x1f")
    warnings = "\n".join(line for line in run.stderr.splitlines() if "Running as user" not in line)
    return found, frames, warnings


def test_every_finding_on_the_frame_the_violations_table_names(tmp_path):
    sample = SAMPLES / "fault_role_refused.pcap"
    out = tmp_path / "annotated.pcapng"
    assert main(["check", str(sample), "--annotate", str(out)]) == 1  # the sample breaks error rules
    analysis = analyze(str(sample))
    violations = analysis.rows("violations")
    assert violations
    found, frames, warnings = _tshark_comments(out)
    assert warnings == ""
    assert frames == analysis.capture_summaries[0].frames
    for row in violations:
        head = f"{row['rule']} [{row['severity']}] {row['title']}"
        assert any(c.startswith(head) for c in found[row["frame"]]), (row, found.get(row["frame"]))
    for row in analysis.rows("operations"):
        assert any(c.startswith(f"{row['service']} final status {row['status_hex']}")
                   for c in found[row["final_frame"]])
    expected = len(violations) + len(analysis.rows("operations")) + len(analysis.rows("problems"))
    assert sum(len(c) for c in found.values()) == expected


def test_the_annotated_copy_analyses_as_the_original(tmp_path):
    """The copy holds the same frames and link types, timestamps to the microsecond (a pcapng's
    nanoseconds are rounded): the same tables."""
    for name in ("pynetdicom_failed_warning_subops.pcap", "linux_sll.pcap", "pynetdicom_success.pcapng",
                 "retrieve.pcap.gz", "truncated.pcap"):
        out = tmp_path / f"{name}.pcapng"
        assert main(["analyze", str(SAMPLES / name), "--format", "json", "--output", str(tmp_path / "x.json"),
                     "--annotate", str(out)]) == 0
        original, copy = analyze(str(SAMPLES / name)).to_dict(), analyze(str(out)).to_dict()
        for table in original:
            for row in original[table] + copy[table]:
                for column in ("capture", "capture_set"):
                    row.pop(column, None)
            if table == "problems":  # the copy is whole: the original's cut is not in it
                continue
            assert len(original[table]) == len(copy[table]), (name, table)
            for before, after in zip(original[table], copy[table], strict=True):
                assert before.keys() == after.keys()
                for column, value in before.items():
                    if isinstance(value, float):
                        assert after[column] == pytest.approx(value, abs=2e-6), (name, table, column)
                    elif isinstance(value, str) and _ISO.fullmatch(value):  # a time's ISO twin
                        gap = datetime.fromisoformat(after[column]) - datetime.fromisoformat(value)
                        assert abs(gap.total_seconds()) <= 2e-6, (name, table, column)
                    else:
                        assert after[column] == value, (name, table, column)


def test_several_files_one_output_each_comment_names_its_file(tmp_path):
    """Every sample at once: one output, files one after another; each finding still on its frame."""
    samples = sorted(str(p) for p in SAMPLES.iterdir() if p.name.endswith((".pcap", ".pcapng", ".gz")))
    out = tmp_path / "all.pcapng"
    assert main(["analyze", *samples, "--format", "json", "--output", str(tmp_path / "all.json"),
                 "--annotate", str(out)]) == 0
    tables = json.loads((tmp_path / "all.json").read_text())
    offsets, total = {}, 0
    analysis = analyze(samples)
    for summary in analysis.capture_summaries:
        offsets[summary.capture] = total
        total += summary.frames
    found, frames, warnings = _tshark_comments(out)
    assert warnings == ""
    assert frames == total
    wanted: dict[int, list[str]] = defaultdict(list)
    for row in tables["violations"]:
        wanted[offsets[row["capture"]] + row["frame"]].append(
            f"{row['rule']} [{row['severity']}]|[{row['capture']} frame {row['frame']}]")
    assert len(wanted) > 30
    for frame, needles in wanted.items():
        for needle in needles:
            head, tail = needle.split("|")
            assert any(c.startswith(head) and c.endswith(tail) for c in found[frame]), (frame, needle)


def test_standard_input_is_said_not_annotated(tmp_path):
    sample = SAMPLES / "fault_remaining_rises.pcap"
    out = tmp_path / "stdin.pcapng"
    with open(sample, "rb") as stdin:
        run = subprocess.run([str(Path(sys.executable).parent / "trace-analyzer"), "analyze", "-",
                              "--annotate", str(out)], stdin=stdin, capture_output=True, text=True,
                             timeout=60)
    assert run.returncode == 0, run.stderr
    assert "standard input is read once" in run.stderr


def test_a_capture_set_of_rotated_files(tmp_path):
    """A C-GET that spans two rotated files: its final status lands on the frame of the second
    file where the final response is, though the operations row names the first file."""
    import shutil

    sample = SAMPLES / "pynetdicom_failed_warning_subops.pcap"
    whole = analyze(str(sample))
    [operation] = whole.rows("operations")
    final = operation["final_frame"]
    cut = final - 10  # the request in the first file, the final response in the second
    editcap = shutil.which("editcap")
    assert editcap, "editcap (wireshark-common) must be installed: scripts/setup.sh"
    subprocess.run([editcap, "-c", str(cut), str(sample), str(tmp_path / "part.pcap")], check=True,
                   capture_output=True, timeout=60)
    parts = sorted(str(p) for p in tmp_path.glob("part*.pcap"))
    assert len(parts) >= 2
    out = tmp_path / "set.pcapng"
    assert main(["analyze", *parts, "--format", "json", "--output", str(tmp_path / "set.json"),
                 "--annotate", str(out)]) == 0
    split = analyze(parts)
    [row] = split.rows("operations")
    assert row["capture"] == parts[0] and row["final_frame"] == final  # counts on into the next file
    found, frames, warnings = _tshark_comments(out)
    assert warnings == "" and frames == whole.capture_summaries[0].frames
    assert any(c.startswith("C-GET final status") and c.endswith(f"[{parts[1]} frame {final - cut}]")
               for c in found[final]), found
    for violation in whole.rows("violations"):  # each on the same frame as in the whole capture
        assert any(c.startswith(violation["rule"]) for c in found[violation["frame"]])


def test_c_move_and_c_find_final_statuses_on_their_frames(tmp_path):
    """Every service's operations are annotated, named by service: a C-MOVE's final status on its
    final response, the C-FIND's and C-ECHO's on theirs."""
    for name in ("dcmtk_move_success.pcap", "dcmtk_find_echo.pcap"):
        sample = SAMPLES / name
        out = tmp_path / f"{name}.pcapng"
        assert main(["analyze", str(sample), "--format", "json", "--output", str(tmp_path / "o.json"),
                     "--annotate", str(out)]) == 0
        operations = [row for row in analyze(str(sample)).rows("operations") if row["final_frame"]]
        wanted = {"C-MOVE"} if "move" in name else {"C-FIND", "C-ECHO"}
        assert {row["service"] for row in operations} >= wanted
        found, _, warnings = _tshark_comments(out)
        assert warnings == ""
        for row in operations:
            assert any(c.startswith(f"{row['service']} final status {row['status_hex']}")
                       for c in found[row["final_frame"]]), (row["service"], found.get(row["final_frame"]))
