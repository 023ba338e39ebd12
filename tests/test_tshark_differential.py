"""Differential tests: our decode against Wireshark's DICOM dissector (tshark).

For every capture in ``sample_pcaps/`` (listed in ``sample_pcaps/manifest.json``)
and for one exchange recorded afresh during the test run (pynetdicom SCU and
SCP on 127.0.0.1, tcpdump on ``lo``), the command sets, associations and
per-C-GET results of :func:`trace_analyzer.analyze` are compared with what
tshark decodes (see ``tshark_oracle.py``).

tshark is a reference only where it can be one: a capture whose file is cut
short or which lost a TCP segment is decoded differently by design (tshark
drops the PDUs of a lost segment and stops at a cut), so for those the test
checks that everything tshark decoded is also in our decode, with the same
values.

Missing tshark or tcpdump makes these tests fail, never skip.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import tshark_oracle as oracle  # beside the tests (conftest.py puts tests/ on sys.path)

import trace_analyzer

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
MANIFEST = SAMPLES / "manifest.json"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz", ".cap")

PENDING = (0xFF00, 0xFF01)
COUNTERS = ("remaining", "completed", "failed", "warning")
C_STORE_RQ, C_GET_RQ, C_GET_RSP, C_MOVE_RQ = 0x0001, 0x0010, 0x8010, 0x0021
#: The requests that start an operation, by service (a response's Command Field is 0x8000 | request's).
REQUESTS = {0x0010: "C-GET", 0x0021: "C-MOVE", 0x0020: "C-FIND", 0x0030: "C-ECHO"}

#: Per-command values compared with tshark (besides the frame).
MESSAGE_FIELDS = (
    "command_field", "message_id", "message_id_being_responded_to", "status",
    "remaining", "completed", "failed", "warning",
    "context_id", "affected_sop_class_uid", "affected_sop_instance_uid", "priority", "data_set_type",
)
ASSOCIATION_FIELDS = (
    "calling_ae", "called_ae",
    "requestor_implementation_class_uid", "requestor_implementation_version", "requestor_max_pdu",
    "acceptor_implementation_class_uid", "acceptor_implementation_version", "acceptor_max_pdu",
)
OPERATION_FIELDS = (
    "final_status", "remaining", "completed", "failed", "warning", "pending_responses", "sub_operations",
    "error_comment", "offending_element", "service", "move_destination",
)

#: Words in a manifest entry's name or transform that mean tshark decodes it differently by design.
NOT_A_REFERENCE = ("truncat", "cut short", "cut in the middle", "lost", "gap", "missing segment")


# -- the samples ----------------------------------------------------------------------------------


def _manifest() -> dict[str, dict]:
    """File name -> manifest entry (empty if there is no manifest yet)."""
    if not MANIFEST.exists():
        return {}
    data = json.loads(MANIFEST.read_text())
    entries = data.get("captures", data) if isinstance(data, dict) else data
    if isinstance(entries, dict):
        entries = [dict(v, file=v.get("file", k)) for k, v in entries.items() if isinstance(v, dict)]
    result = {}
    for entry in entries:
        if isinstance(entry, dict):
            name = entry.get("file") or entry.get("filename") or entry.get("path")
            if name:
                result[Path(name).name] = entry
    return result


def _sample_files() -> list[str]:
    names = set(_manifest())
    if SAMPLES.is_dir():
        names.update(p.name for p in SAMPLES.iterdir() if p.name.endswith(CAPTURE_SUFFIXES))
    return sorted(names)


def tshark_is_reference(name: str, entry: dict | None) -> bool:
    """False for captures tshark decodes differently by design (cut files, lost segments)."""
    entry = entry or {}
    for key in ("tshark_reference", "tshark_is_reference"):
        if isinstance(entry.get(key), bool):
            return entry[key]
    crafted = entry.get("crafted") if isinstance(entry.get("crafted"), dict) else {}
    text = " ".join(str(x) for x in (
        name, entry.get("scenario", ""), entry.get("summary", ""), crafted.get("transform", ""),
    )).lower()
    return not any(word in text for word in NOT_A_REFERENCE)


# -- decoding both ways (cached: several tests look at the same capture) -----------------------------


@functools.cache
def _ours(path: str):
    return trace_analyzer.analyze([path])


@functools.cache
def _theirs(path: str) -> oracle.TsharkDecode:
    return oracle.decode(path)


def _port(endpoint: str | None) -> int | None:
    if not endpoint:
        return None
    tail = endpoint.rsplit(":", 1)[-1]  # "127.0.0.1:104", "::1:104" or "[::1]:104"
    return int(tail) if tail.isdigit() else None


def _our_messages(analysis) -> list[dict[str, Any]]:
    """Our command sets, with the sending TCP port added (from the association's endpoints)."""
    endpoints = {(r["capture"], r["association"]): (r["client"], r["server"])
                 for r in analysis.rows("associations")}
    rows = []
    for index, row in enumerate(analysis.rows("messages")):
        client, server = endpoints.get((row["capture"], row["association"]), (None, None))
        sender = row.get("sender")
        src = client if sender == "requestor" else server if sender == "acceptor" else None
        rows.append(dict(row, srcport=_port(src), _index=index))
    return rows


def _message_key(row: dict) -> tuple:
    return (row["frame"], *(row.get(name) for name in MESSAGE_FIELDS), row.get("srcport"))


def _ordered(rows: list[dict]) -> list[tuple]:
    # frame order; within one frame tshark's JSON may regroup PDVs with identical labels, so
    # commands sharing a frame are compared as a sorted group.
    keys = [_message_key(r) for r in rows]
    return sorted(keys, key=lambda k: tuple((v is None, v if v is not None else 0) for v in k))


KEY_NAMES = ("frame", *MESSAGE_FIELDS, "srcport")


def _describe(key: tuple) -> str:
    parts = []
    for name, value in zip(KEY_NAMES, key, strict=True):
        if value is None:
            continue
        if name in ("command_field", "status"):
            value = f"0x{value:04X}"
        if name in ("affected_sop_class_uid", "affected_sop_instance_uid"):
            value = "..." + str(value)[-12:]
        parts.append(f"{name}={value}")
    return " ".join(parts)


def _diff(ours: list[tuple], theirs: list[tuple], limit: int = 40) -> str:
    lines = list(difflib.unified_diff([_describe(k) for k in theirs], [_describe(k) for k in ours],
                                      "tshark", "trace_analyzer", lineterm="", n=1))
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)


