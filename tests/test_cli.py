"""The command line, run as a user runs it: a subprocess of the installed entry point."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import message, release_rp, release_rq, retrieve, write_conversation

CLI = [sys.executable, "-m", "trace_analyzer"]  # the same entry as the installed command


def run(*args, cwd=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "retrieve.pcap"
    write_conversation(path, retrieve(get_id=3, instances=2))
    return path


def test_entry_point_is_installed():
    # Beside the interpreter running the tests (the venv's bin/), whether or not it is on PATH.
    script = Path(sys.executable).parent / "trace-analyzer"
    assert script.is_file(), f"pip install -e . installs trace-analyzer beside {sys.executable}"
    result = subprocess.run([str(script), "analyze", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--format" in result.stdout


def test_table_output(capture):
    result = run("analyze", capture)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("Associations (1)", "C-GET operations (1)", "C-GET responses (progress) (3)",
                  "C-STORE sub-operations (2)"):
        assert title in out
    assert "GETSCU" in out and "0x0000" in out and "Success" in out
    assert result.stderr == ""


def test_json_to_stdout_and_file(capture, tmp_path):
    result = run("analyze", capture, "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["operations"][0]["message_id"] == 3
    assert data["operations"][0]["final_status"] == 0
    assert data["operations"][0]["remaining"] is None
    target = tmp_path / "out.json"
    result = run("analyze", capture, "--format", "json", "--output", target)
    assert result.returncode == 0 and result.stdout == ""
    assert json.loads(target.read_text()) == data


def test_csv_folder(capture, tmp_path):
    folder = tmp_path / "tables"
    result = run("analyze", capture, "--format", "csv", "--output", folder)
    assert result.returncode == 0, result.stderr
    with open(folder / "sub_operations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["affected_sop_instance_uid"] for row in rows] == ["1.2.3.4.1", "1.2.3.4.2"]
    assert (folder / "associations.csv").exists() and (folder / "problems.csv").exists()


def test_forced_port(tmp_path):
    # Mid-stream, with no command set at all (the tail of a data set, then a release):
    # detection rightly declines it, --port must decode it.
    path = tmp_path / "forced.pcap"
    data_pdu = message(3, b"", bytes(600))[6 + 6 + 0:]  # a P-DATA-TF whose data PDV is cut at its start
    exchanges = [("s", data_pdu[40:]), ("s", message(3, b"", bytes(100))),
                 ("c", release_rq()), ("s", release_rp())]
    write_conversation(path, exchanges, server=("127.0.0.2", 7777), handshake=False)
    plain = json.loads(run("analyze", path, "--format", "json").stdout)
    assert plain["associations"] == []
    result = run("analyze", path, "--port", "7777", "--format", "json")
    assert result.returncode == 0
    [association] = json.loads(result.stdout)["associations"]
    assert association["outcome"] == "released" and association["mid_stream"] is True


@pytest.mark.parametrize("args,fragment", [
    (("analyze",), "CAPTURE"),
    (("analyze", "x.pcap", "--format", "xml"), "invalid choice"),
    (("analyze", "x.pcap", "--port", "abc"), "a TCP port is 1 to 65535, not 'abc'"),
    (("analyze", "x.pcap", "--port", "70000"), "a TCP port is 1 to 65535, not '70000'"),
    (("check", "x.pcap", "--port", "0"), "a TCP port is 1 to 65535, not '0'"),
    (("check", "x.pcap", "--port=-1"), "a TCP port is 1 to 65535, not '-1'"),
    (("frobnicate",), "invalid choice"),
])
def test_unusable_arguments_exit_2_with_one_line(args, fragment):
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr


def test_unreadable_inputs_exit_2_and_the_rest_is_reported(capture, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    result = run("analyze", text, capture, empty, tmp_path / "nope.pcap", tmp_path, "--format", "json")
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 4 and "Traceback" not in result.stderr
    for name, words in (("notes.txt", "not a pcap"), ("empty.pcap", "empty"), ("nope.pcap", "no such file"),
                        (str(tmp_path), "directory")):
        assert any(name in line and words in line for line in errors), (name, errors)
    assert json.loads(result.stdout)["operations"][0]["message_id"] == 3
