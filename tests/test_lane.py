"""The fast lane (lane.py) changes how fast, never what comes out.

Every capture here is analysed twice, with the lane and without it (every
record down the layer-by-layer path), and every table must come out the same,
frame numbers included. The generated captures also check that the lane did
take the bulk of the records, so that the comparison is not vacuous.
"""

from __future__ import annotations

import gzip
import random
import struct
import sys
from pathlib import Path

import pytest
from fuzz_support import EXAMPLES, FUZZ, CaptureFile, Unit, flip, split_capture
from hypothesis import given
from hypothesis import strategies as st

from trace_analyzer.analysis import Analysis, analyze_capture

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.name for p in (ROOT / "sample_pcaps").iterdir() if p.name != "manifest.json"
                 and p.suffix in (".pcap", ".pcapng", ".gz"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from make_capture import make  # noqa: E402


def _both(path: Path) -> tuple[dict, dict, int, int]:
    """Tables with and without the lane, the records the lane took, and all records."""
    fast = analyze_capture(str(path))
    slow = analyze_capture(str(path), fast_lane=False)
    assert slow.lane_records == 0
    return (Analysis([fast], []).to_dict(), Analysis([slow], []).to_dict(), fast.lane_records,
            fast.summary.frames)


def _assert_same(path: Path) -> int:
    fast, slow, taken, frames = _both(path)
    for table in slow:
        assert fast[table] == slow[table], f"{path.name}: table {table} differs with the fast lane"
    assert frames == slow["captures"][0]["frames"]
    return taken


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_same_with_and_without_lane(name):
    _assert_same(ROOT / "sample_pcaps" / name)


# (instances, size, mss, max PDU, share of records the lane must take): Ethernet MTU,
# loopback segments holding several PDUs, small PDUs (the lane starts after the 8 KiB head),
# odd sizes, PDUs larger than segments. The lane never takes the records of a data set's
# first PDU (its head is kept), nor one that ends the run; with 1 KiB PDUs in 64 KiB
# segments every segment holds a data set's first or last PDU, so there it takes none.
SHAPES = [(6, 200_000, 1448, 16384, 0.8), (4, 300_000, 65495, 16384, 0.2),
          (5, 100_000, 1448, 4096, 0.7), (3, 150_001, 1000, 65536, 0.45),
          (3, 120_000, 65495, 1024, 0.0), (4, 70_000, 536, 16384, 0.65)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])))
def test_generated_bulk_goes_by_the_lane(shape, tmp_path):
    instances, size, mss, max_pdu, share = shape
    path = tmp_path / "bulk.pcap"
    packets = make(str(path), instances, size, mss, max_pdu, 2)
    fast, slow, taken, frames = _both(path)
    assert fast == slow
    assert frames == packets
    assert taken >= share * packets, (taken, packets)
    # And the counting is right: every sub-operation's data set has the size written.
    stores = [row for row in fast["messages"] if row["command"] == "C-STORE-RQ"]
    assert len(stores) == instances // 2 * 2
    # make_capture pads the Pixel Data to even length: a data set of an odd size is one short.
    assert {row["dataset_bytes"] for row in stores} == {size - size % 2}


def _interleave(raw: bytes, rng: random.Random, acks: bool) -> bytes:
    """Two associations' records interleaved in random runs, each connection's order kept;
    with ``acks``, a bare ACK back after some data records."""
    capture = split_capture(raw)
    by_port: dict[bytes, list[Unit]] = {}
    for unit in capture.units:
        frame = unit.raw[16:]
        ports = tuple(sorted((frame[34:36], frame[36:38])))
        by_port.setdefault(b"".join(ports), []).append(unit)
        if acks and len(frame) > 54 and rng.random() < 0.2:
            by_port[b"".join(ports)].append(_ack_for(unit))
    queues = list(by_port.values())
    out: list[Unit] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        run = rng.randrange(1, 12)
        out.extend(queue[:run])
        del queue[:run]
    return CaptureFile("pcap", capture.head, out, True).to_bytes()


