"""GET-RSP rules, each with a capture that triggers it and one that does not."""

from __future__ import annotations

from builders import retrieve
from rules_helpers import analyze_exchanges, findings


def test_get_rsp_007_pending_without_counters(tmp_path):
    from builders import c_get_rsp

    exchanges = retrieve(get_id=1, instances=2)
    # Replace the first Pending (after the first sub-operation) by one without Remaining.
    index = next(i for i, (_, data) in enumerate(exchanges) if data == c_get_rsp(1, 0xFF00, (1, 1, 0, 0)))
    exchanges[index] = ("s", c_get_rsp(1, 0xFF00, (None, 1, 0, 0)))
    analysis = analyze_exchanges(tmp_path, exchanges)
    [finding] = findings(analysis, "GET-RSP-007")
    assert finding.severity == "error" and "(0000,1020)" in finding.detail
    assert finding.peer == "QRSCP @ 127.0.0.2:11112" and finding.peer_role == "C-GET SCP"
    assert finding.message_id == 1


def test_get_rsp_007_conformant(tmp_path):
    assert findings(analyze_exchanges(tmp_path, retrieve(instances=2)), "GET-RSP-007") == []
