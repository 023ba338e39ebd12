"""Rotated captures are one capture (issue 10): a real recorded exchange split with editcap at
every frame boundary (inside PDUs and inside data sets among them) gives the tables of the
unsplit capture, whatever the order the files are given in; a missing file is a reported
problem; unrelated files stay separate; directories and standard input are inputs."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

import trace_analyzer
from trace_analyzer.packets import Skip, decode_tcp

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
#: Real peers: DCMTK getscu <- dcmqrscp, 5 CT images; DCMTK writes a PDU's header and its
#: data apart, so many frame boundaries fall inside a PDU and inside a data set.
REAL = SAMPLES / "dcmtk_to_dcmtk_success.pcap"
OTHER_REAL = SAMPLES / "pynetdicom_scu_to_dcmtk_scp.pcap"
CLI = [sys.executable, "-m", "trace_analyzer"]


def _editcap(*args) -> None:
    editcap = shutil.which("editcap")
    assert editcap, "editcap (wireshark-common) must be installed: scripts/setup.sh"
    subprocess.run([editcap, *map(str, args)], check=True, capture_output=True, timeout=60)


def split(source: Path, folder: Path, every: int, fmt: str | None = None) -> list[Path]:
    """editcap -c EVERY: files of EVERY frames each, named as editcap names them."""
    folder.mkdir(parents=True, exist_ok=True)
    _editcap(*(["-F", fmt] if fmt else []), "-c", every, source, folder / "part.pcap")
    return sorted(folder.iterdir())


def normalised(analysis: trace_analyzer.Analysis) -> dict[str, list[dict]]:
    """The tables with frames numbered over the whole capture set and the file and set names
    left out: what must be the same however the capture was cut into files."""
    tables = analysis.to_dict()
    offsets = {c.capture: c.frame_offset for c in analysis.capture_summaries}
    out = {}
    for name, rows in tables.items():
        if name == "captures":
            continue
        fixed = []
        for row in rows:
            row = dict(row)
            offset = offsets.get(row.get("capture"), 0)
            for column in row:
                if (column == "frame" or column.endswith("_frame")) and row[column] is not None:
                    row[column] += offset
            row.pop("capture", None)
            row.pop("capture_set", None)
            fixed.append(row)
        out[name] = fixed
    return out


def capture_totals(analysis: trace_analyzer.Analysis) -> dict[str, int]:
    rows = analysis.rows("captures")
    return {key: sum(row[key] for row in rows)
            for key in ("frames", "bytes", "tcp_frames", "connections", "dicom_connections")}


def boundaries(path: Path) -> list[tuple[bool, bool]]:
    """For each frame: whether, right after it, some direction is inside a PDU, and inside a
    C-STORE data set (found here by walking the PDUs, independently of the analyser)."""
    from scapy.utils import RawPcapReader

    streams: dict[tuple[str, str], dict] = {}
    out = []
    reader = RawPcapReader(str(path))
    for data, _ in reader:
        try:
            segment = decode_tcp(reader.linktype, data)
        except Skip:
            segment = None
        if segment is not None and len(segment.payload):
            state = streams.setdefault((segment.src, segment.dst), {"buf": b"", "data_set": False})
            state["buf"] += bytes(segment.payload)
        in_pdu = in_data_set = False
        for state in streams.values():
            buf = state["buf"]
            while len(buf) >= 6 and len(buf) >= 6 + struct.unpack(">I", buf[2:6])[0]:
                length = struct.unpack(">I", buf[2:6])[0]
                if buf[0] == 4:  # P-DATA-TF: its PDVs say where data sets start and end
                    body, at = buf[6:6 + length], 0
                    while at + 6 <= len(body):
                        control = body[at + 5]
                        if not control & 1:
                            state["data_set"] = not control & 2
                        at += 4 + struct.unpack(">I", body[at:at + 4])[0]
                buf = buf[6 + length:]
            state["buf"] = buf
            in_pdu |= bool(buf)
            in_data_set |= state["data_set"] or (bool(buf) and buf[0] == 4)
        out.append((in_pdu, in_data_set))
    reader.close()
    return out


@pytest.fixture(scope="module")
def unsplit():
    return {path: trace_analyzer.analyze(str(path)) for path in (REAL, OTHER_REAL)}


def test_the_sample_has_boundaries_inside_pdus_and_data_sets():
    """Without this the split tests below would not exercise what they claim."""
    marks = boundaries(REAL)[:-1]
    assert sum(in_pdu for in_pdu, _ in marks) >= 10
    assert sum(in_data_set for _, in_data_set in marks) >= 10


@pytest.mark.parametrize("source", [REAL, OTHER_REAL], ids=lambda p: p.stem)
@pytest.mark.parametrize("every", [1, 2, 3, 7, 13, 29])
def test_split_at_every_frame_boundary_gives_the_unsplit_tables(source, every, unsplit, tmp_path):
    files = split(source, tmp_path, every)
    assert len(files) == -(-len(boundaries(source)) // every)
    random.Random(every).shuffle(files)  # the order given is not the order of the capture
    analysis = trace_analyzer.analyze([str(f) for f in files])
    whole = unsplit[source]
    assert len(analysis.capture_sets) == 1, analysis.capture_sets
    assert [c.capture for c in analysis.capture_summaries] == [str(f) for f in sorted(files)]
    assert normalised(analysis) == normalised(whole)
    assert capture_totals(analysis) == capture_totals(whole)
    operations = analysis.rows("operations")
    assert operations[0]["status_category"] == "Success"
    assert all(op["sub_operations"] == 5 and op["complete"] for op in operations)
    # Frames are numbered in their own file, which the capture column names.
    for row in analysis.rows("messages"):
        frames = next(c.frames for c in analysis.capture_summaries if c.capture == row["capture"])
        assert 1 <= row["frame"] <= frames


def test_two_way_split_inside_pdus_and_data_sets(unsplit, tmp_path):
    """editcap -r: the first k frames and the rest, given last part first, for every k where
    the cut falls inside a PDU (and so inside a data set), and every fifth k besides."""
    marks = boundaries(REAL)
    frames = len(marks)
    whole = normalised(unsplit[REAL])
    cuts = [k for k in range(1, frames) if marks[k - 1][0] or k % 5 == 0]
    assert sum(marks[k - 1][1] for k in cuts) >= 10
    for k in cuts:
        first, second = tmp_path / f"a{k}.pcap", tmp_path / f"b{k}.pcap"
        _editcap("-r", REAL, first, f"1-{k}")
        _editcap("-r", REAL, second, f"{k + 1}-{frames}")
        analysis = trace_analyzer.analyze([str(second), str(first)])
        assert len(analysis.capture_sets) == 1, k
        assert normalised(analysis) == whole, f"split after frame {k}"


def test_pcapng_parts_and_names_that_sort_against_time(unsplit, tmp_path):
    files = split(REAL, tmp_path / "ng", 9, "pcapng")
    renamed = []
    for index, path in enumerate(files):  # the last part gets the first name
        target = tmp_path / f"capture_{len(files) - index:02d}.pcapng"
        path.rename(target)
        renamed.append(target)
    analysis = trace_analyzer.analyze(str(tmp_path))
    assert [c.capture for c in analysis.capture_summaries] == [str(p) for p in renamed]
    assert normalised(analysis) == normalised(unsplit[REAL])


def test_a_missing_file_is_a_reported_gap(unsplit, tmp_path):
    files = split(REAL, tmp_path, 7)
    gone = files.pop(3)
    analysis = trace_analyzer.analyze([str(f) for f in files])
    assert len(analysis.capture_sets) == 1
    gaps = [p for p in analysis.rows("problems") if p["code"] == "CAPTURE-GAP"]
    assert gaps, analysis.rows("problems")
    assert all(g["capture"] == str(files[3]) and g["frame"] == 1 for g in gaps)
    assert str(files[2]) in gaps[0]["detail"] and "missing" in gaps[0]["detail"]
    assert str(gone) not in {c.capture for c in analysis.capture_summaries}
    # The TCP layer sees the hole too; nothing raised, and the C-GET is still one row.
    assert any(p["code"] == "CAPTURE-HOLE" for p in analysis.rows("problems"))
    assert len(analysis.rows("operations")) == 1


def test_unrelated_files_stay_separate(unsplit, tmp_path):
    parts = split(REAL, tmp_path / "parts", 11)
    copy = tmp_path / "copy.pcap"
    shutil.copyfile(REAL, copy)  # the same traffic again: overlapping in time, not a continuation
    analysis = trace_analyzer.analyze([*map(str, parts), str(OTHER_REAL), str(copy)])
    sets = analysis.capture_sets
    assert len(sets) == 3, sets
    by_set: dict[str, list[str]] = {}
    for c in analysis.capture_summaries:
        by_set.setdefault(c.capture_set, []).append(c.capture)
    assert sorted(map(len, by_set.values())) == [1, 1, len(parts)]
    assert len(analysis.rows("operations")) == 1 + 2 + 1
    assert {r["association"] for r in analysis.rows("associations")} == {1}  # numbered per set


def test_directory_with_captures_gz_and_other_files(unsplit, tmp_path):
    folder = tmp_path / "week"
    (folder / "monday" / "deep").mkdir(parents=True)
    shutil.copyfile(REAL, folder / "monday" / "a.pcap")
    (folder / "monday" / "deep" / "b.bin").write_bytes(gzip.compress(OTHER_REAL.read_bytes()))
    (folder / "notes.pcap").write_text("not a capture, whatever its name says\n")
    (folder / "README").write_text("hello\n")
    (folder / "junk.gz").write_bytes(gzip.compress(b"plain text, gzipped"))
    result = subprocess.run([*CLI, "analyze", str(folder), "--format", "json"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    skipped = sorted(line for line in result.stderr.splitlines())
    assert skipped == sorted(f"trace-analyzer: {folder / name}: skipped (not a pcap or pcapng capture)"
                             for name in ("README", "junk.gz", "notes.pcap"))
    data = json.loads(result.stdout)
    assert sorted(c["capture"] for c in data["captures"]) == sorted(
        [str(folder / "monday" / "a.pcap"), str(folder / "monday" / "deep" / "b.bin")])
    assert len(data["operations"]) == 1 + 2


def test_a_directory_without_captures_is_an_error(tmp_path):
    (tmp_path / "README").write_text("hello\n")
    result = subprocess.run([*CLI, "analyze", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"trace-analyzer: {tmp_path}: is a directory with no pcap or pcapng "
                                     "capture file in it")


def _unread(fd: int) -> int:
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return struct.unpack("i", buf)[0]


@pytest.mark.parametrize("compressed", [False, True], ids=["pcap", "gzip"])
def test_stdin_fed_slowly_is_read_as_it_arrives(compressed, unsplit):
    data = REAL.read_bytes()
    if compressed:
        data = gzip.compress(data)
    process = subprocess.Popen([*CLI, "analyze", "-", "--format", "json"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        half = len(data) // 2
        for at in range(0, half, 997):
            process.stdin.write(data[at:min(at + 997, half)])
            process.stdin.flush()
            time.sleep(0.002)
        # Before the end of the stream, the analyser has taken what was written.
        deadline = time.monotonic() + 30
        while _unread(process.stdin.fileno()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _unread(process.stdin.fileno()) == 0
        assert process.poll() is None  # and waits for more
        out, err = process.communicate(data[half:], timeout=60)  # the rest, then the end
    finally:
        process.kill()
    assert process.returncode == 0, err
    got = json.loads(out)
    assert got["captures"][0]["capture"] == "-" and got["captures"][0]["error"] is None
    expected = json.loads(unsplit[REAL].to_json())
    for name in expected:
        strip = [{k: v for k, v in row.items() if k not in ("capture", "capture_set")} for row in got[name]]
        assert strip == [{k: v for k, v in row.items() if k not in ("capture", "capture_set")}
                         for row in expected[name]], name


def test_stdin_memory_stays_bounded(tmp_path):
    """A 60 MB stream takes about the memory of a 6 MB one: nothing accumulates."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from make_capture import make

    peaks = {}
    for instances in (12, 120):
        path = tmp_path / f"bulk{instances}.pcap"
        make(str(path), instances, 500_000, 1448, 16384, 1)
        code = ("import resource, sys\nfrom trace_analyzer.cli import main\n"
                "code = main(['analyze', '-', '--format', 'json', '--output', sys.argv[1]])\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)\n")
        with open(path, "rb") as stream:
            result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.json")], stdin=stream,
                                    capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        peaks[instances] = int(result.stdout.split()[-1]) / 1024  # MiB
        data = json.loads((tmp_path / "out.json").read_text())
        assert data["operations"][0]["sub_operations"] == instances
    print("peak RSS MiB", peaks)
    assert peaks[120] - peaks[12] < 25, peaks