def _ack_for(unit: Unit) -> Unit:
    """A bare ACK from the receiver of this data record."""
    header, frame = unit.raw[:16], unit.raw[16:]
    seq, ack = struct.unpack_from(">II", frame, 38)
    payload = len(frame) - 54
    ip = bytearray(frame[14:34])
    ip[2:4] = (40).to_bytes(2, "big")
    ip[12:16], ip[16:20] = frame[30:34], frame[26:30]
    tcp = (frame[36:38] + frame[34:36] + struct.pack(">II", ack, seq + payload)
           + b"\x50\x10\xff\xff\x00\x00\x00\x00")
    data = frame[6:12] + frame[0:6] + frame[12:14] + bytes(ip) + tcp
    sec, usec = struct.unpack_from("<II", header)
    return Unit(struct.pack("<IIII", sec, usec, len(data), len(data)) + data, True, 16)


@pytest.mark.parametrize("acks", [False, True], ids=["data-only", "with-acks"])
def test_interleaved_associations(acks, tmp_path):
    source = tmp_path / "two.pcap"
    make(str(source), 8, 90_000, 1448, 16384, 2)
    rng = random.Random(f"interleave:{acks}")
    for round_ in range(3):
        path = tmp_path / f"mixed{round_}.pcap"
        path.write_bytes(_interleave(source.read_bytes(), rng, acks))
        taken = _assert_same(path)
        assert taken > 0, "the lane never ran on interleaved associations"


KINDS = ["drop", "duplicate", "reorder", "flip", "cut", "retransmit-into-run"]


def _damage(units: list, index: int, kind: str, rng: random.Random) -> bool:
    """Damage the records around ``index`` in one of the ways any capture format can
    suffer; False for a kind this does not do."""
    if kind == "drop":
        del units[index]
    elif kind == "duplicate":
        units.insert(index + rng.randrange(1, 4), units[index])
    elif kind == "reorder":
        units.insert(index + rng.randrange(2, 6), units.pop(index))
    elif kind == "flip":
        # In the TCP/IP headers or the first bytes of the payload, where PDU headers sit.
        units[index] = flip(units[index], [rng.randrange(14, 120)], [rng.randrange(1, 256)])
    elif kind == "retransmit-into-run":
        units.insert(index + 20, units[index - rng.randrange(0, 8)])
    else:
        return False
    return True


@pytest.mark.parametrize("kind", KINDS)
def test_damage_inside_a_run(kind, tmp_path):
    """Damage where the lane runs: it must hand over to the ordinary path exactly."""
    source = tmp_path / "run.pcap"
    make(str(source), 3, 120_000, 1448, 16384, 1)
    raw = source.read_bytes()
    capture = split_capture(raw)
    rng = random.Random(f"lane:{kind}")
    count = len(capture.units)
    for example in range(max(4, EXAMPLES // 2)):
        units = list(capture.units)
        index = rng.randrange(10, count - 5)
        if not _damage(units, index, kind, rng):  # a cut
            cut = sum(len(u.raw) for u in units[:index]) + rng.randrange(1, len(units[index].raw))
            path = tmp_path / f"{kind}{example}.pcap"
            path.write_bytes((capture.head + b"".join(u.raw for u in units))[:cut])
            _assert_same(path)
            continue
        path = tmp_path / f"{kind}{example}.pcap"
        path.write_bytes(CaptureFile("pcap", capture.head, units, True).to_bytes())
        _assert_same(path)


# -- pcapng: the lane walks Enhanced Packet Blocks ---------------------------------------------

from test_pcapng import custom, epb, idb, isb, nrb, opb, shb, spb, to_pcapng  # noqa: E402

#: (byte order, if_tsresol): microseconds, big-endian nanoseconds, binary fractions.
NG_FORMATS = [("<", None), (">", 9), ("<", 0x80 | 20)]


def _tables(path: Path, fast_lane: bool = True) -> tuple[dict, int]:
    analyzer = analyze_capture(str(path), fast_lane=fast_lane)
    return Analysis([analyzer], []).to_dict(), analyzer.lane_records


def _without_capture(tables: dict) -> dict:
    """The tables with the capture's name left out (the same capture under another name)."""
    # capture_set names the capture too (a capture alone is its own set)
    return {name: [{key: value for key, value in row.items() if key not in ("capture", "capture_set")}
                   for row in rows]
            for name, rows in tables.items()}


def _as_pcapng(source: Path, path: Path, endian: str, tsresol: int | None) -> int:
    """Write ``source`` (a pcap) as pcapng at ``path`` and check that it comes out as the pcap:
    the same tables with and without the lane, the lane taking the same records, and (with
    decimal timestamps, which convert exactly) the same tables as the pcap's."""
    path.write_bytes(to_pcapng(source.read_bytes(), endian, tsresol))
    fast, slow, taken, frames = _both(path)
    assert fast == slow
    pcap_tables, pcap_taken = _tables(source)
    assert taken == pcap_taken
    assert frames == pcap_tables["captures"][0]["frames"]
    if tsresol is None or tsresol < 0x80:
        assert _without_capture(fast) == _without_capture(pcap_tables)
    return taken


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])))
def test_generated_bulk_pcapng_goes_by_the_lane(shape, tmp_path):
    instances, size, mss, max_pdu, share = shape
    source = tmp_path / "bulk.pcap"
    packets = make(str(source), instances, size, mss, max_pdu, 2)
    endian, tsresol = NG_FORMATS[SHAPES.index(shape) % len(NG_FORMATS)]
    taken = _as_pcapng(source, tmp_path / "bulk.pcapng", endian, tsresol)
    assert taken >= share * packets, (taken, packets)


