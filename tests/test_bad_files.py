"""Files that are not usable captures: one line on stderr each, exit 2, the other files still reported.

Cases: missing, a directory, unreadable, empty, not a capture, a capture whose
header is cut short (pcap, pcapng, gzip), a FIFO. Each is given to ``analyze``
and ``check`` together with a good capture, which must still be analysed.

Unreadable: the tests usually run as root, and root reads a file of mode 000
anyway, so as root the call runs in a forked child that has dropped to
uid/gid 65534 (nobody) before reading anything; as any other user the file is
simply made mode 000.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import trace_analyzer.report  # noqa: F401 - imported before a fork drops privileges
import trace_analyzer.tables  # noqa: F401
from trace_analyzer import cli

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"
GOOD = "pynetdicom_cancel.pcap"  # one C-GET, Message ID 11, cancelled


@pytest.fixture
def folder():
    """A folder anyone may enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ta-bad-files-"))
    path.chmod(0o755)
    good = path / GOOD
    shutil.copyfile(SAMPLES / GOOD, good)
    good.chmod(0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _make(folder: Path, case: str) -> tuple[Path, str]:
    """Create the bad file of ``case``; return it and a word its error line must contain."""
    good = (SAMPLES / GOOD).read_bytes()
    if case == "missing":
        return folder / "nosuch.pcap", "no such file"
    if case == "directory":
        path = folder / "adir.pcap"
        path.mkdir()
        return path, "directory"
    if case == "empty":
        path = folder / "empty.pcap"
        path.write_bytes(b"")
        return path, "empty"
    if case == "not a capture":
        path = folder / "notes.pcap"
        path.write_text("Patient list, not a capture\n" * 20)
        return path, "not a pcap or pcapng capture"
    if case == "pcap header cut":
        path = folder / "cut.pcap"
        path.write_bytes(good[:10])
        return path, "truncated"
    if case == "pcapng header cut":
        path = folder / "cut.pcapng"
        path.write_bytes((SAMPLES / "pynetdicom_success.pcapng").read_bytes()[:20])
        return path, "truncated"
    if case == "gzip header cut":
        path = folder / "cut.pcap.gz"
        path.write_bytes(gzip.compress(good[:10]))
        return path, "truncated"
    if case == "fifo":
        path = folder / "pipe.pcap"
        os.mkfifo(path)
        return path, ""  # what a FIFO is called is up to the reader; it must not hang
    raise AssertionError(case)


CASES = ["missing", "directory", "empty", "not a capture", "pcap header cut", "pcapng header cut",
         "gzip header cut", "fifo"]


def _check_output(code: int, out: str, err: str, bad: Path, word: str, command: str, good: Path) -> None:
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, f"one line on stderr, got {lines}"
    assert str(bad) in lines[0] and word in lines[0], lines[0]
    if command == "analyze":
        assert good.name in out and "C-GET" in out, "the good capture is still reported"
    else:
        assert "@" in out and "No DICOM association found" not in out, "the good capture's peers are judged"


@pytest.mark.parametrize("command", ["analyze", "check"])
@pytest.mark.parametrize("case", CASES)
def test_bad_file_with_a_good_one(case, command, folder, capsys):
    bad, word = _make(folder, case)
    good = folder / GOOD
    for order in ([bad, good], [good, bad]):
        code = cli.main([command, *map(str, order)])
        out, err = capsys.readouterr()
        _check_output(code, out, err, bad, word, command, good)


@pytest.mark.parametrize("case", CASES)
def test_bad_file_json_still_holds_the_good_capture(case, folder, capsys):
    bad, _ = _make(folder, case)
    code = cli.main(["analyze", "--format", "json", str(bad), str(folder / GOOD)])
    out, err = capsys.readouterr()
    assert code == 2 and len(err.splitlines()) == 1
    data = json.loads(out)
    assert [row["message_id"] for row in data["operations"]] == [11]
    errors = {row["capture"]: row["error"] for row in data["captures"]}
    assert errors[str(folder / GOOD)] is None and errors[str(bad)]


def _run_as_nobody(argv: list[str], out_path: Path, err_path: Path) -> int:
    """cli.main(argv) in a forked child running as uid/gid 65534; its exit code."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 99
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = os.fdopen(1, "w", closefd=False)
                sys.stderr = os.fdopen(2, "w", closefd=False)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                code = cli.main(argv)
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("command", ["analyze", "check"])
def test_unreadable_file(command, folder, capsys):
    bad = folder / "secret.pcap"
    shutil.copyfile(SAMPLES / GOOD, bad)
    bad.chmod(0o000)
    good = folder / GOOD
    argv = [command, str(bad), str(good)]
    if os.geteuid() == 0:
        code = _run_as_nobody(argv, folder / "out.txt", folder / "err.txt")
        out = (folder / "out.txt").read_text()
        err = (folder / "err.txt").read_text()
    else:
        code = cli.main(argv)
        out, err = capsys.readouterr()
    _check_output(code, out, err, bad, "permission denied", command, good)


def test_several_bad_files_one_line_each_from_the_shell(folder):
    """The real entry point: one stderr line per bad file, in order, and the good capture reported."""
    cases = ["missing", "directory", "empty", "not a capture", "pcap header cut", "gzip header cut"]
    bad = [_make(folder, case)[0] for case in cases]
    good = folder / GOOD
    result = subprocess.run([sys.executable, "-m", "trace_analyzer.cli", "analyze",
                             *map(str, bad[:3]), str(good), *map(str, bad[3:])],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == len(bad), lines
    for path, line in zip(bad, lines, strict=True):
        assert line.startswith(f"trace-analyzer: {path}: "), line
    assert good.name in result.stdout and "Cancel" in result.stdout
