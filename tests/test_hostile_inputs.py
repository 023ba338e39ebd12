"""The six hostile inputs of issue 15, and a capture that shrinks while it is read.

Each capture is built by tests/hostile_inputs.py (no committed blobs) and analysed by the command
line in a subprocess, whose wall time and peak RSS (from wait4) are asserted loosely: under 10 s
and 300 MB. What each must give is asserted from the outputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import hostile_inputs
import pytest

import trace_analyzer
from trace_analyzer.limits import DEFAULT, Limits
from trace_analyzer.tables import COLUMNS, TABLES

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


#: Runs the command and reports its exit status, time and peak RSS. A small fresh interpreter
#: starts it: a child forked from the test process would begin as a copy of it, and that copy's
#: size would count in the child's peak RSS.
_MEASURE = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = child.stderr.read()
_, status, usage = os.wait4(child.pid, 0)
elapsed = time.perf_counter() - start
sys.stderr.buffer.write(err)
print(os.waitstatus_to_exitcode(status), elapsed, usage.ru_maxrss)
"""


def measured(*args: str, seconds: float = 10.0, rss_mb: float = 300.0) -> tuple[int, str, float, float]:
    """``trace-analyzer ARGS`` in a fresh interpreter: exit status, stderr, seconds and peak RSS
    (of that process alone); no traceback, the time and peak RSS under the bounds."""
    result = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "trace_analyzer", *args],
                            cwd=ROOT, capture_output=True, timeout=120)
    status, elapsed, peak = result.stdout.split()
    status, elapsed, peak = int(status), float(elapsed), int(peak) / 1024
    text = result.stderr.decode(errors="replace")
    assert "Traceback" not in text, text
    assert elapsed < seconds, f"{args}: {elapsed:.1f} s"
    assert peak < rss_mb, f"{args}: peak RSS {peak:.0f} MB"
    return status, text, elapsed, peak


def _json(tmp_path: Path, capture: bytes, name: str, *flags: str) -> dict:
    path = tmp_path / f"{name}.pcap"
    path.write_bytes(capture)
    output = tmp_path / f"{name}.json"
    status, stderr, _, _ = measured("analyze", str(path), "--format", "json", "--output", str(output),
                                    *flags)
    assert status == 0, stderr
    return json.loads(output.read_text())


def _typed(tables: dict) -> None:
    """Every cell has its column's type (JSON: int, float, str, bool or null)."""
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool}
    for name, rows in tables.items():
        for row in rows:
            for column, value in row.items():
                if value is not None and column in COLUMNS[name]:
                    kind = COLUMNS[name][column]
                    assert isinstance(value, kinds[kind]), (name, column, value)
                    assert kind != "int" or not isinstance(value, bool), (name, column, value)


@pytest.mark.parametrize("length", [0, 4, 5])
def test_message_id_being_responded_to_of_the_wrong_length(length, tmp_path):
    capture = hostile_inputs.bad_message_id_length(length)
    tables = _json(tmp_path, capture, f"id{length}")
    _typed(tables)
    problems = [p["detail"] for p in tables["problems"] if p["code"] == "DECODE-COMMAND"]
    assert any("(0000,0120)" in detail for detail in problems), problems
    # The response is the one outstanding C-GET's, its raw value shown in hex, never used as an ID.
    [operation] = tables["operations"]
    assert operation["message_id"] == 1 and operation["linking"] == "misnumbered"
    raw = bytes([1, 0, 0, 0, 0][:length]).hex()
    assert f"Message ID 0x{raw};" in operation["linking_detail"], operation["linking_detail"]
    assert all(v["message_id"] in (None, 1) for v in tables["violations"])
    [abort] = [v for v in tables["violations"] if v["rule"] == "UL-037"]
    assert "C-GET 1 " in abort["detail"] and "b'" not in abort["detail"]
    parquet = tmp_path / f"id{length}.parquet"
    status, stderr, _, _ = measured("analyze", str(tmp_path / f"id{length}.pcap"), "--format", "parquet",
                                    "--output", str(parquet))
    assert status == 0, stderr
    assert (parquet / "operations").is_dir()