@pytest.mark.parametrize("acks", [False, True], ids=["data-only", "with-acks"])
def test_interleaved_associations_pcapng(acks, tmp_path):
    source = tmp_path / "two.pcap"
    make(str(source), 8, 90_000, 1448, 16384, 2)
    rng = random.Random(f"interleave-ng:{acks}")
    for round_ in range(3):
        mixed = tmp_path / f"mixed{round_}.pcap"
        mixed.write_bytes(_interleave(source.read_bytes(), rng, acks))
        endian, tsresol = NG_FORMATS[round_]
        taken = _as_pcapng(mixed, tmp_path / f"mixed{round_}.pcapng", endian, tsresol)
        assert taken > 0, "the lane never ran on interleaved associations"


def _fields(unit: Unit) -> tuple[int, int, bytes, int]:
    """(interface, timestamp, data, original length) of a little-endian EPB."""
    _, _, interface, high, low, caplen, wirelen = struct.unpack_from("<IIIIIII", unit.raw)
    return interface, high << 32 | low, unit.raw[28:28 + caplen], wirelen


def _block(raw: bytes) -> Unit:
    return Unit(raw, False)


NG_KINDS = KINDS + ["blocks-between", "simple-packet", "obsolete-packet", "unknown-interface",
                    "second-interface", "other-link-type", "new-section", "odd-length", "caplen-beyond"]


