"""Small helpers shared by the rule tests."""

from __future__ import annotations

from builders import conversation_packets
from scapy.utils import wrpcap

import trace_analyzer


def analyze_exchanges(tmp_path, exchanges, name="rule.pcap", rules=None, **options):
    """Write the conversation as a capture and analyse it."""
    path = tmp_path / name
    wrpcap(str(path), conversation_packets(exchanges, **options))
    return trace_analyzer.analyze(str(path), rules=rules)


def findings(analysis, rule_id):
    return [f for f in analysis.findings if f.rule == rule_id]
