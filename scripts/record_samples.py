#!/usr/bin/env python3
"""Record the bundled sample captures of DICOM C-GET traffic.

    python scripts/record_samples.py [--out sample_pcaps] [--only NAME ...] [--list]

Real scenarios run pynetdicom and/or DCMTK peers on the loopback interface
(random free ports) while ``tcpdump -i lo -U`` (or ``dumpcap`` for pcapng)
records them; crafted scenarios transform a real recording with scapy; fault
scenarios (``fault_*``) record a real SCU (pynetdicom or getscu) against the
deliberately misbehaving socket SCP of ``samples/misbehaving.py``, recorded
the same way, and list the catalog rules the SCP must trigger.
``sample_pcaps/manifest.json`` receives, for every capture, the ground truth
reported by the peers themselves (never decoded from the capture).

Needs: tcpdump, dumpcap, DCMTK (getscu, dcmqrscp, dcmqridx), pynetdicom,
pydicom, scapy, and root (or capture capabilities) for the capture tools.

For tests: ``record(name, out_dir)`` records one scenario and returns its
manifest entry without touching any manifest file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import signal
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from samples import crafted  # noqa: E402
from samples.instances import STUDIES, UID_ROOT, study_uid  # noqa: E402
from samples.scenarios import SCENARIOS, Scenario, ipv6_available, tool_versions  # noqa: E402

LOG = logging.getLogger("record_samples")
MANIFEST = "manifest.json"
README = "README.md"
DEFAULT_OUT = _HERE.parent / "sample_pcaps"
MANIFEST_VERSION = 1


# ------------------------------------------------------------------------------------------
# file facts
# ------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def pcap_records(raw: bytes) -> tuple[int, int, bool]:
    """(link type, number of complete records, whether a cut-short record follows) of a pcap image."""
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError(f"not a classic pcap file (magic {magic.hex()})")
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


def file_facts(path: Path) -> dict:
    """Container format, link type and record count of a capture file."""
    from scapy.utils import RawPcapNgReader

    raw = path.read_bytes()
    facts: dict = {
        "size_bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "compression": None,
    }
    if raw[:2] == b"\x1f\x8b":
        facts["compression"] = "gzip"
        raw = gzip.decompress(raw)
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        facts["format"] = "pcapng"
        reader = RawPcapNgReader(str(path))
        linktypes = set()
        records = 0
        try:
            for _data, meta in reader:
                records += 1
                linktypes.add(meta.linktype)
        finally:
            reader.close()
        linktype = linktypes.pop() if len(linktypes) == 1 else None
        facts["records"] = records
    else:
        facts["format"] = "pcap.gz" if facts["compression"] else "pcap"
        linktype, records, cut = pcap_records(raw)
        facts["records"] = records
        if cut:
            facts["records_note"] = "complete records; one more, cut short, follows"
    facts["dlt"] = linktype
    facts["link_type"] = crafted.LINKTYPE_NAMES.get(linktype, str(linktype))
    return facts


# ------------------------------------------------------------------------------------------
# recording
# ------------------------------------------------------------------------------------------


def resolve(name: str) -> Scenario:
    if name in SCENARIOS:
        return SCENARIOS[name]
    for scenario in SCENARIOS.values():
        if name == scenario.filename or name == Path(scenario.filename).stem:
            return scenario
    raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")


def _summarise(entry: dict) -> None:
    assocs = entry.get("associations", [])
    entry["num_associations"] = len(assocs)
    entry["num_c_gets"] = sum(len(a.get("c_gets", [])) for a in assocs)


def _record_real(scenario: Scenario, out_dir: Path) -> dict:
    dest = out_dir / scenario.filename
    with tempfile.TemporaryDirectory(prefix=f"samples-{scenario.name}-") as tmp:
        if scenario.name == "ipv6_success" and not ipv6_available():
            return _ipv6_fallback(scenario, out_dir, Path(tmp))
        details = scenario.run(dest, Path(tmp))
    entry = {
        "file": scenario.filename,
        "scenario": scenario.name,
        "kind": scenario.kind,
        "summary": scenario.summary,
        "ip_version": 6 if scenario.name == "ipv6_success" else 4,
        "capture_tool": (
            "dumpcap -i lo -n -w FILE -f 'tcp port P'"
            if scenario.filename.endswith(".pcapng")
            else "tcpdump -i lo --immediate-mode -U -w FILE 'tcp port P'"
        ),
    }
    entry.update(details)
    entry.update(file_facts(dest))
    _summarise(entry)
    return entry


def _ipv6_fallback(scenario: Scenario, out_dir: Path, tmp: Path) -> dict:
    """No usable ::1 here: record over IPv4 and rewrite the packets to IPv6."""
    source = _record_real(SCENARIOS["pynetdicom_to_pynetdicom_success"], tmp)
    dest = out_dir / scenario.filename
    info = crafted.to_ipv6(tmp / source["file"], dest)
    entry = {k: v for k, v in source.items() if k not in ("file", "scenario", "summary")}
    entry.update(
        {
            "file": scenario.filename,
            "scenario": scenario.name,
            "kind": "crafted",
            "summary": "IPv4 success capture rewritten to IPv6 (::1 was not usable here)",
            "ip_version": 6,
            "crafted": {"source": source["file"], **info},
        }
    )
    entry.update(file_facts(dest))
    _summarise(entry)
    return entry


def _record_crafted(scenario: Scenario, out_dir: Path, sources: dict[str, dict]) -> dict:
    source_scenario = SCENARIOS[scenario.source]
    source_entry = sources.get(source_scenario.name)
    with tempfile.TemporaryDirectory(prefix=f"samples-{scenario.name}-") as tmp:
        source_path = out_dir / source_scenario.filename
        if (
            source_entry is None
            or not source_path.exists()
            or source_entry.get("sha256") != _sha256(source_path)
        ):
            LOG.info("  recording source %s for %s", source_scenario.name, scenario.name)
            source_entry = _record_real(source_scenario, Path(tmp))
            source_path = Path(tmp) / source_scenario.filename
        dest = out_dir / scenario.filename
        info = scenario.run(source_path, dest)
    keep = (
        "description",
        "peers",
        "scu",
        "scp",
        "server_ports",
        "associations",
        "ip_version",
    )
    entry = {
        "file": scenario.filename,
        "scenario": scenario.name,
        "kind": "crafted",
        "summary": scenario.summary,
    }
    entry.update({k: source_entry[k] for k in keep if k in source_entry})
    entry["description"] = (
        f"CRAFTED from {source_scenario.filename}: {scenario.summary}. "
        f"The recorded exchange: {source_entry.get('description', '')}"
    )
    entry["crafted"] = {
        "source": source_scenario.filename,
        "source_sha256": source_entry["sha256"],
        "source_records": source_entry["records"],
        **info,
    }
    entry["truncated"] = scenario.name == "truncated"
    entry.update(file_facts(dest))
    _summarise(entry)
    return entry


def record(scenario_name: str, out_dir: Path, _sources: dict[str, dict] | None = None) -> dict:
    """Record one scenario into `out_dir` and return its manifest entry.

    Crafted scenarios re-use their source capture from `out_dir` when `_sources`
    holds a matching entry for it; otherwise the source is recorded afresh in a
    temporary directory (only the crafted file is written to `out_dir`).
    """
    scenario = resolve(scenario_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if scenario.kind in ("real", "fault"):
        entry = _record_real(scenario, out_dir)
    else:
        entry = _record_crafted(scenario, out_dir, _sources or {})
    LOG.info("  %-36s %8d bytes  %.1fs", scenario.filename, entry["size_bytes"], time.monotonic() - started)
    return entry


# ------------------------------------------------------------------------------------------
# manifest and README
# ------------------------------------------------------------------------------------------


def _dataset_summary() -> list[dict]:
    out = []
    for spec in STUDIES:
        out.append(
            {
                "patient_id": spec.patient_id,
                "patient_name": spec.patient_name,
                "study": spec.number,
                "study_instance_uid": study_uid(spec.number),
                "description": spec.description,
                "series": [
                    {"number": s.number, "modality": s.modality, "instances": s.count} for s in spec.series
                ],
            }
        )
    return out


def load_manifest(out_dir: Path) -> dict:
    path = out_dir / MANIFEST
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            LOG.warning("ignoring unreadable %s", path)
    return {}


def write_manifest(out_dir: Path, entries: dict[str, dict]) -> None:
    ordered = [entries[s.filename] for s in SCENARIOS.values() if s.filename in entries]
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "generated_by": "scripts/record_samples.py",
        "notes": (
            "Ground truth comes from the peers (pynetdicom status Datasets and handler counts; getscu -d "
            "log), never from decoding the captures. Ports, timestamps, client ports and sha256 change "
            "from run to run; the structure does not. counters hold what the SCU received in the final "
            "C-GET-RSP (null = element absent). subops_without_c_store = sub-operations the SCP counted "
            "as failed without sending a C-STORE (known from the set-up)."
        ),
        "tool_versions": tool_versions(),
        "uid_root": UID_ROOT,
        "studies": _dataset_summary(),
        "captures": ordered,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def write_readme(out_dir: Path, entries: dict[str, dict]) -> None:
    lines = [
        "# Sample captures",
        "",
        "Regenerate with `python scripts/record_samples.py [--out DIR] [--only NAME ...]` (root, or",
        "capture rights; needs tcpdump, dumpcap, DCMTK getscu/dcmqrscp/dcmqridx, pynetdicom, scapy;",
        "about 20 s). `manifest.json` holds the ground truth of every file as reported by the peers",
        "themselves (pynetdicom status Datasets and handler counts, getscu's `-d` log), never decoded",
        "from the captures. Ports, timestamps and hashes change from run to run; structure does not.",
        "",
        "Real captures run on loopback with random free ports and are recorded with",
        "`tcpdump -i lo --immediate-mode -U -w FILE 'tcp port P'` (pcap, DLT_EN10MB) or",
        "`dumpcap -i lo -n -w FILE -f 'tcp port P'` (pcapng). Crafted captures are scapy transforms of",
        "`pynetdicom_to_pynetdicom_success.pcap` from the same run (the manifest says exactly which",
        "records were changed). The DICOM instances are pydicom-made 64x64 16-bit CT/MR images",
        f"(3 patients, 3 studies, 13 images) with UIDs under `{UID_ROOT}`.",
        "",
        "| file | kind | what it holds / how it was made |",
        "|---|---|---|",
    ]
    for scenario in SCENARIOS.values():
        entry = entries.get(scenario.filename)
        kind = entry["kind"] if entry else scenario.kind
        how = scenario.summary
        if entry and kind in ("real", "fault"):
            how += f"; {entry['peers']}"
        if entry and kind == "fault":
            how += f"; expected rules: {', '.join(entry['expected_rules'])}"
        elif entry and entry.get("crafted"):
            how += f"; scapy transform of `{entry['crafted']['source']}`"
        if entry is None:
            how += " - NOT RECORDED"
        lines.append(f"| `{scenario.filename}` | {kind} | {how} |")
    lines += [
        "",
        "Notes:",
        "- `truncated.pcap` is broken on purpose: its last record is incomplete (readers warn).",
        "- `retrieve.pcap.gz` is a gzip file; scapy and tshark read it directly.",
        "- `small_max_pdu.pcap` uses max PDU sizes (128 / 64) far below DCMTK's minimum (4096), so",
        "  only pynetdicom peers take part.",
        "- `ipv6_success.pcap` is a real exchange over `::1`; only if `::1` cannot be bound does the",
        "  script fall back to rewriting an IPv4 capture (then its manifest entry says `crafted`).",
        "- With getscu as SCU (`dcmtk_to_dcmtk_success`, `dcmtk_scu_to_pynetdicom_scp`) the truth comes",
        "  from its `-d` log; getscu 3.6.7 never reads a C-GET-RSP data set, so",
        "  `failed_sop_instance_uid_list` is null there, and its client port is unknown except when",
        "  the SCP is pynetdicom.",
        "- `fault_*.pcap` (kind `fault`) are real loopback recordings of a real SCU (pynetdicom, or",
        "  getscu where the manifest says so) against `scripts/samples/misbehaving.py`, a plain-socket",
        "  C-GET SCP that breaks one rule on purpose. Their manifest entries add `misbehaving_peer`",
        "  (`acceptor`), `fault`, `expected_rules` (catalog rule IDs the SCP must trigger) and `scp_view`",
        "  (every message the misbehaving SCP sent). The ground truth is still the SCU's own view: with",
        "  a pynetdicom SCU `response_statuses` lists every C-GET-RSP its DIMSE layer received (also any",
        "  after the final one; `send_c_get_yielded` is what send_c_get returned), the C-STORE counts",
        "  come from the C-STORE-RQs it received and the C-STORE-RSPs it sent, and",
        "  `c_store_after_final` holds any C-STORE it answered after the C-GET ended.",
        "",
    ]
    (out_dir / README).write_text("\n".join(lines))


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default: sample_pcaps)"
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="scenario names or file names to record")
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    # pynetdicom logs the deliberately provoked sub-op failures as warnings; keep errors only
    logging.getLogger("pynetdicom").setLevel(logging.INFO if args.verbose else logging.ERROR)
    # turn SIGTERM into SystemExit so every `with` block stops the processes it started
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:36s} {scenario.kind:8s} {scenario.filename}")
        return 0

    selected = [resolve(n) for n in args.only] if args.only else list(SCENARIOS.values())
    selected.sort(key=lambda s: (s.kind == "crafted", list(SCENARIOS).index(s.name)))
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)

    previous = load_manifest(out_dir)
    entries = {e["file"]: e for e in previous.get("captures", []) if e.get("file")}
    sources = {e["scenario"]: e for e in entries.values() if e.get("kind") == "real"}
    failures = []
    started = time.monotonic()
    for scenario in selected:
        LOG.info("recording %s", scenario.name)
        try:
            entry = record(scenario.name, out_dir, _sources=sources)
        except Exception as exc:  # noqa: BLE001 - keep going, report at the end
            LOG.error("  FAILED: %s", exc)
            LOG.debug(traceback.format_exc())
            failures.append((scenario.name, str(exc)))
            continue
        entries[scenario.filename] = entry
        if entry["kind"] == "real":
            sources[scenario.name] = entry
        write_manifest(out_dir, entries)
    write_manifest(out_dir, entries)
    write_readme(out_dir, entries)
    LOG.info(
        "done in %.1fs, %d recorded, %d failed",
        time.monotonic() - started,
        len(selected) - len(failures),
        len(failures),
    )
    for name, message in failures:
        LOG.info("  failed: %s: %s", name, message)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