@pytest.mark.parametrize("kind", NG_KINDS)
def test_damage_inside_a_run_pcapng(kind, tmp_path):
    """What may sit or break inside a run of Enhanced Packet Blocks: the lane hands over
    to the ordinary path exactly, and takes up again where it can."""
    source = tmp_path / "run.pcap"
    make(str(source), 3, 120_000, 1448, 16384, 1)
    capture = split_capture(to_pcapng(source.read_bytes()))
    head, packets = capture.units[:2], capture.units[2:]  # the section header and interface first
    rng = random.Random(f"lane-ng:{kind}")
    count = len(packets)
    for example in range(max(4, EXAMPLES // 2)):
        units = list(packets)
        index = rng.randrange(10, count - 30)
        interface, stamp, data, wirelen = _fields(units[index])
        if _damage(units, index, kind, rng):
            pass
        elif kind == "blocks-between":
            for offset, make_block in enumerate(rng.sample([isb, nrb, custom], 3)):
                units.insert(index + offset * rng.randrange(1, 5), _block(make_block()))
        elif kind == "simple-packet":
            # No timestamp: each takes the time of the record before it, which the lane may
            # have taken (every few records, so that some end a data set and show their time).
            for at in range(index, len(units), rng.randrange(3, 8)):
                interface, stamp, data, wirelen = _fields(units[at])
                units[at] = Unit(spb(data, wirelen=wirelen), True, 12)
            if example % 2:
                del units[index + 1:]  # the capture's last time is then an SPB's
        elif kind == "obsolete-packet":
            units[index] = Unit(opb(interface, stamp, data), True, 28)
        elif kind == "unknown-interface":
            units[index] = Unit(epb(5, stamp, data, wirelen=wirelen), True, 28)
        elif kind == "second-interface":
            # Another Ethernet interface (nanoseconds): the lane goes on over both.
            units.insert(index, _block(idb(1, tsresol=9)))
            for at in range(index + 1, len(units), rng.randrange(2, 5)):
                interface, stamp, data, wirelen = _fields(units[at])
                units[at] = Unit(epb(1, stamp * 1000, data, wirelen=wirelen), True, 28)
        elif kind == "other-link-type":  # the lane stops for good; the rest goes the ordinary way
            units.insert(index, _block(idb(101)))
        elif kind == "new-section":
            # A big-endian section in nanoseconds from here on, its interface declared anew.
            rest = [_fields(unit) for unit in units[index:]]
            units[index:] = [_block(shb(">")), _block(idb(1, ">", tsresol=9))] + [
                Unit(epb(i, s * 1000, d, ">", w), True, 28) for i, s, d, w in rest]
        elif kind == "odd-length":
            raw = bytearray(units[index].raw)
            struct.pack_into("<I", raw, 4, len(raw) + rng.choice([-2, 2, 4 * rng.randrange(1, 4) + 1]))
            units[index] = Unit(bytes(raw), True, 28)
        elif kind == "caplen-beyond":
            raw = bytearray(units[index].raw)
            struct.pack_into("<I", raw, 20, len(raw) - 31)
            units[index] = Unit(bytes(raw), True, 28)
        else:
            start = sum(len(u.raw) for u in head + units[:index])
            # Inside a block, or (every other time) between two: the lane then walks to the end.
            cut = start + (rng.randrange(1, len(units[index].raw)) if example % 2 else 0)
            path = tmp_path / f"{kind}{example}.pcapng"
            path.write_bytes(b"".join(u.raw for u in head + units)[:cut])
            _assert_same(path)
            continue
        path = tmp_path / f"{kind}{example}.pcapng"
        path.write_bytes(b"".join(u.raw for u in head + units))
        taken = _assert_same(path)
        walked = kind in ("blocks-between", "second-interface", "new-section")
        if walked or (kind == "simple-packet" and not example % 2):
            assert taken > 0.5 * count, (kind, taken, count)


@pytest.mark.parametrize("cut", [None, 2 / 3])
def test_gzip_pcapng_by_the_lane(cut, tmp_path):
    """Inflated in blocks rather than mapped: the lane walks the blocks read."""
    source = tmp_path / "run.pcap"
    make(str(source), 4, 150_000, 1448, 16384, 2)
    packed = gzip.compress(to_pcapng(source.read_bytes(), ">", 9))
    path = tmp_path / "run.pcapng.gz"
    path.write_bytes(packed if cut is None else packed[:int(len(packed) * cut)])
    taken = _assert_same(path)
    assert taken > 0
    fast, _ = _tables(path)
    problems = [row["detail"] for row in fast["problems"]]
    if cut is None:
        assert _without_capture(fast) == _without_capture(_tables(source)[0])
    else:
        assert any("gzip-compressed capture is cut short" in text for text in problems), problems


# -- real peers -------------------------------------------------------------------------------


def _record_real_bulk(path: Path, mss: int | None, instances: int = 4) -> dict:
    """A pynetdicom SCU retrieving ``instances`` CT images of 1 MiB of pixels each from a
    pynetdicom SCP over loopback, recorded by tcpdump. ``mss``: the SCU's socket announces
    this Maximum Segment Size, so that the SCP's data comes in Ethernet-size segments."""
    import socket

    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import CTImageStorage
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as StudyGet
    from pynetdicom.transport import AssociationSocket
    from test_tshark_differential import FRESH_TIMEOUT, _ct_dataset, _free_port, _tcpdump

    datasets = []
    for n in range(1, instances + 1):
        ds = _ct_dataset(n)
        ds.Rows, ds.Columns = 512, 1024
        ds.PixelData = bytes(range(256)) * (512 * 1024 * 2 // 256)
        datasets.append(ds)

    def on_get(event):
        yield len(datasets)
        for ds in datasets:
            yield 0xFF00, ds

    create = AssociationSocket._create_socket

    def create_with_mss(self, address):
        sock = create(self, address)
        if mss is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        return sock

    port = _free_port()
    scp = AE(ae_title="BULKSCP")
    scp.acse_timeout = scp.dimse_timeout = scp.network_timeout = FRESH_TIMEOUT
    scp.add_supported_context(StudyGet, [ImplicitVRLittleEndian])
    scp.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian], scu_role=False, scp_role=True)
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_GET, on_get)])
    stored: list[int] = []
    assoc = None
    AssociationSocket._create_socket = create_with_mss
    try:
        with _tcpdump(path, port, buffer_kib=65536):
            scu = AE(ae_title="BULKSCU")
            scu.acse_timeout = scu.dimse_timeout = scu.network_timeout = FRESH_TIMEOUT
            scu.add_requested_context(StudyGet, [ImplicitVRLittleEndian])
            scu.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])

            def on_store(event):
                stored.append(len(event.request.DataSet.getvalue()))
                return 0x0000

            assoc = scu.associate("127.0.0.1", port, ae_title="BULKSCP",
                                  ext_neg=[build_role(CTImageStorage, scp_role=True)],
                                  evt_handlers=[(evt.EVT_C_STORE, on_store)])
            assert assoc.is_established, "association was not established"
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.4711.99"
            statuses = [int(status.Status) for status, _ in assoc.send_c_get(query, StudyGet, msg_id=1)]
            assoc.release()
    finally:
        AssociationSocket._create_socket = create
        if assoc is not None and assoc.is_established:
            assoc.abort()
        server.shutdown()
    return {"stored": stored, "statuses": statuses}


