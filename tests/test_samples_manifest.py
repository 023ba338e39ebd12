"""The bundled sample captures agree with sample_pcaps/manifest.json.

Light checks only: files exist, are readable capture files (or the documented
truncated / gzip cases), and the manifest's ground-truth numbers are
self-consistent.  Nothing here imports the trace_analyzer package.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
MANIFEST = SAMPLES / "manifest.json"

REQUIRED_FILES = {
    "pynetdicom_to_pynetdicom_success.pcap",
    "pynetdicom_failed_warning_subops.pcap",
    "pynetdicom_failure_error_comment.pcap",
    "pynetdicom_cancel.pcap",
    "interleaved_two_associations.pcap",
    "small_max_pdu.pcap",
    "pynetdicom_success.pcapng",
    "ipv6_success.pcap",
    "dcmtk_to_dcmtk_success.pcap",
    "pynetdicom_scu_to_dcmtk_scp.pcap",
    "dcmtk_scu_to_pynetdicom_scp.pcap",
    "midstream_start.pcap",
    "reordered_retransmitted.pcap",
    "truncated.pcap",
    "ethernet_vlan.pcap",
    "linux_sll.pcap",
    "raw_ip.pcap",
    "null_loopback.pcap",
    "gap_lost_segment.pcap",
    "retrieve.pcap.gz",
}
#: Real SCUs against scripts/samples/misbehaving.py: fault mode -> rules the misbehaving SCP must trigger.
FAULT_RULES = {
    "success_despite_failures": {"GET-RSP-014", "GET-CNT-004", "GET-CNT-006"},
    "pending_missing_counters": {"GET-RSP-007"},
    "remaining_rises": {"GET-CNT-001"},
    "response_after_final": {"GET-RSP-004"},
    "undefined_status": {"GET-RSP-005"},
    "store_after_final": {"GET-SUB-005"},
    "subop_priority_mismatch": {"GET-SUB-003"},
    "store_without_role": {"GET-SUB-001"},
    "oversized_pdu": {"UL-004"},
    "error_comment_too_long": {"GET-RSP-019"},
    "cancel_ignored": {"GET-CAN-007"},
    "role_refused": {"GET-SUB-001", "GET-ROLE-001"},
    "role_refused_getscu": {"GET-SUB-001", "GET-ROLE-001"},
    "oversized_pdu_cut": {"UL-004"},
    "oversized_pdu_cut_pynetdicom": {"UL-004"},
    "misnumbered_responses": {"GET-RSP-002"},
    "misnumbered_responses_getscu": {"GET-RSP-002"},
}
REQUIRED_FILES |= {f"fault_{mode}.pcap" for mode in FAULT_RULES}
RULE_ID = re.compile(r"^(UL|CMD|GET-RQ|GET-ID|GET-RSP|GET-CNT|GET-SUB|GET-CAN|GET-ROLE)-\d{3}$")
DLT = {"NULL": 0, "EN10MB": 1, "RAW": 101, "LINUX_SLL": 113}


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def _entries() -> list[dict]:
    if not MANIFEST.exists():
        return []
    return _manifest()["captures"]


def _ids(entries: list[dict]) -> list[str]:
    return [e["file"] for e in entries]


ENTRIES = _entries()


def _category(code: int) -> str:
    """Status class per PS3.7 Annex C; "Unknown" (as pynetdicom says) for codes outside every class."""
    if code == 0x0000:
        return "Success"
    if code == 0xFE00:
        return "Cancel"
    if code in (0xFF00, 0xFF01):
        return "Pending"
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return "Warning"
    if code >> 12 in (0xA, 0xC) or code >> 8 in (0x01, 0x02):
        return "Failure"
    return "Unknown"


def _c_gets(entry: dict):
    for assoc in entry.get("associations", []):
        yield from assoc["c_gets"]


def _recorder():
    """scripts/record_samples.py, whose pcap_records wrote the manifest's record counts."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module("record_samples")


def _pcap_records(raw: bytes) -> tuple[int, int, bool]:
    return _recorder().pcap_records(raw)