def _frame_shift_hint(ours: list[tuple], theirs: list[tuple]) -> str:
    """If everything but the frame numbers agrees, say by how much the frames differ."""
    if len(ours) != len(theirs) or not ours:
        return ""
    if [k[1:] for k in ours] != [k[1:] for k in theirs]:
        return ""
    shifts = Counter(o[0] - t[0] for o, t in zip(ours, theirs, strict=True))
    return f"\nvalues agree, only frames differ; (ours - tshark) frame shifts: {dict(shifts)}"


def _tshark_associations(theirs: oracle.TsharkDecode) -> list[tuple]:
    by_stream: dict[int, dict[str, dict]] = {}
    for item in theirs.associations:
        by_stream.setdefault(item["tcp_stream"], {}).setdefault(item["pdu"], item)
    result = []
    for pdus in by_stream.values():
        rq, ac = pdus.get("A-ASSOCIATE-RQ"), pdus.get("A-ASSOCIATE-AC")
        result.append((
            rq["frame"] if rq else None,
            rq["calling_ae"] if rq else None, rq["called_ae"] if rq else None,
            rq["implementation_class_uid"] if rq else None, rq["implementation_version"] if rq else None,
            rq["max_pdu_length"] if rq else None,
            ac["implementation_class_uid"] if ac else None, ac["implementation_version"] if ac else None,
            ac["max_pdu_length"] if ac else None,
        ))
    return sorted(result, key=lambda t: (t[0] is None, t[0] or 0, str(t)))


