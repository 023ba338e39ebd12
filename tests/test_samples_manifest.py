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
import struct
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
    if code == 0x0000:
        return "Success"
    if code == 0xFE00:
        return "Cancel"
    if code in (0xFF00, 0xFF01):
        return "Pending"
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return "Warning"
    return "Failure"


def _c_gets(entry: dict):
    for assoc in entry["associations"]:
        yield from assoc["c_gets"]


def _pcap_records(raw: bytes) -> tuple[int, int, bool]:
    """(link type, complete records, last record cut short) of a classic pcap image."""
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise AssertionError(f"not a pcap file (magic {magic.hex()})")
    linktype = struct.unpack_from(order + "I", raw, 20)[0] & 0x0FFFFFFF
    offset, count = 24, 0
    while offset < len(raw):
        if offset + 16 > len(raw):
            return linktype, count, True
        caplen = struct.unpack_from(order + "I", raw, offset + 8)[0]
        if offset + 16 + caplen > len(raw):
            return linktype, count, True
        offset += 16 + caplen
        count += 1
    return linktype, count, False


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
    assert entry["kind"] in ("real", "crafted")
    assert entry["peers"] and entry["description"]
    assert entry["ip_version"] in (4, 6)
    assert entry["server_ports"] and all(0 < p < 65536 for p in entry["server_ports"])
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
    for get in _c_gets(entry):
        final = get["final_status"]
        assert isinstance(final, int)
        assert get["final_status_hex"] == f"0x{final:04X}"
        assert get["final_status_category"] == _category(final)
        assert get["final_status_category"] != "Pending"

        statuses = get["response_statuses"]
        assert statuses[-1] == get["final_status_hex"]
        assert sum(1 for s in statuses[:-1] if _category(int(s, 16)) == "Pending") == get["pending_responses"]
        assert len(statuses) == get["pending_responses"] + 1

        received = get["c_store_subops_received"]
        assert received == len(get["c_store_statuses_returned"]) == len(get["c_store_sop_instance_uids"])
        silent = get["subops_without_c_store"]
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


def test_recorder_exposes_record():
    pytest.importorskip("pynetdicom")
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    module = importlib.import_module("record_samples")
    assert callable(module.record)
    names = {e["scenario"] for e in ENTRIES}
    assert names <= set(module.SCENARIOS)