def test_deflate_bomb(tmp_path):
    capture = hostile_inputs.deflate_bomb(90 * MB)
    assert len(capture) < 200_000
    tables = _json(tmp_path, capture, "bomb")
    _typed(tables)
    codes = Counter(p["code"] for p in tables["problems"])
    assert codes["LIMIT-INFLATED"] == 1 and codes["LIMIT-CELL"] == 1, codes
    [inflated] = [p["detail"] for p in tables["problems"] if p["code"] == "LIMIT-INFLATED"]
    assert f"only the first {DEFAULT.inflated_bytes}" in inflated and "inflated-bytes" in inflated
    [operation] = tables["operations"]
    cell = operation["identifier"]
    assert len(cell) < DEFAULT.cell_chars + 100 and "[cut: " in cell and "sha256 " in cell
    assert (tmp_path / "bomb.json").stat().st_size < 2 * MB
    # Lower limits, by flag: the identifier is inflated less and shown shorter.
    tables = _json(tmp_path, capture, "bomb-small", "--limit", "inflated-bytes=64K",
                   "--limit", "cell-chars=200")
    [operation] = tables["operations"]
    assert len(operation["identifier"]) < 300
    [inflated] = [p["detail"] for p in tables["problems"] if p["code"] == "LIMIT-INFLATED"]
    assert "only the first 65536" in inflated


def test_flood_of_empty_command_pdvs(tmp_path):
    count = 30_000
    capture = hostile_inputs.empty_command_flood(count)
    tables = _json(tmp_path, capture, "empty")
    _typed(tables)
    limit = DEFAULT.empty_messages
    assert len(tables["messages"]) == limit
    [association] = tables["associations"]
    assert association["messages"] == count, "every message is counted"
    [note] = [p["detail"] for p in tables["problems"] if p["code"] == "LIMIT-MESSAGES"]
    assert f"more than {limit} messages without a Command Field" in note
    # The rules judged the kept ones; with fewer findings allowed per rule, the rest are summarised.
    tables = _json(tmp_path, capture, "empty-small", "--limit", "empty-messages=3000",
                   "--limit", "problems-per-code=100")
    assert len(tables["messages"]) == 3000
    per_rule = Counter(v["rule"] for v in tables["violations"])
    assert per_rule["CMD-004"] == 101, per_rule
    summaries = [v["detail"] for v in tables["violations"] if "not listed one by one" in v["detail"]]
    more = "2900 more finding(s) of CMD-004 in this association"
    assert any(summary.startswith(more) for summary in summaries), summaries


def test_flood_of_data_pdvs_without_a_command(tmp_path):
    count = 50_000
    capture = hostile_inputs.orphan_data_flood(count, reserved=True)
    tables = _json(tmp_path, capture, "orphans", "--limit", "problems-per-code=50")
    _typed(tables)
    codes = Counter(p["code"] for p in tables["problems"])
    # One UL-029 (reserved bits) a PDV: 50 listed, the rest in one summarising row.
    assert codes["UL-029"] == 50 and codes["LIMIT-PROBLEMS"] >= 1, codes
    [summary] = [p["detail"] for p in tables["problems"]
                 if p["code"] == "LIMIT-PROBLEMS" and " UL-029 " in p["detail"]]
    assert summary.startswith(f"{count - 50} more UL-029 problem(s) in association 1"), summary
    assert len(tables["problems"]) < 200


def test_fast_lane_takes_the_largest_time(tmp_path):
    """One record of a C-STORE data set stamped an hour later (or earlier), anywhere in it: the
    same tables with and without the lane; where that record ends a PDU, the association ends then."""
    later = 0
    path = tmp_path / "backwards.pcap"
    for jump in (3600.0, -3600.0):
        for where in [i / 16 for i in range(16)]:
            path.write_bytes(hostile_inputs.backwards_time(jump, where))
            with_lane = trace_analyzer.analyze(str(path))
            without = trace_analyzer.analyze(str(path), fast_lane=False)
            for name in TABLES:
                assert with_lane.rows(name) == without.rows(name), (jump, where, name)
            [row] = with_lane.rows("associations")
            later += row["end_time"] > 1_700_003_000
    assert later, "some stamped record ended a PDU"
    analyzer = trace_analyzer.analysis.analyze_capture(str(path))
    assert analyzer.lane_records > 100, "the lane took the data set's records"