@pytest.mark.parametrize("name", ["dcmtk_to_dcmtk_success.pcap", "pynetdicom_success.pcapng",
                                  "retrieve.pcap.gz"])
@pytest.mark.parametrize("count", [1, 7, 1000])
def test_sample_gives_the_first_and_last_records(name, count):
    """capture.sample walks a plain pcap by its record headers alone: the same records as a
    read through, at both ends."""
    from trace_analyzer.capture import iter_records, sample

    path = str(SAMPLES / name)
    records = [(time, linktype, bytes(data)) for _, time, linktype, data, _ in iter_records(path)]
    frames, head, tail = sample(path, count)
    assert frames == len(records)
    assert [(t, lt, bytes(d)) for t, lt, d in head] == records[:count]
    assert [(t, lt, bytes(d)) for t, lt, d in tail] == records[-count:]


def test_check_and_plots_follow_a_c_get_across_files(unsplit, tmp_path):
    """Findings of a stitched set reach their peers' verdicts in `check`, and the progress plot
    of a C-GET that spans files draws every one of its responses."""
    import matplotlib

    matplotlib.use("Agg")
    from trace_analyzer import plots

    fault = SAMPLES / "fault_remaining_rises.pcap"
    files = split(fault, tmp_path / "fault", 5)
    whole = _cli_lines("check", fault)
    parts = _cli_lines("check", *files)
    assert any("NON-CONFORMANT" in line for line in whole)
    # Verdicts and rules are the same; only frame numbers are counted per file.
    assert [line.split(" - ")[0] for line in parts if not line.startswith("      ")] == [
        line.split(" - ")[0] for line in whole if not line.startswith("      ")]

    files = split(REAL, tmp_path / "real", 4)
    stitched = trace_analyzer.analyze([str(f) for f in files])
    progress = stitched.rows("progress")
    assert len({row["capture"] for row in progress}) > 1  # the responses are in several files
    for analysis in (stitched, unsplit[REAL]):
        ax = plots.plot_progress(analysis)
        [markers] = [line for line in ax.get_lines() if line.get_marker() == "o"]
        assert len(markers.get_xdata()) == len(progress)


