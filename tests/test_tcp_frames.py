"""tcp_frames: the frames the proxy makes of a conversation, IPv4, IPv6 and mixed, checked by
tshark (checksums verified, no expert warning) and by our own decode against a scapy-built
capture of the same conversation."""

from __future__ import annotations

import random
import subprocess

import builders
import pytest
import tshark_oracle as oracle

import trace_analyzer
from trace_analyzer.packets import LINKTYPE_ETHERNET
from trace_analyzer.pcapng_writer import PcapngWriter
from trace_analyzer.tcp_frames import MAX_SEGMENT, TcpConversation

_CASES = {"ipv4": (("127.0.0.1", 40001), ("127.0.0.2", 11112)),
          "ipv6": (("::1", 40001), ("fe80::2", 11112)),
          "mixed": (("::1", 40001), ("127.0.0.2", 11112))}


def _record(path, client, server, exchanges, end: str = "fin") -> None:
    with open(path, "wb") as handle:
        writer = PcapngWriter(handle)
        interface = writer.add_interface(LINKTYPE_ETHERNET, "test")
        clock = iter(range(10**6))
        conversation = TcpConversation(client, server, lambda t, data, comments: writer.packet(
            interface, t, data, comments=comments), random.Random(7))
        conversation.handshake(1_700_000_000.0)
        for side, data in exchanges:
            when = 1_700_000_000.0 + next(clock) / 1000
            conversation.data("client" if side == "c" else "server", data, when)
        if end == "fin":
            conversation.fin("client", 1_700_000_001.0)
            conversation.fin("server", 1_700_000_001.0)
        else:
            conversation.reset("server", 1_700_000_001.0, ["proxy: reset"])


def _tshark_clean(path) -> None:
    run = subprocess.run([oracle.tshark_path(), "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
                          "-o", "ip.check_checksum:TRUE", "-z", "expert,note", "-q"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert [line for line in run.stderr.splitlines() if "Running as user" not in line] == []
    for word in ("Errors", "Warns", "Malformed", "checksum"):
        assert word not in run.stdout, run.stdout


@pytest.mark.parametrize("case", sorted(_CASES))
def test_frames_decode_as_a_capture_of_the_same_conversation(tmp_path, case):
    client, server = _CASES[case]
    exchanges = builders.retrieve(instances=3)
    big = builders.message(3, builders.command_set({0x0002: builders.CT, 0x0100: 1, 0x0110: 99, 0x0700: 0,
                                                    0x0800: 0, 0x1000: "1.2.3.9"}),
                           bytes(3 * MAX_SEGMENT + 17), max_pdu=4 * MAX_SEGMENT)
    exchanges.insert(-2, ("s", big))  # one read longer than a frame: several segments
    made = tmp_path / f"{case}.pcapng"
    _record(made, client, server, exchanges)
    _tshark_clean(made)
    ours = trace_analyzer.analyze(str(made)).to_dict()
    reference = tmp_path / "reference.pcap"
    builders.write_conversation(reference, exchanges)  # IPv4 addresses of its own
    theirs = trace_analyzer.analyze(str(reference)).to_dict()
    for name in ("operations", "sub_operations", "messages", "violations", "problems"):
        keep = ("rule", "message_id", "status_hex", "completed", "command", "dataset_bytes", "code",
                "affected_sop_instance_uid")
        assert [{k: r[k] for k in keep if k in r} for r in ours[name]] == \
            [{k: r[k] for k in keep if k in r} for r in theirs[name]], name
    [association] = ours["associations"]
    def host(address: str) -> str:
        return f"[{address}]" if ":" in address else address

    if case == "mixed":  # the IPv4 side IPv4-mapped (as Python writes it)
        assert association["server"] == "[::ffff:7f00:2]:11112"
    else:
        assert association["server"] == f"{host(server[0])}:{server[1]}"
    assert association["client"] == f"{host(client[0])}:{client[1]}" and association["outcome"] == "released"


def test_a_reset_is_a_reset_with_its_comment(tmp_path):
    made = tmp_path / "reset.pcapng"
    _record(made, *_CASES["ipv4"], builders.retrieve(instances=1)[:3], end="rst")
    fields = subprocess.run([oracle.tshark_path(), "-n", "-r", str(made), "-T", "fields", "-e",
                             "tcp.flags.reset", "-e", "frame.comment"], capture_output=True, text=True,
                            timeout=60).stdout
    last = fields.splitlines()[-1].split("\t")
    assert last[0] in ("1", "True") and last[1] == "proxy: reset"
    [association] = trace_analyzer.analyze(str(made)).rows("associations")
    assert association["outcome"] != "released"