@pytest.mark.parametrize("mss", [1448, None], ids=["ethernet-mss", "loopback-mss"])
def test_real_peers_bulk_retrieve(mss, tmp_path):
    """Real TCP stacks (timestamps, ACKs back, PSH flags) and real pynetdicom PDUs: the lane
    must take the bulk and the tables must be exactly those of the ordinary path."""
    tmp_path.chmod(0o755)
    path = tmp_path / "bulk.pcap"
    seen = _record_real_bulk(path, mss)
    assert seen["statuses"][-1] == 0x0000 and len(seen["stored"]) == 4, seen
    fast, slow, taken, frames = _both(path)
    assert fast == slow
    # Most records are the middle of the four 1 MiB data sets.
    assert taken > (0.6 if mss else 0.5) * frames, (taken, frames)
    subs = fast["sub_operations"]
    # What the storage SCP received is what we counted, data set by data set.
    assert sorted(row["dataset_bytes"] for row in subs) == sorted(seen["stored"])
    [operation] = fast["operations"]
    assert operation["completed"] == 4 and operation["status_hex"] == "0x0000"


def test_real_dcmtk_peers_bulk_retrieve(tmp_path):
    """DCMTK getscu retrieving five 1 MiB CT images from DCMTK dcmqrscp over loopback."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from samples.capture import free_port
    from samples.dcmtk import DcmQrScp, run_getscu
    from samples.instances import study_instances, study_uid
    from test_tshark_differential import _tcpdump

    tmp_path.chmod(0o755)
    datasets = study_instances(1)
    for number, ds in enumerate(datasets):
        ds.Rows, ds.Columns = 512, 1024
        ds.PixelData = bytes((number + i) % 251 for i in range(256)) * (512 * 1024 * 2 // 256)
    path = tmp_path / "dcmtk_bulk.pcap"
    port = free_port()
    with DcmQrScp(tmp_path, port, datasets) as scp:
        with _tcpdump(path, port, buffer_kib=65536):
            seen = run_getscu(port, tmp_path, {"StudyInstanceUID": study_uid(1)}, "STUDY",
                              called_ae=scp.ae_title)
    assert seen["files_written"] == len(datasets), seen
    fast, slow, taken, frames = _both(path)
    assert fast == slow
    assert taken > 0.5 * frames, (taken, frames)
    assert fast["problems"] == []
    [operation] = fast["operations"]
    assert operation["completed"] == len(datasets) and operation["status_hex"] == "0x0000"
    sizes = [row["dataset_bytes"] for row in fast["sub_operations"]]
    assert len(sizes) == len(datasets) and min(sizes) > 1024 * 1024, sizes


# -- fuzzing: any mix of damage, lane or no lane ---------------------------------------------

_FUZZ_SOURCE: dict[str, CaptureFile] = {}


def _fuzz_source(folder: Path) -> CaptureFile:
    """Two associations, small PDUs (many boundaries inside segments), ACKs back now and then."""
    if "capture" not in _FUZZ_SOURCE:
        path = folder / "fuzz_source.pcap"
        make(str(path), 4, 40_000, 1448, 4096, 2)
        mixed = _interleave(path.read_bytes(), random.Random("fuzz-source"), acks=True)
        path.write_bytes(mixed)
        # Undamaged, the lane must take a good share: else the comparisons prove nothing.
        assert _assert_same(path) > 0.3 * len(split_capture(mixed).units)
        _FUZZ_SOURCE["capture"] = split_capture(mixed)
    return _FUZZ_SOURCE["capture"]


_DAMAGE = st.tuples(st.sampled_from(KINDS[:4] + ["retransmit-into-run", "ack-storm"]),
                    st.floats(0.0, 1.0), st.integers(0, 2**16))


@FUZZ
@given(damages=st.lists(_DAMAGE, min_size=1, max_size=4), cut=st.none() | st.floats(0.05, 1.0))
def test_fuzzed_damage_same_with_and_without_lane(tmp_path_factory, damages, cut):
    folder = tmp_path_factory.mktemp("lanefuzz")
    capture = _fuzz_source(tmp_path_factory.getbasetemp())
    units = list(capture.units)
    for kind, where, seed in damages:
        rng = random.Random(seed)
        index = min(len(units) - 25, max(10, int(where * len(units))))
        if kind == "ack-storm":  # bare ACKs back, many in a row, in the middle of a run
            units[index:index] = [_ack_for(units[index])] * rng.randrange(1, 6)
        else:
            _damage(units, index, kind, rng)
    raw = CaptureFile("pcap", capture.head, units, True).to_bytes()
    if cut is not None:
        raw = raw[:max(25, int(cut * len(raw)))]
    path = folder / "damaged.pcap"
    path.write_bytes(raw)
    _assert_same(path)


def _tagged(unit: Unit, vlan: int = 20) -> Unit:
    """The record with an 802.1Q tag inserted after the MAC addresses."""
    header, frame = unit.raw[:16], unit.raw[16:]
    data = frame[:12] + struct.pack(">HH", 0x8100, vlan) + frame[12:]
    sec, usec = struct.unpack_from("<II", header)
    return Unit(struct.pack("<IIII", sec, usec, len(data), len(data)) + data, True, 16)


def _reset_from(unit: Unit) -> Unit:
    """An RST from the sender of this (untagged) record."""
    header, frame = unit.raw[:16], bytearray(unit.raw[16:16 + 54])
    frame[16:18] = (40).to_bytes(2, "big")
    frame[47] = 0x14  # RST, ACK
    sec, usec = struct.unpack_from("<II", header)
    return Unit(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + bytes(frame), True, 16)


def test_other_direction_in_another_link_form_disarms(tmp_path):
    """The data come untagged while the other direction is VLAN-tagged (a SPAN port seeing
    the two directions on two VLANs), and that other direction resets the connection in the
    middle of a run: the lane must let go at once, and the data after the reset must not be
    counted into a connection that is gone."""
    source = tmp_path / "run.pcap"
    make(str(source), 3, 200_000, 1448, 16384, 1)
    capture = split_capture(source.read_bytes())
    client_port = capture.units[0].raw[16 + 34:16 + 36]  # the SYN's source port
    units = [_tagged(u) if u.raw[16 + 34:16 + 36] == client_port else u for u in capture.units]
    baseline = tmp_path / "tagged.pcap"
    baseline.write_bytes(CaptureFile("pcap", capture.head, units, True).to_bytes())
    assert _assert_same(baseline) > 0.5 * len(units)  # the data direction still goes by the lane
    client_records = [i for i, u in enumerate(units) if u.raw[16 + 12:16 + 14] == b"\x81\x00"]
    # In the middle of the second data set: a record of the client's, made an RST.
    middle = len(units) // 2
    after = next(i for i in client_records if i > middle // 2)
    reset = _tagged(_reset_from(capture.units[after]))
    for at in (middle, middle + 7, middle + 30):
        damaged = units[:at] + [reset] + units[at:]
        path = tmp_path / f"reset{at}.pcap"
        path.write_bytes(CaptureFile("pcap", capture.head, damaged, True).to_bytes())
        fast, slow, taken, frames = _both(path)
        assert fast == slow
        assert taken > 0


def test_generated_bulk_with_acks_back(tmp_path):
    # make_capture --acks: a bare ACK back after every second segment, as delayed ACK does.
    path = tmp_path / "acks.pcap"
    packets = make(str(path), 4, 200_000, 1448, 16384, 2, acks=True)
    fast, slow, taken, frames = _both(path)
    assert fast == slow and frames == packets
    acks = packets - make(str(tmp_path / "plain.pcap"), 4, 200_000, 1448, 16384, 2)
    assert acks > 0.3 * packets
    assert taken > 0.8 * packets, (taken, packets)  # the ACKs go by the lane too


# -- what may happen in the middle of a data set -------------------------------------------


def _pdus(stream: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(stream):
        out.append(stream[at:at + 6 + int.from_bytes(stream[at + 2:at + 6], "big")])
        at += len(out[-1])
    return out


def _store_stream(size: int, uid: str = "1.2.826.0.1.3680043.8.498.77.1") -> list[bytes]:
    """The PDUs of one C-STORE-RQ (16 KiB PDUs) of a ``size``-byte data set."""
    from builders import CT, command_set, identifier, message

    command = command_set({0x0002: CT, 0x0100: 0x0001, 0x0110: 100, 0x0700: 0, 0x0800: 0x0001, 0x1000: uid})
    header = identifier(SOPClassUID=CT, SOPInstanceUID=uid)
    bulk = size - len(header) - 8
    bulk -= bulk % 2
    return _pdus(message(3, command, header + struct.pack("<HHI", 0x7FE0, 0x0010, bulk) + bytes(bulk)))


def _mid_data_set_capture(path: Path, server_stream: bytes, client_between: bytes = b"",
                          cut: int = 0, after_client: int = 0) -> None:
    """SCU and SCP open an association and a C-GET; the SCP sends ``server_stream`` in
    1448-byte segments. With ``client_between``, the SCU sends it after ``cut`` of those
    segments and ``after_client`` more of them follow; then the SCP resets."""
    from builders import CT, PATIENT_ROOT_GET, associate, c_get_rq
    from fuzz_support import Conversation

    talk = Conversation(("127.0.0.1", 40000), ("127.0.0.2", 11112), mss=1448)
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    talk.send("c", associate(True, contexts, roles=[(CT, 0, 1)], max_pdu=16384))
    talk.send("s", associate(False, contexts, roles=[(CT, 0, 1)], max_pdu=16384))
    talk.send("c", c_get_rq(1))
    segments = list(talk.segments("s", server_stream))
    if client_between:
        talk.frames.extend(segments[:cut])
        talk.send("c", client_between)
        talk.frames.extend(segments[cut:cut + after_client])
    else:
        talk.frames.extend(segments)
    talk.frames.append(talk._emit("s", 0x14))  # RST
    records = [struct.pack("<IIII", 1_700_000_000, n, len(f), len(f)) + f for n, f in enumerate(talk.frames)]
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + b"".join(records))


@pytest.mark.parametrize("foreign", ["release_rq", "release_rp", "abort"])
@pytest.mark.parametrize("k", [3, 4, 5, 7])
def test_the_sender_puts_another_pdu_between_data_pdus(foreign, k, tmp_path):
    # UL-024 judges every PDU sent after a release or abort; PDUs the lane counts raise no
    # "pdu" event, so no run may go on past such a PDU.
    import builders

    parts = _store_stream(300_000)
    pdu = {"release_rq": builders.release_rq(), "release_rp": builders.release_rp(),
           "abort": builders.abort(2, 0)}[foreign]
    path = tmp_path / "between.pcap"
    _mid_data_set_capture(path, b"".join(parts[:k]) + pdu + b"".join(parts[k:]))
    fast, slow, taken, frames = _both(path)
    assert fast == slow
    assert any(row["rule"] == "UL-024" for row in slow["violations"])


@pytest.mark.parametrize("after", [16, 30])
def test_the_other_side_aborts_in_the_middle_of_a_data_set(after, tmp_path):
    # The SCU aborts (a user cancels the retrieve); the SCP's segments in flight still arrive.
    import builders

    path = tmp_path / "abort.pcap"
    _mid_data_set_capture(path, b"".join(_store_stream(400_000)), builders.abort(0, 0), 50, after)
    fast, slow, taken, frames = _both(path)
    assert fast == slow
    # Those segments were sent before the SCP could know of the abort: no fault of the SCP
    # (PS3.8 Table 9-10, Sta13 AA-6), with the lane or without it.
    assert [row for row in slow["violations"] if row["rule"] == "UL-024"] == []
    assert [row["outcome"] for row in slow["associations"]] == ["aborted"]


def test_pdv_tracker_keeps_its_place_across_a_foreign_pdu(tmp_path):
    # After an A-RELEASE-RQ between two data PDUs the PDV rules lose track of the message;
    # the last fragment, on another context, must then be judged the same either way.
    import builders

    parts = _store_stream(300_000)
    last = bytearray(parts[-1])
    last[10] = 5  # its PDV on presentation context 5, not 3
    parts[-1] = bytes(last)
    path = tmp_path / "phase.pcap"
    _mid_data_set_capture(path, b"".join(parts[:4]) + builders.release_rq() + b"".join(parts[4:]))
    fast, slow, taken, frames = _both(path)
    assert fast == slow


@FUZZ
@given(kind=st.sampled_from(["release_rq", "release_rp", "abort", "p_data_command"]),
       same_side=st.booleans(), where=st.floats(0.0, 1.0), after=st.integers(0, 40),
       size=st.integers(20_000, 200_000))
def test_fuzzed_pdus_in_the_middle_of_a_data_set(tmp_path_factory, kind, same_side, where, after, size):
    import builders

    parts = _store_stream(size)
    pdu = {"release_rq": builders.release_rq(), "release_rp": builders.release_rp(),
           "abort": builders.abort(2, 0), "p_data_command": builders.c_get_rq(9)}[kind]
    path = tmp_path_factory.mktemp("midset") / "mid.pcap"
    if same_side:
        k = int(where * len(parts))
        _mid_data_set_capture(path, b"".join(parts[:k]) + pdu + b"".join(parts[k:]))
    else:
        stream = b"".join(parts)
        _mid_data_set_capture(path, stream, pdu, int(where * len(stream) / 1448), after)
    fast, slow, taken, frames = _both(path)
    assert fast == slow


def test_vlan_tagged_captures_go_by_the_lane(tmp_path):
    # Captures from a trunk or SPAN port: every frame 802.1Q-tagged; then two associations
    # on two VLANs, and one untagged, interleaved.
    source = tmp_path / "plain.pcap"
    packets = make(str(source), 4, 200_000, 1448, 16384, 2)
    capture = split_capture(source.read_bytes())
    tagged = tmp_path / "tagged.pcap"
    tagged.write_bytes(CaptureFile("pcap", capture.head, [_tagged(u, 30) for u in capture.units],
                                   True).to_bytes())
    assert _assert_same(tagged) > 0.8 * packets
    # Interleaved (with ACKs back) first, then one association tagged and the other not.
    shuffled = split_capture(_interleave(source.read_bytes(), random.Random("vlan"), acks=True))
    client_ports = sorted({u.raw[16 + 34:16 + 36] for u in capture.units if u.raw[16 + 47] == 0x02})
    assert len(client_ports) == 2  # the two SYNs' source ports

    def tag(unit: Unit) -> Unit:
        ends = (unit.raw[16 + 34:16 + 36], unit.raw[16 + 36:16 + 38])
        return _tagged(unit, 10) if client_ports[0] in ends else unit

    mixed = tmp_path / "mixed.pcap"
    mixed.write_bytes(CaptureFile("pcap", capture.head, [tag(u) for u in shuffled.units], True).to_bytes())
    assert _assert_same(mixed) > 0.3 * packets


def test_command_line_no_fast_lane_gives_the_same_json(tmp_path):
    import subprocess

    source = tmp_path / "bulk.pcap"
    make(str(source), 4, 200_000, 1448, 16384, 2)
    outputs = []
    for extra in ([], ["--no-fast-lane"]):
        out = tmp_path / f"out{len(extra)}.json"
        result = subprocess.run([sys.executable, "-m", "trace_analyzer", "analyze", str(source), "--format",
                                 "json", "--output", str(out), *extra], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] and '"sub_operations"' in outputs[0]