def _our_associations(analysis) -> list[tuple]:
    result = []
    for row in analysis.rows("associations"):
        if row["calling_ae"] is None and row["acceptor_max_pdu"] is None:
            continue  # no A-ASSOCIATE in the capture (mid-stream)
        result.append((row["first_frame"] if row["calling_ae"] is not None else None,
                       *(row[name] for name in ASSOCIATION_FIELDS)))
    return sorted(result, key=lambda t: (t[0] is None, t[0] or 0, str(t)))


def _format_offending(values: list[int] | None) -> str | None:
    if values is None:
        return None
    return " ".join(f"({v >> 16:04X},{v & 0xFFFF:04X})" for v in values if v is not None)


def _comment(value: str | None) -> str | None:
    """ErrorComment as comparable text: tshark cuts values over 50 characters to 50 + '...'."""
    if value is None:
        return None
    value = value.rstrip(" \x00")
    limit = oracle.TSHARK_STRING_LIMIT
    if len(value) == limit + 3 and value.endswith("..."):
        return value[:limit]
    return value[:limit] if len(value) > limit else value


def _tshark_operations(theirs: oracle.TsharkDecode) -> dict[int, tuple[int | None, tuple]]:
    """Request frame -> (final response frame, C-GET result as tshark sees it: final status and
    counters, pending count, C-STORE-RQs between request and final response)."""
    result = {}
    streams: dict[int, list[dict]] = {}
    for command in theirs.commands:
        streams.setdefault(command["tcp_stream"], []).append(command)
    for commands in streams.values():
        for i, request in enumerate(commands):
            field = request["command_field"]
            if field not in REQUESTS:
                continue
            requested = {c["message_id"] for c in commands if c["command_field"] == field}
            pending, stores, final, alone = 0, 0, None, True
            for later in commands[i + 1:]:
                if later["command_field"] == field:
                    alone = False  # another one outstanding: a stray response is not ours alone
                named = later["message_id_being_responded_to"]
                if field == C_GET_RQ and later["command_field"] == C_STORE_RQ \
                        and later["srcport"] == request["dstport"]:
                    stores += 1
                elif later["command_field"] == field | 0x8000 and (
                        named == request["message_id"] or (alone and named not in requested)):
                    # A response naming no request at all answers the one C-GET outstanding
                    # (README: mis-numbered responses stay with their C-GET).
                    if later["status"] in PENDING:
                        pending += 1
                    else:
                        final = later
                        break
            if field == C_MOVE_RQ:
                # Its sub-operations are on another TCP stream: the C-STORE-RQs anywhere that
                # name it in Move Originator Message ID (0000,1031) while it is outstanding.
                last = final["frame"] if final else float("inf")
                stores = sum(1 for c in theirs.commands if c["command_field"] == C_STORE_RQ
                             and c["move_originator_message_id"] == request["message_id"]
                             and request["frame"] < c["frame"] < last)
            result[request["frame"]] = (final["frame"] if final else None, (
                final["status"] if final else None,
                *((final[name] if final else None) for name in COUNTERS),
                pending, stores,
                _comment(final["error_comment"]) if final else None,
                _format_offending(final["offending_element"]) if final else None,
                REQUESTS[field], request["move_destination"],
            ))
    return result


def _our_operations(analysis) -> dict[int | None, tuple]:
    result = {}
    for row in analysis.rows("operations"):
        if row["service"] == "C-STORE":
            continue  # a C-STORE outside any retrieve: compared message by message only
        values = [row[name] for name in OPERATION_FIELDS]
        values[OPERATION_FIELDS.index("error_comment")] = _comment(row["error_comment"])
        result[row["request_frame"]] = tuple(values)
    return result


# -- the comparisons ---------------------------------------------------------------------------------


