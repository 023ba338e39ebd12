"""Capture sets analysed in parallel (issue 10): on local processes (--workers) and on a real
dask.distributed cluster (a LocalCluster, scheduler and two workers on loopback, through
--scheduler); the tables equal the serial run's, byte for byte. Parquet output is a dataset
per table, one file per capture set, that pandas, pyarrow and Dask read back. The progress
bar is drawn on a terminal only, and never with --quiet."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import trace_analyzer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
CLI = [sys.executable, "-m", "trace_analyzer"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The sample captures (a directory) and one real exchange cut into rotated files."""
    folder = tmp_path_factory.mktemp("rotated")
    editcap = shutil.which("editcap")
    assert editcap, "editcap (wireshark-common) must be installed: scripts/setup.sh"
    subprocess.run([editcap, "-c", "8", SAMPLES / "dcmtk_to_dcmtk_success.pcap", folder / "part.pcap"],
                   check=True, timeout=60)
    return [str(SAMPLES), str(folder)]


def _cli(*args, **options):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=180, **options)


@pytest.fixture(scope="module")
def serial(inputs):
    result = _cli("analyze", *inputs, "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len({row["capture_set"] for row in data["captures"]}) >= 30  # many independent sets
    return result.stdout


def test_workers_give_the_serial_tables(inputs, serial):
    result = _cli("analyze", *inputs, "--format", "json", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == serial


def test_python_api_workers(inputs, serial):
    analysis = trace_analyzer.analyze(inputs, workers=2)
    assert json.loads(analysis.to_json()) == json.loads(serial)


def test_dask_local_cluster_gives_the_serial_tables(inputs, serial):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        result = _cli("analyze", *inputs, "--format", "json", "--scheduler", address)
        assert result.returncode == 0, result.stderr
        assert result.stdout == serial
        with Client(address) as client:
            # A distributed.Client given to the API is used as it is (and left open).
            analysis = trace_analyzer.analyze(inputs, scheduler=client)
            assert json.loads(analysis.to_json()) == json.loads(serial)
            assert len(client.scheduler_info()["workers"]) == 2


def test_unreachable_scheduler_is_one_line(inputs):
    result = _cli("analyze", SAMPLES / "pynetdicom_cancel.pcap", "--scheduler", "tcp://127.0.0.1:9",
                  env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "tcp://127.0.0.1:9" in result.stderr


def test_parquet_dataset_partitioned_by_capture_set(inputs, tmp_path):
    import pandas
    import pyarrow.dataset

    folder = tmp_path / "out"
    result = _cli("analyze", *inputs, "--format", "parquet", "--output", folder, "--workers", "2")
    assert result.returncode == 0, result.stderr
    analysis = trace_analyzer.analyze(inputs)
    sets = analysis.capture_sets
    for name in ("operations", "sub_operations", "messages", "captures", "peers", "problems"):
        expected = analysis.table(name)
        parts = sorted((folder / name).glob("*.parquet"))
        if "capture_set" in expected.columns and len(expected):
            # one file per capture set with rows, in the order the sets were analysed
            assert len(parts) == expected["capture_set"].nunique()
            assert [pandas.read_parquet(p)["capture_set"].unique().tolist() for p in parts] == [
                [s] for s in sets if s in set(expected["capture_set"])]
        else:
            assert len(parts) == 1
        back = pandas.read_parquet(folder / name)
        pandas.testing.assert_frame_equal(back, expected, check_dtype=True)
        table = pyarrow.dataset.dataset(folder / name, format="parquet").to_table()
        assert table.num_rows == len(expected)
    import dask.dataframe

    frame = dask.dataframe.read_parquet(str(folder / "operations")).compute()
    assert sorted(frame["capture_set"]) == sorted(analysis.table("operations")["capture_set"])


def _on_a_terminal(*args) -> str:
    """Run the command with standard error on a pseudo-terminal; what it wrote there."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 x 24
    try:
        process = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.DEVNULL, stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=120) == 0
    finally:
        os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only(inputs):
    drawn = _on_a_terminal("analyze", *inputs, "--format", "json")
    assert "files" in drawn and "C-GETs" in drawn and "B/s" in drawn, drawn
    files = len(trace_analyzer.analyze(inputs).captures)
    assert f"files {files}/{files}" in drawn, drawn
    # One capture set of rotated files: the count moves file by file, not only at the set's end.
    rotated = sorted(Path(inputs[1]).iterdir())
    drawn = _on_a_terminal("analyze", inputs[1], "--format", "json")
    assert all(f"files {k}/{len(rotated)}" in drawn for k in range(1, len(rotated) + 1)), drawn
    assert "C-GETs 1" in drawn
    quiet = _on_a_terminal("analyze", *inputs, "--format", "json", "--quiet")
    assert "B/s" not in quiet and "C-GETs" not in quiet and "skipped" in quiet  # the messages stay
    result = _cli("analyze", *inputs, "--format", "json")  # standard error a pipe: no bar
    assert result.stderr.count("skipped") == result.stderr.count("\n") and "B/s" not in result.stderr


def test_malformed_scheduler_address_is_one_line():
    result = _cli("analyze", SAMPLES / "pynetdicom_cancel.pcap", "--scheduler", "nowhere")
    assert result.returncode == 2
    assert result.stderr.strip() == ("trace-analyzer: nowhere: not a Dask scheduler address "
                                     "(such as tcp://HOST:8786)")