def _cli_lines(*args) -> list[str]:
    result = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.splitlines()


def test_real_bulk_retrieve_rotated_by_tcpdump_and_editcap(tmp_path):
    """Real pynetdicom peers move four 1 MiB images over loopback (recorded with tcpdump); the
    capture rotated by tcpdump itself (-C 1: a new file every megabyte, so cuts fall inside
    data sets, where the fast lane counts) and by editcap gives the unsplit tables."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_lane import _record_real_bulk

    tmp_path.chmod(0o755)
    whole = tmp_path / "bulk.pcap"
    seen = _record_real_bulk(whole, 1448)
    assert seen["statuses"][-1] == 0x0000 and len(seen["stored"]) == 4, seen
    reference = trace_analyzer.analyze(str(whole))
    tcpdump = shutil.which("tcpdump")
    assert tcpdump, "tcpdump must be installed: scripts/setup.sh"
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    # As root, tcpdump would drop to its own user, who may not enter pytest's folders: -Z root.
    keep = ["-Z", "root"] if os.geteuid() == 0 else []
    result = subprocess.run([tcpdump, "-r", str(whole), "-C", "1", *keep, "-w", str(rotated / "pacs.pcap")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    files = sorted(rotated.iterdir())
    assert len(files) >= 4, files  # pacs.pcap, pacs.pcap1, ...: names that sort against time, too
    edited = split(whole, tmp_path / "edited", 997)
    for parts in (files, edited):
        analysis = trace_analyzer.analyze([str(p) for p in reversed(parts)])
        assert len(analysis.capture_sets) == 1
        assert normalised(analysis) == normalised(reference)
        [operation] = analysis.rows("operations")
        assert operation["completed"] == 4 and operation["status_hex"] == "0x0000"


def test_live_tcpdump_piped_into_analyze(tmp_path, monkeypatch):
    """The issue's own command: tcpdump -i lo -U -w - 'tcp port P' | trace-analyzer analyze -,
    while real pynetdicom peers move four 1 MiB images; the analysis ends when tcpdump stops."""
    import contextlib
    import threading

    sys.path.insert(0, str(ROOT / "tests"))
    import test_tshark_differential as differential
    from test_lane import _record_real_bulk

    out = tmp_path / "live.json"
    errors: list[str] = []

    @contextlib.contextmanager
    def piped(path, port, buffer_kib=None):
        dump = [differential._tcpdump_path(), "-i", "lo", "--immediate-mode", "-U", "-n",
                "-B", str(buffer_kib or 65536), "-w", "-", f"tcp port {port}"]
        capture = subprocess.Popen(dump, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        analyser = subprocess.Popen([*CLI, "analyze", "-", "--format", "json", "--output", str(out)],
                                    stdin=capture.stdout, stderr=subprocess.PIPE, text=True)
        capture.stdout.close()  # the analyser's now
        ready = threading.Event()

        def read() -> None:
            for raw in iter(capture.stderr.readline, b""):
                if b"listening on" in raw:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            assert ready.wait(differential.FRESH_TIMEOUT) and capture.poll() is None, "tcpdump did not start"
            time.sleep(0.2)
            yield []
            time.sleep(0.3)
        finally:
            differential._stop(capture)
            try:
                _, err = analyser.communicate(timeout=60)
                errors.append(err)
            finally:
                differential._stop(analyser)

    monkeypatch.setattr(differential, "_tcpdump", piped)
    seen = _record_real_bulk(tmp_path / "unused.pcap", 1448)
    assert seen["statuses"][-1] == 0x0000 and len(seen["stored"]) == 4, seen
    data = json.loads(out.read_text())
    assert data["captures"][0]["capture"] == "-" and data["captures"][0]["error"] is None, errors
    [operation] = data["operations"]
    assert operation["completed"] == 4 and operation["status_hex"] == "0x0000"
    assert sorted(row["dataset_bytes"] for row in data["sub_operations"]) == sorted(seen["stored"])


def test_a_file_cut_short_inside_a_set(unsplit, tmp_path):
    """A middle file cut short: its truncation is reported in it, at the cut record's frame;
    the next file's gap and hole in that one; the rest of the set is still analysed."""
    files = split(REAL, tmp_path, 9)
    cut = files[2]
    with open(cut, "r+b") as handle:
        handle.truncate(cut.stat().st_size - 700)
    analysis = trace_analyzer.analyze([str(f) for f in files])
    assert len(analysis.capture_sets) == 1 and not analysis.errors
    captures = {row["capture"]: row for row in analysis.rows("captures")}
    problems = analysis.rows("problems")
    [truncated] = [p for p in problems if p["code"] == "CAPTURE-TRUNCATED"]
    assert truncated["capture"] == str(cut) and truncated["frame"] == captures[str(cut)]["frames"] + 1
    assert all(p["capture"] == str(files[3]) for p in problems if p["code"] == "CAPTURE-GAP")
    # frame_offset counts the set's frames before each file, the cut record's among them.
    following = captures[str(files[3])]
    assert following["frame_offset"] == captures[str(cut)]["frame_offset"] + captures[str(cut)]["frames"] + 1
    [operation] = analysis.rows("operations")
    assert operation["status_category"] == "Success"
