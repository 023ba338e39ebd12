"""A real DCMTK C-MOVE through the proxy, both of its associations relayed by one proxy.

movescu -> proxy pair A -> dcmqrscp, whose HostTable gives the Move Destination STORESCP the
address of proxy pair B -> storescp. The C-MOVE and its responses pass pair A, the C-STORE
sub-operations pair B: one proxy, one analysis, so the C-MOVE is linked to its sub-operations
across the two relayed associations, live as in the recording.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from test_proxy import RunningProxy, _check_tshark, _without

import trace_analyzer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from samples.capture import ManagedProcess, find_tool, free_port  # noqa: E402
from samples.dcmtk import DcmQrScp, wait_listening  # noqa: E402
from samples.instances import study_instances, study_uid  # noqa: E402
from samples.move import QR_SCP, STORE_SCP, _movescu, parse_movescu_log, parse_storescp_log  # noqa: E402


def _move(workdir: Path, relay=None) -> tuple[dict, dict[str, bytes]]:
    """One movescu run of study 1 to a fresh storescp; with ``relay(qr_port, store_port)``, a
    context that relays both and gives (movescu's port, the port dcmqrscp sends the study to).
    What movescu's and storescp's logs say, and the files storescp wrote."""
    workdir.mkdir()
    out = workdir / "storescp_out"
    out.mkdir()
    qr_port, store_port = free_port(), free_port()
    store = ManagedProcess([find_tool("storescp", "dcmtk"), "-d", "-aet", STORE_SCP, "-od", str(out),
                            str(store_port)], cwd=workdir)
    try:
        wait_listening(store_port)
        if relay is None:
            scp_port, destination_port, proxy = qr_port, store_port, None
        else:
            proxy = relay(qr_port, store_port)
            scp_port, destination_port = proxy.listen
            proxy.__enter__()
        try:
            with DcmQrScp(workdir, qr_port, study_instances(1), ae_title=QR_SCP,
                          hosts=(("storescp", STORE_SCP, "127.0.0.1", destination_port),)):
                log = _movescu(scp_port, workdir, STORE_SCP, {"StudyInstanceUID": study_uid(1)})
        finally:
            if proxy is not None:
                proxy.__exit__(None, None, None)
    finally:
        store.stop()
    truth = parse_movescu_log(log)
    truth.update(parse_storescp_log(store.output))
    return truth, {p.name: p.read_bytes() for p in out.iterdir()}


def test_dcmtk_move_through_two_proxy_pairs(tmp_path):
    tmp_path.chmod(0o755)
    direct, direct_files = _move(tmp_path / "direct")
    relays: list[RunningProxy] = []
    servers: list[int] = []

    def relay(qr_port: int, store_port: int) -> RunningProxy:
        servers.extend((qr_port, store_port))
        relays.append(RunningProxy(tmp_path, [(free_port(), qr_port), (free_port(), store_port)]))
        return relays[0]

    relayed, relayed_files = _move(tmp_path / "relayed", relay)
    [proxy] = relays
    # The retrieve succeeds as it does directly: the same C-MOVE-RSPs, the same files received.
    [move] = relayed["c_moves"]
    assert move["final_status_hex"] == direct["c_moves"][0]["final_status_hex"] == "0x0000"
    assert move["counters"] == direct["c_moves"][0]["counters"]
    assert move["counters"]["completed"] == 5
    assert relayed_files == direct_files and len(relayed_files) == 5
    assert [s["move_originator_message_id"] for s in relayed["c_stores"]] == [move["message_id"]] * 5

    live = proxy.tables()
    recorded = json.loads(json.dumps(trace_analyzer.analyze(str(proxy.pcapng)).to_dict()))
    assert _without(live) == _without(recorded)
    assert live["problems"] == [] and [v for v in live["violations"] if v["severity"] == "error"] == []
    # Two relayed associations: movescu's to dcmqrscp, dcmqrscp's to storescp (through pair B).
    moving, storing = live["associations"]
    assert (moving["calling_ae"], moving["called_ae"]) == ("MOVESCU", QR_SCP)
    assert (storing["calling_ae"], storing["called_ae"]) == (QR_SCP, STORE_SCP)
    assert moving["outcome"] == storing["outcome"] == "released"
    [operation] = live["operations"]
    assert operation["service"] == "C-MOVE" and operation["association"] == moving["association"]
    assert operation["message_id"] == move["message_id"] and operation["move_destination"] == STORE_SCP
    assert operation["status_hex"] == "0x0000" and operation["completed"] == 5
    assert operation["link"] == "originator"
    assert operation["sub_operation_associations"] == str(storing["association"])
    assert operation["sub_operations"] == operation["sub_operations_completed"] == 5
    subs = live["sub_operations"]
    assert {s["association"] for s in subs} == {storing["association"]}
    received = [s["sop_instance_uid"] for s in relayed["c_stores"]]
    assert [s["affected_sop_instance_uid"] for s in subs] == received
    # tshark reads the recording (both listeners' interfaces) without a warning, and its DICOM
    # dissector decodes the C-MOVE-RQ and every C-STORE.
    commands = _check_tshark(proxy.pcapng, servers, 5)
    assert sum(1 for c in commands if c.get("command_field") == 0x0021) == 1