def test_mathtext_in_wire_text(tmp_path):
    """AE titles and error comments reach matplotlib as plain text: the report is written and every
    plot function draws (a notebook calls them directly)."""
    path = tmp_path / "$x_{1}$.pcap"  # the file name is shown in titles too
    path.write_bytes(hostile_inputs.mathtext_strings())
    report = tmp_path / "report.html"
    status, stderr, _, _ = measured("analyze", str(path), "--format", "html", "--output", str(report))
    assert status == 0, stderr
    assert report.stat().st_size > 10_000
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from trace_analyzer import plots

    analysis = trace_analyzer.analyze([str(path), str(path)])  # two captures: titles name the files
    for name in ("plot_progress", "plot_all_progress", "plot_statuses", "plot_findings", "plot_latency",
                 "plot_throughput", "plot_timing"):
        kwargs = {"capture": str(path)} if name == "plot_progress" else {}
        drawn = getattr(plots, name)(analysis, **kwargs)
        figure = getattr(drawn, "figure", drawn)
        figure.savefig(tmp_path / f"{name}.png")
        texts = [t for t in figure.findobj(Text) if t.get_text()]
        for text in texts:
            shown, math = text._preprocess_math(text.get_text())
            assert not math, (name, text.get_text())
        if name == "plot_statuses":
            # The acceptor's AE title, as sent, in the legend.
            assert any(r"$\sqrt{x$" in t._preprocess_math(t.get_text())[0] for t in texts), name
        plt.close(figure)


def test_capture_truncated_while_analyze_reads_it(tmp_path):
    """A capture ring overwrites the file being read: the analysis says so, keeps what it decoded,
    and the process is not killed by SIGBUS (run in a subprocess, so a signal shows as such)."""
    path = tmp_path / "ring.pcap"
    path.write_bytes(hostile_inputs.large_retrieve(400, 64 * 1024))
    size = path.stat().st_size
    assert size > 25 * MB
    script = f"""
import os, sys, json
import trace_analyzer
path = {str(path)!r}
read = [0]
def progress(count):
    read[0] += count
    if read[0] > 4_000_000 and os.path.getsize(path) > 3_000_000:
        os.truncate(path, 3_000_000)  # the ring starts the file again
analysis = trace_analyzer.analyze(path, on_progress=progress)
print(json.dumps({{"problems": analysis.rows("problems"), "captures": analysis.rows("captures"),
                  "sub_operations": len(analysis.rows("sub_operations"))}}))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=120)
    assert result.returncode == 0, (result.returncode, result.stderr.decode()[-2000:])
    out = json.loads(result.stdout)
    changed = [p["detail"] for p in out["problems"] if "changed while being read" in p["detail"]]
    assert len(changed) == 1, out["problems"]
    assert f"{size} bytes when opened, 3000000 when read" in changed[0]
    [capture] = out["captures"]
    assert 0 < capture["bytes"] < 4_500_000 + 200_000, capture
    assert out["sub_operations"] >= 40, "the sub-operations decoded before the cut are kept"


def test_limits_parse_and_reject():
    from trace_analyzer.limits import load_limits, parse_limit_flags, parse_limits
    from trace_analyzer.rules import ConfigError

    assert parse_limits({"cell-chars": 10, "inflated_bytes": "2M"}) == Limits(
        inflated_bytes=2 * MB, cell_chars=10, problems_per_code=DEFAULT.problems_per_code,
        empty_messages=DEFAULT.empty_messages)
    assert parse_limit_flags(["problems-per-code=7"]).problems_per_code == 7
    for bad in ({"cells": 1}, {"cell-chars": 0}, {"cell-chars": "many"}, {"cell-chars": True},
                {"empty-messages": 1.5}, {"cell-chars": "2M"}):
        with pytest.raises(ConfigError):
            parse_limits(bad)
    with pytest.raises(ConfigError):
        parse_limit_flags(["cell-chars"])
    with pytest.raises(ConfigError):
        load_limits("/nonexistent/trace-analyzer.toml")


def test_limits_from_the_config_file(tmp_path):
    from trace_analyzer.limits import load_limits

    config = tmp_path / "trace-analyzer.toml"
    config.write_text('[rules]\n"GET-RSP-008" = "warning"\n\n[limits]\ncell-chars = 123\n'
                      'problems-per-code = "10"\n')
    assert load_limits(str(config)) == Limits(cell_chars=123, problems_per_code=10)
    config.write_text("[limits]\nbytes = 1\n")
    capture = tmp_path / "c.pcap"
    capture.write_bytes(hostile_inputs.mathtext_strings())
    status, stderr, _, _ = measured("check", str(capture), "--config", str(config))
    assert status == 2 and "unknown limit 'bytes'" in stderr
    assert len(stderr.strip().splitlines()) == 1