def compare_with_tshark(path: str, reference: bool = True) -> None:
    """Assert that our decode of `path` agrees with tshark's (or contains it, if not `reference`).

    Frames where tshark contradicts itself (its reassembling decode shows fewer command sets
    than its plain PDV walk, or a command set whose group length does not add up; see
    ``tshark_oracle.unreliable_frames``) are compared loosely: our decode must contain the
    consistent command sets tshark showed there and have as many as tshark's plain PDV walk.
    """
    name = Path(path).name
    analysis = _ours(path)
    theirs = _theirs(path)
    assert not analysis.errors, analysis.errors
    unreliable = set(theirs.unreliable_frames)
    ours_all = _ordered(_our_messages(analysis))
    theirs_all = _ordered(theirs.commands)
    assert theirs_all, f"tshark decoded no DICOM command in {path} (ports forced: {theirs.ports})"

    theirs_consistent = _ordered([c for c in theirs.commands if c["consistent"]])
    for frame in sorted(unreliable):
        ours_here = [k for k in ours_all if k[0] == frame]
        theirs_here = [k for k in theirs_consistent if k[0] == frame]
        missing = Counter(theirs_here) - Counter(ours_here)
        assert not missing, f"{name} frame {frame}: tshark command sets missing from ours: {list(missing)}"
        expected = theirs.command_pdvs_unreassembled.get(frame, 0)
        assert len(ours_here) == expected, (
            f"{name} frame {frame}: ours {len(ours_here)} command sets, tshark's PDV walk {expected}")

    ours_msgs = [k for k in ours_all if k[0] not in unreliable]
    theirs_msgs = [k for k in theirs_all if k[0] not in unreliable]
    if reference:
        assert ours_msgs == theirs_msgs, (
            f"{name}: command sets differ (ours {len(ours_msgs)}, tshark {len(theirs_msgs)}"
            + (f", frames {sorted(unreliable)} left out" if unreliable else "") + ")\n"
            + _diff(ours_msgs, theirs_msgs) + _frame_shift_hint(ours_msgs, theirs_msgs))
    else:
        missing = Counter(theirs_msgs) - Counter(ours_msgs)
        assert not missing, (
            f"{name}: {sum(missing.values())} command set(s) decoded by tshark are missing "
            "or different in ours:\n" + "\n".join(_describe(k) for k in sorted(missing)[:20])
            + "\n" + _diff(ours_msgs, theirs_msgs))

    ours_assocs, theirs_assocs = _our_associations(analysis), _tshark_associations(theirs)
    assoc_names = ("rq_frame", *ASSOCIATION_FIELDS)
    if reference:
        assert ours_assocs == theirs_assocs, (
            f"{name}: associations differ\nfields: {assoc_names}\n"
            f"ours:   {ours_assocs}\ntshark: {theirs_assocs}")
    else:
        missing = Counter(theirs_assocs) - Counter(ours_assocs)
        assert not missing, f"{name}: associations missing from ours: {list(missing)}"

    ours_ops, theirs_ops = _our_operations(analysis), _tshark_operations(theirs)
    for frame, (final_frame, _values) in list(theirs_ops.items()):
        last = final_frame if final_frame is not None else float("inf")
        if any(frame <= f <= last for f in unreliable):
            # tshark lost a command set inside this C-GET: it cannot tell its result
            del theirs_ops[frame]
            ours_ops.pop(frame, None)
    theirs_values = {frame: values for frame, (_final, values) in theirs_ops.items()}
    if reference:
        assert ours_ops == theirs_values, (
            f"{name}: C-GET operations differ\nfields: {OPERATION_FIELDS}\n"
            + "\n".join(f"request frame {k}: ours {ours_ops.get(k)} tshark {theirs_values.get(k)}"
                        for k in sorted(set(ours_ops) | set(theirs_values), key=lambda x: (x is None, x or 0))
                        if ours_ops.get(k) != theirs_values.get(k)))
    else:
        # only C-GETs whose final response tshark saw are comparable
        for frame, (final_frame, values) in theirs_ops.items():
            if final_frame is None:
                continue
            assert ours_ops.get(frame) == values, (
                f"{name}: C-GET at frame {frame}: ours {ours_ops.get(frame)} tshark {values}")


SAMPLE_FILES = _sample_files()
MANIFEST_ENTRIES = _manifest()


def test_tshark_is_available():
    """The oracle itself: a missing tshark is a failure of this suite, never a skip."""
    path = oracle.tshark_path()
    assert os.access(path, os.X_OK)
    assert "TShark" in oracle.tshark_version()


