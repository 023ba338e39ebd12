"""A folder someone else delivered (issue 19): a trace-analyzer.toml in it is announced
wherever the results go, only a regular file of sane size is read, and it can be ignored; AE
titles keep their wire bytes and odd ones are a finding. Each folder is built in a tmp dir and
the command run in it, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import CT, PATIENT_ROOT_GET, associate, retrieve, write_conversation

import trace_analyzer
from trace_analyzer.rules import IMPLEMENTED, load_families

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "sample_pcaps" / "pynetdicom_failure_error_comment.pcap"
CLI = [sys.executable, "-m", "trace_analyzer"]


def run(*args, cwd, env=None, timeout=120):
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TRACE_ANALYZER_NO_CONFIG")}
    environment.update(env or {})
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=environment)


@pytest.fixture
def delivered(tmp_path):
    """The capture and a configuration that switches every rule off, as a vendor might ship it."""
    load_families()
    folder = tmp_path / "delivered"
    folder.mkdir()
    (folder / "capture.pcap").write_bytes(CAPTURE.read_bytes())
    (folder / "trace-analyzer.toml").write_text(
        "[rules]\n" + "".join(f'"{rule_id}" = "off"\n' for rule_id in sorted(IMPLEMENTED)))
    return folder


ANNOUNCED = ("configuration ./trace-analyzer.toml (from the working directory; --no-config ignores it): "
             "changes ")


def test_a_delivered_configuration_is_announced_everywhere(delivered):
    result = run("check", "capture.pcap", cwd=delivered)
    assert result.returncode == 0  # every rule is off: that is exactly why it must be said
    assert result.stderr.startswith("trace-analyzer: " + ANNOUNCED)
    assert "GET-ID-002 error -> off" in result.stderr and "GET-RSP-012 warning -> off" in result.stderr
    assert result.stdout.startswith("Configuration ./trace-analyzer.toml")
    data = json.loads(run("check", "capture.pcap", "--format", "json", cwd=delivered).stdout)
    assert data["configuration"]["path"] == "./trace-analyzer.toml" and data["configuration"]["implicit"]
    assert data["configuration"]["rules_changed"]["GET-ID-002"] == {"default": "error", "level": "off"}
    assert len(data["configuration"]["rules_changed"]) == len(IMPLEMENTED)
    tables = json.loads(run("analyze", "capture.pcap", "--format", "json", cwd=delivered).stdout)
    assert tables["configuration"]["path"] == "./trace-analyzer.toml" and tables["violations"] == []
    text = run("analyze", "capture.pcap", cwd=delivered).stdout
    summary = text.split("\n\n")[0]
    summary = " ".join(summary.split())
    assert "configuration ./trace-analyzer.toml: changes CMD-" in summary
    assert "GET-ID-002 error -> off" in summary
    report = run("analyze", "capture.pcap", "--format", "html", "--output", "r.html", cwd=delivered)
    assert report.returncode == 0 and report.stderr.startswith("trace-analyzer: " + ANNOUNCED)
    html = (delivered / "r.html").read_text()
    assert "Configuration read: <code>./trace-analyzer.toml</code>" in html
    assert "Rule levels set by ./trace-analyzer.toml" in html  # beside "no rule was broken"


@pytest.mark.parametrize("how", [("--no-config",), ("env",)])
def test_no_config_and_the_environment_ignore_it(delivered, how):
    env = {"TRACE_ANALYZER_NO_CONFIG": "1"} if how == ("env",) else None
    args = () if env else how
    result = run("check", "capture.pcap", *args, cwd=delivered, env=env)
    assert result.returncode == 1 and "configuration" not in result.stderr.lower()
    assert "GET-ID-002 [error]" in result.stdout and "Configuration" not in result.stdout
    plain = run("check", str(CAPTURE), cwd=ROOT)
    assert result.stdout.replace("capture.pcap", str(CAPTURE)) == plain.stdout


def test_explicit_config_is_announced_and_excludes_no_config(delivered, tmp_path):
    other = tmp_path / "mine.toml"
    other.write_text('[rules]\n"GET-RSP-012" = "error"\n')
    result = run("check", "capture.pcap", "--config", other, cwd=delivered)
    assert f"trace-analyzer: configuration {other}: changes GET-RSP-012 warning -> error" in result.stderr
    assert result.returncode == 1
    both = run("check", "capture.pcap", "--config", other, "--no-config", cwd=delivered)
    assert both.returncode == 2 and "--config and --no-config" in both.stderr


def _one_line_refusal(folder: Path, words: str) -> None:
    result = run("check", "capture.pcap", cwd=folder, timeout=30)  # a hang fails here
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "trace-analyzer.toml" in lines[0] and words in lines[0], lines
    assert result.stdout == ""


def test_a_fifo_is_refused_not_waited_on(delivered):
    (delivered / "trace-analyzer.toml").unlink()
    os.mkfifo(delivered / "trace-analyzer.toml")
    _one_line_refusal(delivered, "not a regular file")
    assert run("check", "capture.pcap", "--no-config", cwd=delivered, timeout=30).returncode == 1


def test_a_link_to_dev_zero_is_refused(delivered):
    (delivered / "trace-analyzer.toml").unlink()
    (delivered / "trace-analyzer.toml").symlink_to("/dev/zero")
    _one_line_refusal(delivered, "not a regular file")


def test_a_huge_file_is_refused(delivered):
    with open(delivered / "trace-analyzer.toml", "w") as handle:
        handle.write("[rules]\n" + "# padding\n" * 200_000)
    _one_line_refusal(delivered, "more than a configuration")


# -- AE titles keep their wire bytes ----------------------------------------------------------------


def _with_titles(path: Path, called: bytes, calling: bytes) -> None:
    """A whole retrieve whose A-ASSOCIATE-RQ carries these 16-byte AE title fields."""
    exchanges = retrieve(instances=1)
    rq = bytearray(exchanges[0][1])
    rq[10:26], rq[26:42] = called, calling  # after the 6-byte PDU header and 4 bytes of version
    exchanges[0] = ("c", bytes(rq))
    write_conversation(path, exchanges)


def test_ae_titles_that_look_alike_stay_apart_and_are_flagged(tmp_path):
    spaces, nuls = tmp_path / "spaces.pcap", tmp_path / "nuls.pcap"
    _with_titles(spaces, b"QRSCP".ljust(16), b"GETSCU".ljust(16))
    _with_titles(nuls, b"QRSCP".ljust(16, b"\0"), b"GETSCU".ljust(16))
    analysis = trace_analyzer.analyze([str(spaces), str(nuls)])
    acceptors = analysis.peers[analysis.peers.roles.str.contains("acceptor")]
    assert sorted(acceptors.ae_title) == ["QRSCP", "QRSCP" + "\0" * 11]
    assert len(set(acceptors.verdict)) == 1  # the title does not make the SCP guilty
    findings = analysis.violations[analysis.violations.rule == "TA-UL-002"]
    assert findings.capture.tolist() == [str(nuls)] and findings.peer_side.tolist() == ["requestor"]
    assert "Called AE title holds \\x00" in findings.detail.iloc[0]
    text = run("check", spaces, nuls, cwd=tmp_path).stdout
    assert "QRSCP\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00 @ " in text  # visible, not blank
    assert "\0" not in text
    assert "TA-UL-002 [error]" in text


def test_ae_titles_with_different_bytes_are_different_peers(tmp_path):
    first, second = tmp_path / "c1.pcap", tmp_path / "c2.pcap"
    _with_titles(first, b"QRSCP".ljust(16), b"GETSCU\xc1".ljust(16))
    _with_titles(second, b"QRSCP".ljust(16), b"GETSCU\xc2".ljust(16))
    data = json.loads(run("analyze", first, second, "--format", "json", cwd=tmp_path).stdout)
    requestors = sorted(p["ae_title"] for p in data["peers"] if "requestor" in p["roles"])
    assert requestors == ["0x474554534355c1", "0x474554534355c2"]  # the wire bytes, in hex
    details = sorted(v["detail"] for v in data["violations"] if v["rule"] == "TA-UL-002")
    assert len(details) == 2 and "Calling AE title holds \\xc1" in details[0] and "\\xc2" in details[1]
    clean = tmp_path / "clean.pcap"
    write_conversation(clean, retrieve(instances=1))
    assert not [v for v in trace_analyzer.analyze(str(clean)).rows("violations") if v["rule"] == "TA-UL-002"]


def test_a_backslash_or_control_character_in_an_ae_title_is_flagged(tmp_path):
    path = tmp_path / "odd.pcap"
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    assert associate(True, contexts)[10:26] == b"QRSCP".ljust(16)  # where _with_titles writes
    _with_titles(path, b"QR\\SCP".ljust(16), b"GET\x1bSCU".ljust(16))
    details = [v["detail"] for v in trace_analyzer.analyze(str(path)).rows("violations")
               if v["rule"] == "TA-UL-002"]
    assert len(details) == 2
    assert "Called AE title holds \\\\" in details[0] and "Calling AE title holds \\x1b" in details[1]
