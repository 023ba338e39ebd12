"""Every bundled sample capture, decoded, against what the peers themselves reported.

sample_pcaps/manifest.json is written by scripts/record_samples.py from the
peers' own view of each exchange (the pynetdicom SCU's yielded statuses, the
C-STOREs its handler received, getscu's debug log), never from decoding the
capture, so agreement here is evidence the decoder is right.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trace_analyzer

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text())
CAPTURES = {entry["file"]: entry for entry in MANIFEST["captures"]}
#: The C-GET samples (the C-MOVE, C-FIND, C-ECHO ones have tests/test_move_samples.py).
GETS = {name: entry for name, entry in CAPTURES.items() if "move" not in entry and "find" not in entry}
#: Captures that lose bytes on purpose: only what survived can be compared.
LOSSY = {"truncated.pcap", "gap_lost_segment.pcap"}


def _hex(value):
    return None if value is None else f"0x{value:04X}"


@pytest.fixture(scope="module")
def analyses():
    return {name: trace_analyzer.analyze(str(SAMPLES / name)) for name in CAPTURES}


def test_every_sample_is_in_the_manifest():
    files = {p.name for p in SAMPLES.iterdir() if p.name not in ("manifest.json", "README.md")}
    assert files == set(CAPTURES)


@pytest.mark.parametrize("name", sorted(GETS))
def test_associations_match_the_peers(analyses, name):
    entry = CAPTURES[name]
    analysis = analyses[name]
    assert analysis.errors == []
    ours = analysis.rows("associations")
    assert len(ours) == entry["num_associations"]
    setup_visible = (entry.get("crafted") or {}).get("association_setup_visible") is not False
    truth = sorted(entry["associations"], key=lambda a: a["calling_ae"])
    ours = sorted(ours, key=lambda a: a["calling_ae"] or "")
    for mine, theirs in zip(ours, truth, strict=True):
        if setup_visible:
            assert mine["calling_ae"] == theirs["calling_ae"]
            assert mine["called_ae"] == theirs["called_ae"]
            assert mine["requestor_max_pdu"] == theirs["requestor_max_pdu"]
            assert mine["acceptor_max_pdu"] == theirs["acceptor_max_pdu"]
            assert mine["mid_stream"] is False
        else:
            assert mine["calling_ae"] is None and mine["mid_stream"] is True
        assert mine["server"].rsplit(":", 1)[1] == str(theirs["server_port"])
        if theirs.get("client_port"):
            assert mine["client"].rsplit(":", 1)[1] == str(theirs["client_port"])
        expected_outcome = {"release": "released", "abort": "aborted"}.get(theirs.get("ended_by"))
        if expected_outcome and name not in LOSSY:
            assert mine["outcome"] == expected_outcome


def _operations_by_association(analysis):
    associations = {row["association"]: row for row in analysis.rows("associations")}
    grouped: dict[str, dict[int, dict]] = {}
    for row in analysis.rows("operations"):
        key = associations[row["association"]]["calling_ae"] or associations[row["association"]]["client"]
        grouped.setdefault(key, {})[row["message_id"]] = row
    return grouped


@pytest.mark.parametrize("name", sorted(GETS))
def test_c_gets_match_what_the_scu_received(analyses, name):
    entry = CAPTURES[name]
    analysis = analyses[name]
    assert len(analysis.rows("operations")) == entry["num_c_gets"]
    grouped = _operations_by_association(analysis)
    for association in entry["associations"]:
        ours = grouped.get(association["calling_ae"]) or next(iter(grouped.values()))
        for truth in association["c_gets"]:
            mine = ours[truth["message_id"]]
            if entry.get("cut_short"):
                # The SCP closed the connection inside a data set: no final response, and every
                # C-STORE-RQ it sent is a sub-operation, the cut one too (pynetdicom never
                # delivered that one to its application).
                sent = [m for m in entry["scp_view"][0]["sent"] if m["message"] == "C-STORE-RQ"]
                assert mine["final_status"] is None and mine["status_category"] == "Incomplete"
                assert mine["status_meaning"] == "no final response: connection closed"
                assert mine["pending_responses"] == truth["pending_responses"]
                assert mine["sub_operations"] == len(sent) and mine["sub_operations_unanswered"] == 1
                continue
            if name in LOSSY:
                # What survived must not contradict the peers.
                if mine["final_status"] is not None:
                    assert _hex(mine["final_status"]) == truth["final_status_hex"]
                assert mine["sub_operations"] <= truth["c_store_subops_received"]
                assert analysis.rows("problems"), "a lossy capture must report its damage"
                continue
            assert _hex(mine["final_status"]) == truth["final_status_hex"]
            assert mine["status_category"] == truth["final_status_category"]
            counters = truth["counters"]
            for column in ("remaining", "completed", "failed", "warning"):
                assert mine[column] == counters.get(column), column
            assert mine["pending_responses"] == truth["pending_responses"]
            assert mine["sub_operations"] == truth["c_store_subops_received"]
            assert mine["cancel_requested"] == truth["cancel_sent"]
            assert mine["error_comment"] == truth["error_comment"]
            expected_tags = [int(t, 16) if isinstance(t, str) else t
                             for t in truth["offending_element"] or []]
            if not expected_tags:
                assert mine["offending_element"] is None
            else:
                assert mine["offending_element"] == " ".join(
                    f"({tag >> 16:04X},{tag & 0xFFFF:04X})" for tag in expected_tags)
            if truth.get("priority") is not None and mine["request_frame"] is not None:
                assert mine["priority"] == truth["priority"]
            if truth.get("query_retrieve_level") and mine["request_frame"] is not None:
                assert mine["query_retrieve_level"] == truth["query_retrieve_level"]
            key = (mine["association"], mine["message_id"])
            progress = [row for row in analysis.rows("progress")
                        if (row["association"], row["message_id"]) == key]
            assert [row["status_hex"] for row in progress] == truth["response_statuses"]
            uids = truth.get("c_store_sop_instance_uids")
            if uids is not None:
                subs = [row for row in analysis.rows("sub_operations")
                        if row["association"] == mine["association"]
                        and row["get_message_id"] == mine["message_id"]]
                assert [row["affected_sop_instance_uid"] for row in subs] == uids
                returned = truth.get("c_store_statuses_returned")
                if returned is not None:
                    assert [row["status_hex"] for row in subs] == returned


CUT_SHORT = {name for name, entry in CAPTURES.items() if entry.get("cut_short")}


@pytest.mark.parametrize("name", sorted(set(CAPTURES) - LOSSY - CUT_SHORT))
def test_clean_captures_report_no_problem(analyses, name):
    assert analyses[name].rows("problems") == []


@pytest.mark.parametrize("name", sorted(CUT_SHORT))
def test_exchanges_cut_short_report_only_the_cut(analyses, name):
    problems = analyses[name].rows("problems")
    codes = {p["code"] for p in problems}
    assert "CAPTURE-TRUNCATED" in codes and codes <= {"CAPTURE-TRUNCATED", "CAPTURE-INCOMPLETE"}
    assert any("131804 bytes" in p["detail"] for p in problems)  # the oversized PDU, 6 + 131798