def test_oracle_raises_without_tshark(monkeypatch):
    monkeypatch.setenv("TSHARK", "/nonexistent/tshark")
    monkeypatch.setattr(oracle.shutil, "which", lambda name: None)
    real_isfile = os.path.isfile
    monkeypatch.setattr(oracle.os.path, "isfile", lambda p: p != "/usr/bin/tshark" and real_isfile(p))
    with pytest.raises(oracle.TsharkUnavailable, match="tshark not found"):
        oracle.decode(__file__)


def test_oracle_normalisation():
    assert oracle._int("0x00000100") == 0x100
    assert oracle._int(272) == 272
    assert oracle._int("65280") == 0xFF00
    assert oracle._int(["7"]) == 7
    assert oracle.strip_uid("1.2.840.10008.5.1.4.1.1.2 (CT Image Storage)") == "1.2.840.10008.5.1.4.1.1.2"
    assert oracle.strip_uid("1.2.3\x00") == "1.2.3"
    assert oracle.strip_string("GETSCU          ") == "GETSCU"
    assert _comment("E" * 50 + "...") == _comment("E" * 60) == "E" * 50


def test_sample_captures_present():
    assert MANIFEST.exists(), f"{MANIFEST} is missing: the sample captures have not been generated"
    assert MANIFEST_ENTRIES, f"{MANIFEST} lists no captures"
    missing = [name for name in MANIFEST_ENTRIES if not (SAMPLES / name).exists()]
    assert not missing, f"captures listed in the manifest but absent: {missing}"


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, id=n) for n in SAMPLE_FILES if tshark_is_reference(n, MANIFEST_ENTRIES.get(n))],
)
def test_sample_matches_tshark(name):
    compare_with_tshark(str(SAMPLES / name), reference=True)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, id=n) for n in SAMPLE_FILES if not tshark_is_reference(n, MANIFEST_ENTRIES.get(n))],
)
def test_sample_contains_tshark_decode(name):
    """Damaged captures: what tshark decoded must be in ours, with the same values."""
    compare_with_tshark(str(SAMPLES / name), reference=False)


def test_reference_classification():
    """Damaged captures (cut file, lost segment) are exactly the ones not used as a reference."""
    excluded = {n for n in SAMPLE_FILES if not tshark_is_reference(n, MANIFEST_ENTRIES.get(n))}
    for name in excluded:
        entry = MANIFEST_ENTRIES.get(name, {})
        assert entry.get("kind") != "real", f"{name}: a real recording should be a tshark reference"


# -- a fresh recording --------------------------------------------------------------------------------

FRESH_TIMEOUT = 10  # seconds: pynetdicom ACSE/DIMSE/network timeouts and every wait below


