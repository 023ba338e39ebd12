"""A folder someone else delivered (issue 19): a trace-analyzer.toml in it is announced
wherever the results go, only a regular file of sane size is read, and it can be ignored; AE
titles keep their wire bytes and odd ones are a finding (tests/rules/test_ae_titles.py). Each
folder is built in a tmp dir and the command run in it, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
