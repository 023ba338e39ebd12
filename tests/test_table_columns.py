"""The columns each table promises its users (issues 2 and 3), present in rows, DataFrames and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trace_analyzer
from trace_analyzer.tables import COLUMNS

REQUIRED = {
    "associations": "capture association client server calling_ae called_ae "
                    "requestor_implementation_class_uid requestor_implementation_version "
                    "acceptor_implementation_class_uid "
                    "acceptor_implementation_version requestor_max_pdu acceptor_max_pdu outcome start_time "
                    "end_time first_frame last_frame",
    "operations": "capture association message_id affected_sop_class_uid sop_class_name priority "
                  "query_retrieve_level request_frame request_time final_status status_category "
                  "status_meaning remaining completed failed warning pending_responses sub_operations "
                  "sub_operations_failed "
                  "cancel_requested complete duration_s error_comment offending_element errors warnings",
    "progress": "capture association message_id frame time elapsed_s status status_category remaining "
                "completed failed warning",
    "sub_operations": "capture association get_message_id message_id affected_sop_class_uid "
                      "affected_sop_instance_uid priority request_frame response_frame status "
                      "status_category dataset_bytes latency_s",
    "statuses": "capture service status status_hex category meaning responses operations",
    "offending_elements": "capture association message_id status tag keyword error_comment",
    "violations": "capture rule severity title section association message_id frame time peer peer_role "
                  "detail",
    "peers": "ae_title address implementation_class_uid implementation_version roles associations operations "
             "errors warnings rules_broken verdict",
}
SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"


@pytest.fixture(scope="module")
def analysis():
    return trace_analyzer.analyze([str(SAMPLES / "pynetdicom_failed_warning_subops.pcap"),
                                   str(SAMPLES / "pynetdicom_failure_error_comment.pcap")])


@pytest.mark.parametrize("table", sorted(REQUIRED))
def test_promised_columns(analysis, table):
    promised = REQUIRED[table].split()
    assert set(promised) <= set(COLUMNS[table])
    assert set(promised) <= set(getattr(analysis, table).columns)
    rows = json.loads(analysis.to_json())[table]
    assert rows, f"the sample should fill {table}"
    assert set(promised) <= set(rows[0])


def test_integer_columns_stay_integers(analysis):
    operations = analysis.operations
    for column in ("final_status", "remaining", "completed", "failed", "warning", "pending_responses"):
        assert str(operations[column].dtype) == "Int64", column


@pytest.mark.parametrize("path", sorted(p for p in SAMPLES.iterdir()
                                        if p.suffix in (".pcap", ".pcapng", ".gz")), ids=lambda p: p.name)
def test_exact_row_builders_give_every_column_in_order(path):
    # tables.iter_rows passes these builders' rows through without reordering them.
    from trace_analyzer import tables

    analysis = trace_analyzer.analyze(str(path))
    for name in tables.EXACT_ROWS:
        for row in tables._BUILDERS[name](analysis):
            # capture_set and the _utc twins of times are added by iter_rows
            assert tuple(row) == tuple(c for c in COLUMNS[name]
                                       if c != "capture_set" and not c.endswith("_utc")), \
                f"{path.name}: {name} row keys {tuple(row)}"
