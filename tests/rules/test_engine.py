"""The rules engine itself: levels, configuration, peers and verdicts, the check command's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from builders import c_get_rsp, retrieve, write_conversation
from rules_helpers import analyze_exchanges, findings

from trace_analyzer.rules import CATALOG, FAMILIES, IMPLEMENTED, NOT_CHECKABLE, ConfigError, load_config
from trace_analyzer.rules import parse_levels as parse


def _faulty(get_id=1):
    """A retrieve whose first Pending response lacks Remaining: one GET-RSP-007 error by the SCP."""
    exchanges = retrieve(get_id=get_id, instances=2)
    first_pending = c_get_rsp(get_id, 0xFF00, (1, 1, 0, 0))
    index = next(i for i, (_, data) in enumerate(exchanges) if data == first_pending)
    exchanges[index] = ("s", c_get_rsp(get_id, 0xFF00, (None, 1, 0, 0)))
    return exchanges


def test_catalog_has_every_rule_of_the_spec():
    families = {"UL": 37, "CMD": 7, "GET-RQ": 11, "GET-ID": 12, "GET-RSP": 23, "GET-CNT": 9, "GET-SUB": 16,
                "GET-CAN": 9, "GET-ROLE": 4}
    # The shared catalog's 128 rules, and the project's own (TA-; MOVE- and FIND-: 27, see
    # tests/rules/test_move_find.py), listed beside them.
    assert len(CATALOG) == 128 + 3 + 27
    assert {rule_id for rule_id in CATALOG if rule_id.startswith("TA-")} == {"TA-ROLE-001", "TA-UL-001",
                                                                            "TA-UL-002"}
    for prefix, count in families.items():
        assert sum(1 for rule_id in CATALOG if rule_id.rsplit("-", 1)[0] == prefix) == count
    assert all(info.severity in ("error", "warning") for info in CATALOG.values())
    assert len(FAMILIES) == 14  # and MOVE-RQ, MOVE-RSP, MOVE-CNT, MOVE-SUB, FIND


def test_every_rule_is_checked_or_explained():
    from trace_analyzer.rules import load_families

    load_families()
    missing = sorted(set(CATALOG) - set(IMPLEMENTED) - set(NOT_CHECKABLE))
    assert missing == [], f"rules neither implemented nor declared not checkable: {missing}"
    assert not set(IMPLEMENTED) & set(NOT_CHECKABLE)
    assert all(reason for reason in NOT_CHECKABLE.values())


def test_levels_lower_raise_and_switch_off(tmp_path):
    exchanges = _faulty()
    [finding] = findings(analyze_exchanges(tmp_path, exchanges), "GET-RSP-007")
    assert finding.severity == "error"
    lowered = analyze_exchanges(tmp_path, exchanges, rules={"GET-RSP-007": "warning"})
    assert [f.severity for f in findings(lowered, "GET-RSP-007")] == ["warning"]
    switched_off = analyze_exchanges(tmp_path, exchanges, rules={"GET-RSP-007": "off"})
    assert findings(switched_off, "GET-RSP-007") == []


def test_findings_reach_tables_primitives_and_verdicts(tmp_path):
    analysis = analyze_exchanges(tmp_path, _faulty(get_id=4))
    [row] = [r for r in analysis.rows("violations") if r["rule"] == "GET-RSP-007"]
    assert row["peer"] == "QRSCP @ 127.0.0.2:11112" and row["peer_side"] == "acceptor"
    assert row["peer_role"] == "C-GET SCP" and row["message_id"] == 4 and row["frame"] > 0
    [operation] = analysis.rows("operations")
    assert operation["errors"] >= 1
    response = next(p for p in analysis.c_gets if p.frame == row["frame"])
    assert any(f.rule == "GET-RSP-007" for f in response.findings)
    peers = {r["address"]: r for r in analysis.rows("peers")}
    scp = peers["127.0.0.2:11112"]
    assert scp["verdict"] == "non-conformant" and "GET-RSP-007" in scp["rules_broken"]
    assert scp["roles"] == "C-GET SCP, Storage SCU, association acceptor"
    assert set(json.loads(analysis.to_json())) >= {"violations", "peers"}


def test_parse_levels_rejects_bad_input():
    expected = {"GET-RSP-008": "warning", "GET-RSP-022": "off"}
    assert parse(["GET-RSP-008=warning", "GET-RSP-022=off"]) == expected
    for bad in (["GET-RSP-008"], ["NOPE-001=off"], ["GET-RSP-008=loud"]):
        with pytest.raises(ConfigError):
            parse(bad)


def test_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config() == {}
    (tmp_path / "trace-analyzer.toml").write_text('[rules]\n"GET-RSP-008" = "warning"\n"UL-017" = "off"\n')
    assert load_config() == {"GET-RSP-008": "warning", "UL-017": "off"}
    other = tmp_path / "other.toml"
    other.write_text('[rules]\n"GET-RSP-008" = "sometimes"\n')
    with pytest.raises(ConfigError, match="other.toml"):
        load_config(str(other))
    other.write_text("this is [not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(other))


def _check(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trace_analyzer.cli", "check", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_check_exit_codes(tmp_path):
    faulty = tmp_path / "faulty.pcap"
    write_conversation(faulty, _faulty())
    result = _check(faulty)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NON-CONFORMANT" in result.stdout and "GET-RSP-007 [error]" in result.stdout
    assert _check(faulty, "--rule", "GET-RSP-007=warning").returncode == 0
    assert _check(faulty, "--rule", "GET-RSP-007=warning", "--fail-on", "warning").returncode == 1
    assert _check(faulty, "--rule", "GET-RSP-007=off", "--fail-on", "warning").returncode in (0, 1)
    (tmp_path / "trace-analyzer.toml").write_text('[rules]\n"GET-RSP-007" = "info"\n')
    assert _check(faulty.name, cwd=tmp_path).returncode == 0  # the config in the working directory
    bad = _check(faulty, "--rule", "GET-RSP-007=loud")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert _check(tmp_path / "missing.pcap").returncode == 2


def test_rules_command_lists_the_catalog():
    result = subprocess.run([sys.executable, "-m", "trace_analyzer.cli", "rules"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    lines = [line for line in result.stdout.splitlines() if line[:3] in ("UL-", "CMD", "GET", "TA-")]
    assert len(lines) == 131
    # a rule not checked says so after its title; a checked one carries no such note
    for rule_id in ("TA-UL-001", "TA-UL-002", "GET-RSP-007"):
        assert any(line.startswith(rule_id) and "[no" not in line and "[not yet]" not in line
                   for line in lines)