def test_manifest_present_and_complete():
    assert MANIFEST.exists(), "run scripts/record_samples.py"
    manifest = _manifest()
    files = {e["file"] for e in manifest["captures"]}
    assert REQUIRED_FILES <= files, sorted(REQUIRED_FILES - files)
    assert len(files) == len(manifest["captures"]), "duplicate manifest entries"


def test_readme_lists_every_capture():
    readme = (SAMPLES / "README.md").read_text()
    for entry in ENTRIES:
        assert f"`{entry['file']}`" in readme


def test_sizes_are_small():
    total = sum(p.stat().st_size for p in SAMPLES.iterdir() if p.is_file())
    assert total < 15 * 1024 * 1024
    for entry in ENTRIES:
        assert entry["size_bytes"] < 2 * 1024 * 1024, entry["file"]


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_file_matches_manifest(entry):
    path = SAMPLES / entry["file"]
    assert path.is_file()
    data = path.read_bytes()
    assert len(data) == entry["size_bytes"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_file_is_readable(entry, tmp_path):
    from scapy.utils import RawPcapNgReader, RawPcapReader

    path = SAMPLES / entry["file"]
    if entry["format"] == "pcap.gz":
        plain = tmp_path / "plain.pcap"
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        path = plain
    if entry.get("truncated"):
        linktype, complete, cut = _pcap_records(path.read_bytes())
        assert cut, "truncated sample should end inside a record"
        assert complete == entry["records"]
        assert linktype == entry["dlt"]
        return
    if entry["format"] == "pcapng":
        reader = RawPcapNgReader(str(path))
        linktypes = set()
        count = 0
        for _data, meta in reader:
            count += 1
            linktypes.add(meta.linktype)
        reader.close()
        assert linktypes == {entry["dlt"]}
    else:
        reader = RawPcapReader(str(path))
        assert reader.linktype == entry["dlt"]
        count = sum(1 for _ in reader)
        reader.close()
        linktype, complete, cut = _pcap_records(path.read_bytes())
        assert not cut and complete == count and linktype == entry["dlt"]
    assert count == entry["records"]
    assert DLT[entry["link_type"]] == entry["dlt"]


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_entry_shape(entry):
    assert entry["kind"] in ("real", "crafted", "fault")
    assert entry["peers"] and entry["description"]
    assert entry["ip_version"] in (4, 6)
    assert entry["server_ports"] and all(0 < p < 65536 for p in entry["server_ports"])
    if "move" in entry or "find" in entry:
        # C-MOVE / C-FIND / C-ECHO samples: their facts are checked in tests/test_move_samples.py.
        assert entry["num_c_gets"] == 0 and entry["kind"] == "real" and len(entry["server_ports"]) >= 1
        return
    assert entry["num_associations"] == len(entry["associations"]) >= 1
    assert entry["num_c_gets"] == sum(len(a["c_gets"]) for a in entry["associations"]) >= 1
    for assoc in entry["associations"]:
        for key in ("calling_ae", "called_ae"):
            assert isinstance(assoc[key], str) and 0 < len(assoc[key]) <= 16
        for key in ("requestor_max_pdu", "acceptor_max_pdu"):
            assert isinstance(assoc[key], int) and assoc[key] >= 0
        assert assoc["server_port"] in entry["server_ports"]
    if entry["kind"] == "crafted":
        crafted = entry["crafted"]
        assert crafted["transform"]
        assert (SAMPLES / crafted["source"]).is_file()


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_c_get_numbers_are_consistent(entry):
    fault = entry["kind"] == "fault"
    for get in _c_gets(entry):
        final = get["final_status"]
        if entry.get("cut_short"):  # the exchange was cut before any final response
            assert final is None and all(_category(int(s, 16)) == "Pending" for s in get["response_statuses"])
            continue
        assert isinstance(final, int)
        assert get["final_status_hex"] == f"0x{final:04X}"
        assert get["final_status_category"] == _category(final)
        assert get["final_status_category"] != "Pending"

        statuses = get["response_statuses"]
        assert statuses[-1] == get["final_status_hex"]
        pending = sum(1 for s in statuses if _category(int(s, 16)) == "Pending")
        assert pending == get["pending_responses"]
        if fault:
            # a fault may add responses after the final one: the final is the first non-Pending
            first_final = next(s for s in statuses if _category(int(s, 16)) != "Pending")
            assert first_final == get["final_status_hex"]
            assert statuses.index(first_final) == get["pending_responses"]
        else:
            assert len(statuses) == get["pending_responses"] + 1

        received = get["c_store_subops_received"]
        assert received == len(get["c_store_statuses_returned"]) == len(get["c_store_sop_instance_uids"])
        silent = get["subops_without_c_store"]
        if fault:
            # The misbehaving SCP breaks the rules tied to what follows; its own entries are checked
            # in test_fault_entries.
            continue
        assert get["pending_responses"] <= received + silent

        counters = get["counters"]
        completed, failed, warning = counters["completed"], counters["failed"], counters["warning"]
        store_cats = [_category(int(s, 16)) for s in get["c_store_statuses_returned"]]
        category = get["final_status_category"]
        if category == "Success":
            assert failed in (0, None) and warning in (0, None)
            assert completed == received
            assert silent == 0 and set(store_cats) <= {"Success"}
        elif category == "Warning":
            assert completed + failed + warning == received + silent
            assert failed + warning > 0
            assert completed == store_cats.count("Success")
            assert warning == store_cats.count("Warning")
            assert failed == store_cats.count("Failure") + silent
        elif category == "Cancel":
            assert get["cancel_sent"]
            assert completed + failed + warning == received + silent
            assert counters["remaining"] is not None and counters["remaining"] > 0
        else:  # Failure
            assert received == 0 or failed > 0
        if get["error_comment"] is not None:
            assert 0 < len(get["error_comment"]) <= 64
        if get["offending_element"] is not None:
            for tag in get["offending_element"]:
                assert tag.startswith("0x") and len(tag) == 10
                int(tag, 16)


def test_scenario_specific_truth():
    by_file = {e["file"]: e for e in ENTRIES}

    def only_get(name):
        gets = list(_c_gets(by_file[name]))
        assert len(gets) == 1
        return gets[0]

    assert only_get("pynetdicom_to_pynetdicom_success.pcap")["final_status"] == 0x0000
    warn = only_get("pynetdicom_failed_warning_subops.pcap")
    assert warn["final_status"] == 0xB000 and warn["subops_without_c_store"] == 1
    fail = only_get("pynetdicom_failure_error_comment.pcap")
    assert fail["final_status"] == 0xA900
    assert fail["offending_element"] == ["0x00080052", "0x00100020"]
    assert fail["error_comment"]
    assert only_get("pynetdicom_cancel.pcap")["final_status"] == 0xFE00
    assert by_file["interleaved_two_associations.pcap"]["num_associations"] == 2
    small = by_file["small_max_pdu.pcap"]["associations"][0]
    assert small["requestor_max_pdu"] <= 2048 and small["acceptor_max_pdu"] <= 2048
    assert by_file["ipv6_success.pcap"]["ip_version"] == 6
    assert by_file["pynetdicom_success.pcapng"]["format"] == "pcapng"
    assert by_file["retrieve.pcap.gz"]["format"] == "pcap.gz"
    assert by_file["truncated.pcap"]["truncated"] is True
    links = {
        by_file[f]["link_type"]
        for f in ("ethernet_vlan.pcap", "linux_sll.pcap", "raw_ip.pcap", "null_loopback.pcap")
    }
    assert links == {"EN10MB", "LINUX_SLL", "RAW", "NULL"}
    for name in (
        "dcmtk_to_dcmtk_success.pcap",
        "pynetdicom_scu_to_dcmtk_scp.pcap",
        "dcmtk_scu_to_pynetdicom_scp.pcap",
    ):
        assert "DCMTK" in by_file[name]["peers"]


FAULTS = [e for e in ENTRIES if e["kind"] == "fault"]


def test_every_fault_mode_has_a_capture():
    assert {e["fault"] for e in FAULTS} == set(FAULT_RULES)


@pytest.mark.parametrize("entry", FAULTS, ids=_ids(FAULTS))
def test_fault_entries(entry):
    mode = entry["fault"]
    assert entry["file"] == f"fault_{mode}.pcap" and entry["scenario"] == f"fault_{mode}"
    assert entry["misbehaving_peer"] == "acceptor"
    assert entry["format"] == "pcap" and entry["link_type"] == "EN10MB" and entry["ip_version"] == 4
    assert set(entry["expected_rules"]) == FAULT_RULES[mode]
    assert all(RULE_ID.match(rule) for rule in entry["expected_rules"])
    assert entry["num_associations"] == entry["num_c_gets"] == 1
    # the misbehaving SCP's own record of the exchange
    (view,) = entry["scp_view"]
    assert view["client_port"] == entry["associations"][0]["client_port"]
    sent = view["sent"]
    assert sent, "the misbehaving SCP records every message it sent"
    stores = [m for m in sent if m["message"] == "C-STORE-RQ"]
    responses = [m for m in sent if m["message"] == "C-GET-RSP"]
    (get,) = _c_gets(entry)
    if entry["scu"].startswith("pynetdicom"):
        assert responses or entry.get("cut_short")
        assert [m["status"] for m in responses] == get["response_statuses"]
        late = get.get("c_store_after_final") or []
        cut = [m for m in stores if "cut" in m]  # its data set never finished: not delivered
        assert len(stores) == get["c_store_subops_received"] + len(late) + len(cut)
    assert view["c_gets"][0]["message_id"] == get["message_id"]
    assert view["c_gets"][0]["priority"] == get["priority"]


def test_fault_specific_truth():
    by_mode = {e["fault"]: e for e in FAULTS}

    def only_get(mode):
        (get,) = _c_gets(by_mode[mode])
        return get

    def scp_sent(mode, message):
        return [m for m in by_mode[mode]["scp_view"][0]["sent"] if m["message"] == message]

    lying = only_get("success_despite_failures")
    assert lying["final_status"] == 0x0000 and lying["counters"]["failed"] > 0
    assert set(lying["c_store_statuses_returned"]) == {"0xC000"}
    assert lying["counters"]["completed"] > 0  # none was answered 0x0000
    for response in scp_sent("pending_missing_counters", "C-GET-RSP")[:-1]:
        assert "remaining" not in response["counters"] and "warning" not in response["counters"]
    remaining = [r["counters"]["remaining"] for r in scp_sent("remaining_rises", "C-GET-RSP")[:-1]]
    assert any(later > earlier for earlier, later in zip(remaining, remaining[1:], strict=False))
    twice = only_get("response_after_final")["response_statuses"]
    assert [s for s in twice if s != "0xFF00"] == ["0x0000", "0x0000"]
    assert only_get("response_after_final")["send_c_get_yielded"] == twice[:-1]
    assert only_get("undefined_status")["final_status"] == 0xD000
    assert only_get("undefined_status")["final_status_category"] == "Unknown"
    assert len(only_get("store_after_final")["c_store_after_final"]) == 1
    priority = only_get("subop_priority_mismatch")["priority"]
    assert priority == 1
    assert {m["priority"] for m in scp_sent("subop_priority_mismatch", "C-STORE-RQ")} == {0}
    without_role = only_get("store_without_role")
    assert set(without_role["c_store_statuses_returned"]) == {"0x0122"}
    assert without_role["final_status"] == 0xA702
    assert by_mode["oversized_pdu"]["associations"][0]["requestor_max_pdu"] == 4096
    comment = only_get("error_comment_too_long")["error_comment"]
    assert comment is not None and len(comment) == 70
    cancelled = only_get("cancel_ignored")
    assert cancelled["cancel_sent"] and cancelled["final_status"] == 0x0000
    assert cancelled["c_store_subops_received"] >= 3
    for mode in ("pending_missing_counters", "remaining_rises"):
        assert "getscu" in by_mode[mode]["peers"]


def test_recorder_exposes_record():
    module = _recorder()
    assert callable(module.record)
    names = {e["scenario"] for e in ENTRIES}
    assert names <= set(module.SCENARIOS)
