"""Exports keep column types: integers stay integers and absent values stay null, in JSON,
in the DataFrames and in Parquet alike; the terminal output starts with a summary and fits
a narrow terminal."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest

import trace_analyzer
from trace_analyzer.cli import format_table, render_text
from trace_analyzer.tables import COLUMNS, TABLES

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "sample_pcaps" / "pynetdicom_failure_error_comment.pcap"
CLI = [sys.executable, "-m", "trace_analyzer"]  # the same entry as the installed command
ARROW = {"int": pyarrow.int64(), "float": pyarrow.float64(), "str": pyarrow.string(), "bool": pyarrow.bool_()}


def run(*args, env=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parquet")
    result = run("analyze", CAPTURE, "--format", "parquet", "--output", folder)
    assert result.returncode == 0, result.stderr
    assert "Parquet datasets" in result.stderr
    data = json.loads(run("analyze", CAPTURE, "--format", "json").stdout)
    return folder, data


def test_one_parquet_dataset_per_table_with_the_column_kinds(exported):
    folder, _ = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted(TABLES)
    for name in TABLES:
        # One capture (one capture set): one file in each table's folder.
        [part] = (folder / name).glob("*.parquet")
        schema = pyarrow.parquet.read_schema(part)
        assert schema.names == list(COLUMNS[name]), name
        for column, kind in COLUMNS[name].items():
            assert schema.field(column).type == ARROW[kind], (name, column, schema.field(column).type)


def test_parquet_values_equal_the_json_values(exported):
    folder, data = exported
    for name in TABLES:
        rows = pyarrow.parquet.read_table(folder / name).to_pylist()
        assert rows == data[name], name
    # The final A900 response has no (0000,1020): null, not 0 and not NaN.
    [operation] = data["operations"]
    assert operation["remaining"] is None and operation["failed"] == 3
    assert isinstance(operation["final_status"], int) and operation["final_status"] == 0xA900


def test_parquet_read_back_into_pandas_keeps_nullable_dtypes(exported):
    import pandas

    folder, _ = exported
    analysis = trace_analyzer.analyze(str(CAPTURE))
    for name in ("operations", "progress", "sub_operations", "violations", "captures"):
        frame = pandas.read_parquet(folder / name)
        assert dict(frame.dtypes) == dict(analysis.table(name).dtypes), name
    frame = pandas.read_parquet(folder / "operations")
    assert frame.remaining.isna().all() and str(frame.failed.dtype) == "Int64"


def test_empty_tables_keep_their_types(exported):
    folder, data = exported
    empty = [name for name in TABLES if not data[name]]
    assert empty, "the sample has tables without rows (problems, at least)"
    for name in empty:
        table = pyarrow.parquet.read_table(folder / name)
        assert table.num_rows == 0
        assert [f.type for f in table.schema] == [ARROW[k] for k in COLUMNS[name].values()]


def test_json_floats_ints_and_nulls():
    data = json.loads(trace_analyzer.analyze(str(CAPTURE)).to_json())
    for name in TABLES:
        for row in data[name]:
            for column, kind in COLUMNS[name].items():
                value = row[column]
                if value is None:
                    continue
                expected = {"int": int, "float": (int, float), "str": str, "bool": bool}[kind]
                assert isinstance(value, expected), (name, column, value)
                if kind == "int":
                    assert not isinstance(value, bool)
                if kind == "float":
                    assert math.isfinite(value)


def test_terminal_output_starts_with_the_summary():
    out = run("analyze", CAPTURE).stdout
    head = out.splitlines()[:7]
    assert head[0] == "Summary"
    labels = [line.split()[0] for line in head[1:7]]
    assert labels == ["captures", "associations", "messages", "C-GETs", "peers", "findings"]
    assert "1: 1 Failure" in head[4] and "C-GET-RQ" in head[3]


def test_narrow_terminal_fits_and_all_shows_everything():
    narrow = run("analyze", CAPTURE, env={"COLUMNS": "72"}).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 72
    assert "more column(s) (--all shows them)" in narrow
    # The columns a reader needs first survive: status and counters of the C-GET.
    operations = narrow.split("C-GET operations (1)")[1].splitlines()[1]
    for column in ("message_id", "status_hex", "status_category"):
        assert column in operations
    full = run("analyze", CAPTURE, "--all", env={"COLUMNS": "72"}).stdout
    assert "more column(s)" not in full and "Level PATIENT not valid for Study Root" in full
    assert "Capture and protocol problems (0)" in full  # --all shows empty tables too


def test_row_limit():
    rows = [{"n": i, "text": "x" * i} for i in range(40)]
    text = format_table(rows, ("n", "text"), width=30, max_rows=5)
    lines = text.splitlines()
    # the note is wrapped to the width, never cut
    assert len(lines) == 2 + 5 + 2 and "35 more row(s) (--all shows them)" in " ".join(lines[-2:])
    assert all(len(line) <= 30 for line in lines)
    analysis = trace_analyzer.analyze(str(CAPTURE))
    assert render_text(analysis, 60, 1, show_all=True) == render_text(analysis, show_all=True)
