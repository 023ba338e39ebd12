"""Issue 19, outputs: a folder someone else delivered (links planted where outputs go, an output
folder that is a link or someone else's, a capture whose name is not UTF-8 beside a good one)
cannot make the tool write anywhere but its output, and no output is left half written.

Each test builds the delivered folder in a temporary directory, runs the command as a user
runs it (a subprocess, in that folder), and compares every file outside the output with what
it was before.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import retrieve, write_conversation
from hostile_builders import Strings, capture_bytes

import trace_analyzer
from trace_analyzer.output_files import OutputError, open_output, write_folder
from trace_analyzer.tables import TABLES

CLI = [sys.executable, "-m", "trace_analyzer"]


def run(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and link under root: a link by where it points, a file by its content."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def delivered(tmp_path):
    """A home with files worth stealing, and a delivered folder with a capture in it."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".bashrc").write_text("# shell start-up\n")
    (home / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA mine\n")
    folder = tmp_path / "delivered"
    folder.mkdir()
    write_conversation(folder / "capture.pcap", retrieve(get_id=1, instances=2))
    return home, folder


def _outside(home: Path, folder: Path, output: str) -> dict[str, str]:
    files = snapshot(home)
    files.update({f"delivered/{k}": v for k, v in snapshot(folder).items() if not k.startswith(output)})
    return files


@pytest.mark.parametrize("fmt, output, planted", [
    ("csv", "trace-analyzer-csv", "trace-analyzer-csv/peers.csv"),
    ("parquet", "trace-analyzer-parquet", "trace-analyzer-parquet/peers/00000.parquet"),  # a dataset a table
    ("html", "trace-analyzer-report.html", "trace-analyzer-report.html"),
])
def test_planted_links_at_default_outputs_are_replaced_not_followed(delivered, fmt, output, planted):
    home, folder = delivered
    (folder / planted).parent.mkdir(parents=True, exist_ok=True)
    target = home / (".bashrc" if fmt != "html" else ".ssh/authorized_keys")
    (folder / planted).symlink_to(target)
    before = _outside(home, folder, output)
    result = run("analyze", "capture.pcap", "--format", fmt, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert _outside(home, folder, output) == before  # the home files are untouched
    written = folder / planted
    assert not written.is_symlink() and written.is_file() and written.stat().st_size > 0
    assert not list(folder.rglob(".*.tmp"))


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_planted_link_at_an_output_file_is_replaced(delivered, fmt):
    home, folder = delivered
    (folder / "out.txt").symlink_to(home / ".bashrc")
    before = snapshot(home)
    result = run("analyze", "capture.pcap", "--format", fmt, "--output", "out.txt", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert snapshot(home) == before
    assert not (folder / "out.txt").is_symlink() and "capture.pcap" in (folder / "out.txt").read_text()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_output_folder_that_is_a_link_is_refused(delivered, fmt):
    home, folder = delivered
    (folder / f"trace-analyzer-{fmt}").symlink_to(home / ".ssh", target_is_directory=True)
    before = snapshot(home)
    result = run("analyze", "capture.pcap", "--format", fmt, cwd=folder)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "symbolic link" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(home) == before


def test_an_output_folder_of_another_user_is_refused(delivered):
    home, folder = delivered
    other = folder / "trace-analyzer-csv"
    other.mkdir()
    os.chown(other, 54321, 54321)  # the tests run as root (scripts/setup.sh); chown must work
    result = run("analyze", "capture.pcap", "--format", "csv", cwd=folder)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "belongs to another user" in result.stderr, result.stderr
    assert list(other.iterdir()) == []


def test_a_table_that_cannot_be_written_leaves_the_folder_as_it_was(delivered):
    home, folder = delivered
    out = folder / "trace-analyzer-csv"
    out.mkdir()
    (out / "associations.csv").write_text("old\n")
    (out / "peers.csv").mkdir()  # in the way of one table
    before = snapshot(out)
    result = run("analyze", "capture.pcap", "--format", "csv", cwd=folder)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "peers.csv" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(out) == before  # nothing replaced, no temporary file left


def test_a_writer_that_fails_half_way_changes_nothing(tmp_path):
    (tmp_path / "a.csv").write_text("old a\n")

    def good(handle):
        handle.write("new\n")

    def broken(handle):
        handle.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_folder(str(tmp_path), {"a.csv": good, "b.csv": broken})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
    assert (tmp_path / "a.csv").read_text() == "old a\n"
    with pytest.raises(RuntimeError), open_output(str(tmp_path / "c.txt")) as handle:
        handle.write("half")
        raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
    with pytest.raises(OutputError):
        write_folder(str(tmp_path / "a.csv"), {"x": good})


def test_a_name_that_is_not_utf8_never_takes_the_good_capture_down(delivered):
    """Issue 19 point 4: ``cap\\xff.pcap`` beside a good capture, and an unreadable one:
    every writer succeeds, shows the name with backslashreplace, and reports the good one."""
    _home, folder = delivered
    odd = os.path.join(os.fsencode(folder), b"cap\xff.pcap")
    with open(odd, "wb") as handle:
        handle.write(capture_bytes(Strings()))
    broken = os.path.join(os.fsencode(folder), b"cut\xfe.pcap")
    with open(broken, "wb") as handle:
        handle.write(b"\xd4\xc3\xb2\xa1\x02\x00")
    args = [sys.executable, "-m", "trace_analyzer", "analyze", b"capture.pcap", b"cap\xff.pcap",
            b"cut\xfe.pcap"]
    for fmt in ("table", "csv", "html", "parquet", "json"):
        result = subprocess.run([*args, "--format", fmt, "--all"], capture_output=True, timeout=120,
                                cwd=folder)
        assert result.returncode == 2, (fmt, result.stderr)  # 2: one capture was unreadable
        assert b"Traceback" not in result.stderr and b"cut\\xfe.pcap" in result.stderr, (fmt, result.stderr)
        if fmt == "table":
            assert b"cap\\xff.pcap" in result.stdout and b"capture.pcap" in result.stdout
    with open(folder / "trace-analyzer-csv" / "captures.csv", newline="", encoding="utf-8") as handle:
        names = [row["capture"] for row in csv.DictReader(handle)]
    assert names == ["capture.pcap", "cap\\xff.pcap", "cut\\xfe.pcap"]
    assert sorted(p.name for p in (folder / "trace-analyzer-csv").iterdir()) == sorted(
        f"{name}.csv" for name in TABLES)
    report = (folder / "trace-analyzer-report.html").read_text(encoding="utf-8")
    assert "cap\\xff.pcap" in report and "capture.pcap" in report


def test_a_plot_that_fails_leaves_the_rest_of_the_report(delivered, monkeypatch):
    from trace_analyzer import plots
    from trace_analyzer.report import render_html

    _home, folder = delivered
    analysis = trace_analyzer.analyze(str(folder / "capture.pcap"))

    def broken(*args, **kwargs):
        raise RuntimeError("<b>font</b> trouble")

    monkeypatch.setattr(plots, "plot_statuses", broken)
    text = render_html(analysis)
    assert text.count('<img class="plot"') == 3
    assert "the plot could not be drawn (RuntimeError: &lt;b&gt;font&lt;/b&gt; trouble)" in text
    assert '<section id="operations">' in text and "GETSCU" in text