def _tcpdump_path() -> str:
    for candidate in (shutil.which("tcpdump"), "/usr/sbin/tcpdump", "/usr/bin/tcpdump"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("tcpdump not found: the fresh-recording differential test needs it")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop one process we started, by its pid: SIGINT (tcpdump flushes), then SIGTERM, SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


@contextlib.contextmanager
def _tcpdump(path: Path, port: int, buffer_kib: int | None = None):
    cmd = [_tcpdump_path(), "-i", "lo", "--immediate-mode", "-U", "-n", "-w", str(path), f"tcp port {port}"]
    if buffer_kib:  # bulk over loopback outruns the default capture buffer: frames get dropped
        cmd[1:1] = ["-B", str(buffer_kib)]
    if os.geteuid() == 0:
        cmd[1:1] = ["-Z", "root"]  # keep writing into a 0700 temp dir
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for raw in iter(proc.stderr.readline, b""):
            lines.append(raw.decode("utf-8", "replace").rstrip())
            if "listening on" in lines[-1]:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(FRESH_TIMEOUT) or proc.poll() is not None:
            raise AssertionError(f"tcpdump did not start: {' '.join(cmd)}: {lines}")
        time.sleep(0.2)
        yield lines
        time.sleep(0.3)  # let the last packets reach the file
    finally:
        _stop(proc)
        reader.join(timeout=5)
        if proc.stderr:
            proc.stderr.close()


def _ct_dataset(n: int):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom.sop_class import CTImageStorage

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.4711.99.{n}"
    ds.PatientID = "FRESH"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.4711.99"
    ds.Rows, ds.Columns = 32, 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * 16
    return ds


def _record_fresh_exchange(path: Path) -> dict:
    """One association: C-GET 1 (3 sub-ops answered 0000/B000/A700 -> final B000) and C-GET 2
    (failure A900 with ErrorComment and a two-valued OffendingElement). Small PDUs so that
    command sets and data sets are fragmented. Returns what the SCU saw."""
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import CTImageStorage
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as StudyGet

    datasets = [_ct_dataset(n) for n in (1, 2, 3)]
    store_status = {datasets[1].SOPInstanceUID: 0xB000, datasets[2].SOPInstanceUID: 0xA700}

    def on_get(event):
        yield len(datasets)
        if event.identifier.QueryRetrieveLevel != "STUDY":
            failure = Dataset()
            failure.Status = 0xA900
            failure.ErrorComment = "Level not valid for Study Root"
            failure.OffendingElement = [0x00080052, 0x00100020]
            yield failure, None
            return
        for ds in datasets:
            yield 0xFF00, ds

    port = _free_port()
    scp = AE(ae_title="FRESHSCP")
    scp.maximum_pdu_size = 1024
    scp.acse_timeout = scp.dimse_timeout = scp.network_timeout = FRESH_TIMEOUT
    scp.add_supported_context(StudyGet, [ImplicitVRLittleEndian])
    scp.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian], scu_role=False, scp_role=True)
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_GET, on_get)])
    seen: dict[str, Any] = {"port": port, "statuses": {}}
    assoc = None
    try:
        with _tcpdump(path, port):
            scu = AE(ae_title="FRESHSCU")
            scu.maximum_pdu_size = 512
            scu.acse_timeout = scu.dimse_timeout = scu.network_timeout = FRESH_TIMEOUT
            scu.add_requested_context(StudyGet, [ImplicitVRLittleEndian])
            scu.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])

            def on_store(event):
                return store_status.get(event.request.AffectedSOPInstanceUID, 0x0000)

            assoc = scu.associate("127.0.0.1", port, ae_title="FRESHSCP",
                                  ext_neg=[build_role(CTImageStorage, scp_role=True)],
                                  evt_handlers=[(evt.EVT_C_STORE, on_store)])
            assert assoc.is_established, "fresh association was not established"
            for message_id, level in ((1, "STUDY"), (2, "PATIENT")):
                query = Dataset()
                query.QueryRetrieveLevel = level
                query.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.4711.99"
                statuses = []
                for status, _identifier in assoc.send_c_get(query, StudyGet, msg_id=message_id):
                    assert status is not None and "Status" in status, "C-GET timed out or aborted"
                    statuses.append(int(status.Status))
                seen["statuses"][message_id] = statuses
            assoc.release()
    finally:
        if assoc is not None and assoc.is_established:
            assoc.abort()
        server.shutdown()
    return seen


def test_fresh_exchange_matches_tshark(tmp_path):
    tmp_path.chmod(0o755)
    path = tmp_path / "fresh.pcap"
    started = time.monotonic()
    seen = _record_fresh_exchange(path)
    assert time.monotonic() - started < 30
    assert seen["statuses"] == {1: [0xFF00, 0xFF00, 0xFF00, 0xB000], 2: [0xA900]}, seen
    compare_with_tshark(str(path), reference=True)
    # and both decoders agree with what the peers saw
    operations = {row["message_id"]: row for row in _ours(str(path)).rows("operations")}
    assert operations[1]["final_status"] == 0xB000 and operations[1]["sub_operations"] == 3
    assert (operations[1]["completed"], operations[1]["failed"], operations[1]["warning"]) == (1, 1, 1)
    assert operations[2]["final_status"] == 0xA900
    assert operations[2]["error_comment"] == "Level not valid for Study Root"
    assert operations[2]["offending_element"] == "(0008,0052) (0010,0020)"
