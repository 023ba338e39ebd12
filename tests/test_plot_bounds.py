"""Issue 19 point 3: plots stay bounded however many statuses, rules and peers a capture holds.

One C-GET whose 6,000 C-STORE sub-operations each answer a different status, and 5,000
associations from AE titles that all differ: the status and finding charts show at most
MAX_BARS bars (the rest summed into one "other" bar) and MAX_PEERS peer series (the rest into
"other peers"), the figures keep their capped size, and the report stays small. Time is printed
for a person to read, not asserted (speed is the benchmarks' business).
"""

from __future__ import annotations

import struct
import time

import pytest
from fuzz_support import Conversation
from hostile_builders import CT, Strings, command, exchanges, message

import trace_analyzer
from trace_analyzer import plots
from trace_analyzer.report import render_html

STATUSES = [0xC000 + i for i in range(0x1000)] + [0xA000 + i for i in range(0x700)] + \
           [0x0100 + i for i in range(0x200)]


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def _pcap(conversations: list[Conversation]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    index = 0
    for conversation in conversations:
        for frame in conversation.frames:
            out.append(struct.pack("<IIII", 1_700_000_000 + index // 1_000_000, index % 1_000_000, len(frame),
                                   len(frame)) + frame)
            index += 1
    return b"".join(out)


def _many_statuses(count: int) -> bytes:
    strings = Strings()
    talk = exchanges(strings)
    conversation = Conversation()
    for side, data in talk[:3]:  # RQ, AC, C-GET-RQ
        conversation.send(side, data)
    instance = b"1.2.3.4.1\x00"
    for index in range(count):
        store_rq = command([(0x0002, CT + b"\x00" if len(CT) % 2 else CT), (0x0100, _us(0x0001)),
                            (0x0110, _us(100 + index)), (0x0700, _us(0)), (0x0800, _us(0x0101)),
                            (0x1000, instance)])
        store_rsp = command([(0x0002, CT + b"\x00" if len(CT) % 2 else CT), (0x0100, _us(0x8001)),
                             (0x0120, _us(100 + index)), (0x0800, _us(0x0101)),
                             (0x0900, _us(STATUSES[index])), (0x1000, instance)])
        conversation.send("s", message(3, store_rq))
        conversation.send("c", message(3, store_rsp))
    for side, data in talk[6:]:  # the final response, release
        conversation.send(side, data)
    conversation.close()
    return _pcap([conversation])


def _many_peers(count: int) -> bytes:
    conversations = []
    for index in range(count):
        strings = Strings(calling_ae=f"SCU{index:05d}".encode(), final_status=0xA702, store_status=0xA700)
        conversation = Conversation(client=(f"10.1.{index // 250}.{index % 250 + 1}", 40000 + index % 20000))
        for side, data in exchanges(strings):
            conversation.send(side, data)
        conversation.close()
        conversations.append(conversation)
    return _pcap(conversations)


def _bars_and_peers(ax) -> tuple[int, int]:
    legend = ax.get_legend()
    return len(ax.get_yticks()), len(legend.get_texts()) if legend else 0


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bounds")
    (folder / "statuses.pcap").write_bytes(_many_statuses(6000))
    (folder / "peers.pcap").write_bytes(_many_peers(5000))
    started = time.perf_counter()
    analysis = trace_analyzer.analyze([str(folder / "statuses.pcap"), str(folder / "peers.pcap")])
    print(f"\nanalysis of 6,000 statuses and 5,000 peers: {time.perf_counter() - started:.1f} s")
    return analysis


def test_status_and_finding_charts_are_bounded(crowded):
    from matplotlib.figure import Figure

    statuses = {(r["service"], r["status"]) for r in plots.status_counts(crowded)}
    assert len(statuses) >= 6000
    assert len(crowded.rows("peers")) >= 5000
    ax = plots.plot_statuses(crowded, ax=Figure().subplots())
    bars, peers = _bars_and_peers(ax)
    assert bars == plots.MAX_BARS and peers <= plots.MAX_PEERS
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1].startswith(f"other: {len(statuses) - plots.MAX_BARS + 1} more statuses")
    assert any(t.get_text().startswith("other peers (") for t in ax.get_legend().get_texts())
    ax = plots.plot_findings(crowded, ax=Figure().subplots())
    bars, peers = _bars_and_peers(ax)
    assert bars <= plots.MAX_BARS and peers <= plots.MAX_PEERS
    assert any(t.get_text().startswith("other peers (") for t in ax.get_legend().get_texts())
    # The figures the plot functions make themselves are capped too.
    ax = plots.plot_statuses(crowded)
    width, height = ax.figure.get_size_inches()
    assert width <= 8.0 and height <= 1.6 + 0.45 * plots.MAX_BARS
    import matplotlib.pyplot as plt

    plt.close("all")


def test_report_stays_small(crowded):
    started = time.perf_counter()
    text = render_html(crowded)
    print(f"\nreport: {len(text) / 1e6:.2f} MB in {time.perf_counter() - started:.1f} s")
    assert len(text) < 6_000_000  # tables stop at 500 rows each; the four plots are bounded
