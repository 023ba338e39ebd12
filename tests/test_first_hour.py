"""A new user's first hour (issue 18): output that keeps its promises at 100 columns and in a
file, a check a pipeline can read, an API that raises as pandas does, words that do not mislead,
configuration mistakes refused. Run as a user runs it: the command in a subprocess."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas
import pytest
from builders import (
    CT,
    PATIENT_ROOT_GET,
    abort,
    associate,
    c_get_rq,
    c_get_rsp,
    c_store_rq,
    c_store_rsp,
    release_rp,
    release_rq,
    retrieve,
    write_conversation,
)
from scapy.all import IP, TCP, Ether, Raw, wrpcap

import trace_analyzer
from trace_analyzer import plots, report, tables

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
CLI = [sys.executable, "-m", "trace_analyzer"]
WARNING_SUBOPS = SAMPLES / "pynetdicom_failed_warning_subops.pcap"
ERROR_COMMENT = SAMPLES / "pynetdicom_failure_error_comment.pcap"


def run(*args, columns: int | None = None, cwd=None, env=None, timeout=120):
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TRACE_ANALYZER_NO_CONFIG")}
    if columns is not None:
        environment["COLUMNS"] = str(columns)
    environment.update(env or {})
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=environment)


def _words(text: str) -> str:
    return " ".join(text.split())


# -- output: wrapped on a terminal, whole in a file, every column with --all ------------------


def test_written_to_a_file_or_a_pipe_nothing_is_cut(tmp_path):
    out = tmp_path / "x.txt"
    assert run("analyze", WARNING_SUBOPS, "--output", out, columns=100).returncode == 0  # COLUMNS set too
    piped = run("analyze", WARNING_SUBOPS).stdout
    data = json.loads(run("analyze", WARNING_SUBOPS, "--format", "json").stdout)
    for text in (out.read_text(), piped):
        assert "…" not in text and "more column(s)" not in text
        for meaning in {row["meaning"] for row in data["statuses"]}:
            assert meaning in text  # longer than the old 48-character cells
        for finding in data["violations"]:
            assert finding["detail"] in text


def test_at_100_columns_detail_is_wrapped_not_clipped():
    result = run("analyze", ERROR_COMMENT, columns=100)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    data = json.loads(run("analyze", ERROR_COMMENT, "--format", "json").stdout)
    findings = result.stdout.split("Conformance findings (3)")[1].split("\nPeers")[0]
    for finding in data["violations"]:  # one block each, the detail whole once the lines are joined
        assert _words(finding["detail"]) in _words(findings)
        assert f"{finding['rule']} [{finding['severity']}]" in findings
    comment = data["offending_elements"][0]["error_comment"]
    assert _words(comment) in _words(result.stdout.split("Offending elements")[1])


def test_all_shows_every_column():
    text = run("analyze", ERROR_COMMENT, "--all", columns=100).stdout
    header = next(line for line in text.splitlines() if line.startswith("capture ") and "final_frame" in line)
    for column in ("final_frame", "cancel_frame", "identifier", "request_time_utc", "capture_set"):
        assert column in header.split()
    assert "more column(s)" not in text


def test_accepted_contexts_come_first(tmp_path):
    rejected = [(2 * i + 5, f"1.2.840.10008.5.1.4.1.1.{i}", 3) for i in range(40)]
    contexts = [*rejected, (1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    path = tmp_path / "many.pcap"
    write_conversation(path, [("c", associate(True, contexts, roles=[(CT, 0, 1)])),
                              ("s", associate(False, contexts, roles=[(CT, 0, 1)])),
                              ("c", release_rq()), ("s", release_rp())])
    text = run("analyze", path, columns=100).stdout
    lines = text.split("Presentation contexts (42)")[1].splitlines()[3:]
    rows = [line for line in lines if line.strip().startswith("1 ")][:2]  # a row's first line
    assert len(rows) == 2 and all("acceptance" in row for row in rows), rows
    assert "17 more row(s)" in text


# -- check: capture names, verbose, JSON, JUnit, no DICOM ----------------------------------------


@pytest.fixture(scope="module")
def two_captures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("check")
    paths = []
    for name in ("D01.pcap", "D02.pcap"):
        exchanges = retrieve(get_id=3, instances=2)
        # A Pending response with no counters: GET-RSP-007 in each file, at the same frame.
        exchanges.insert(5, ("s", c_get_rsp(3, 0xFF00, None)))
        write_conversation(folder / name, exchanges)
        paths.append(folder / name)
    return paths


def test_check_names_the_capture_of_each_finding(two_captures):
    result = run("check", *two_captures, columns=100)
    assert result.returncode == 1
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    block = result.stdout.split("GET-RSP-007")[1]
    assert "D01.pcap frame" in block and "D02.pcap frame" in block


def test_check_verbose_gives_every_findings_detail(two_captures):
    data = json.loads(run("check", *two_captures, "--format", "json").stdout)
    findings = [f for peer in data["peers"] for f in peer["findings"]]
    assert len(findings) >= 2 and {f["capture"] for f in findings} == {str(p) for p in two_captures}
    verbose = run("check", *two_captures, "--verbose").stdout
    short = run("check", *two_captures).stdout
    for finding in findings:
        assert f"{finding['capture']} frame {finding['frame']}: {finding['detail']}" in verbose
    detail = findings[0]["detail"]
    same = [f for f in findings if f["detail"] == detail]
    assert len(same) == 2 and short.count(detail) == 1 and verbose.count(detail) == 2
    assert data["exit_status"] == 1 and data["fail_on"] == "error"


def test_check_junit_one_case_per_peer_and_rule(two_captures, tmp_path):
    junit = tmp_path / "junit.xml"
    result = run("check", *two_captures, "--junit", junit, "--rule", "GET-RSP-022=off")
    assert result.returncode == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    peers = {peer["peer"]: peer for peer in json.loads(run("check", *two_captures, "--format", "json").stdout)
             ["peers"]}
    suites = root.findall("testsuite")
    assert {s.get("name") for s in suites} == set(peers)
    from trace_analyzer.rules import IMPLEMENTED, load_families

    load_families()
    for suite in suites:
        cases = suite.findall("testcase")
        assert len(cases) == len(IMPLEMENTED) == int(suite.get("tests"))
        assert {c.get("classname") for c in cases} == {suite.get("name")}
        failed = {c.get("name").split()[0] for c in cases if c.find("failure") is not None}
        broken = set((peers[suite.get("name")]["rules_broken"] or "").split())
        errors = {f["rule"] for f in peers[suite.get("name")]["findings"] if f["severity"] == "error"}
        assert failed == errors and failed <= broken
        skipped = [c for c in cases if c.find("skipped") is not None]
        assert [c.get("name").split()[0] for c in skipped] == ["GET-RSP-022"]
    failure = next(c.find("failure") for s in suites for c in s if c.find("failure") is not None)
    assert "D01.pcap frame" in failure.text and "D02.pcap frame" in failure.text


def test_check_without_dicom_exits_2(tmp_path):
    path = tmp_path / "web.pcap"
    packets = [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="PA", seq=1)
               / Raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")]
    wrpcap(str(path), packets)
    result = run("check", path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"trace-analyzer: {path}: no DICOM traffic found (try --port)"


# -- the API --------------------------------------------------------------------------------------


def test_api_raises_for_one_unreadable_path_and_collects_for_many(tmp_path):
    with pytest.raises(FileNotFoundError, match="retrieve.pcap: no such file"):
        trace_analyzer.analyze(str(tmp_path / "retrieve.pcap"))
    with pytest.raises(IsADirectoryError):
        trace_analyzer.analyze(tmp_path)
    (tmp_path / "notes.txt").write_text("not a capture\n")
    with pytest.raises(trace_analyzer.CaptureError, match="not a pcap"):
        trace_analyzer.analyze(tmp_path / "notes.txt")
    analysis = trace_analyzer.analyze([str(tmp_path / "retrieve.pcap"), str(ERROR_COMMENT)])
    assert len(analysis.errors) == 1 and len(analysis.operations) == 1
    with pytest.raises(FileNotFoundError):
        trace_analyzer.analyze([str(tmp_path / "retrieve.pcap"), str(ERROR_COMMENT)], errors="raise")
    quiet = trace_analyzer.analyze(str(tmp_path / "retrieve.pcap"), errors="collect")
    assert "no such file" in quiet.errors[0]
    with pytest.raises(ValueError, match="65535"):
        trace_analyzer.analyze(str(ERROR_COMMENT), ports=[70000])


def test_captures_is_a_dataframe():
    analysis = trace_analyzer.analyze(str(ERROR_COMMENT))
    assert isinstance(analysis.captures, pandas.DataFrame)
    assert analysis.captures.capture.tolist() == [str(ERROR_COMMENT)]
    assert analysis.capture_summaries[0].frames == analysis.captures.frames[0]


# -- every operation has a status category; notebooks' filter ---------------------------------


def _aborted(path: Path, release_first: bool = False) -> None:
    contexts = [(1, PATIENT_ROOT_GET, 0), (3, CT, 0)]
    exchanges = [("c", associate(True, contexts, roles=[(CT, 0, 1)])),
                 ("s", associate(False, contexts, roles=[(CT, 0, 1)])),
                 ("c", c_get_rq(7)),
                 ("s", c_store_rq(100, "1.2.3.4.1")), ("c", c_store_rsp(100, 0, "1.2.3.4.1")),
                 ("s", c_get_rsp(7, 0xFF00, (2, 1, 0, 0)))]
    if release_first:
        exchanges += [("c", release_rq()), ("s", release_rp())]
    exchanges.append(("c", abort()))
    write_conversation(path, exchanges)


def test_a_c_get_without_final_response_is_incomplete_with_its_reason(tmp_path):
    _aborted(tmp_path / "aborted.pcap")
    operations = trace_analyzer.analyze(tmp_path / "aborted.pcap").operations
    unsuccessful = operations[operations.status_category != "Success"]  # the README's filter
    assert len(unsuccessful) == 1 and not operations.status_category.isna().any()
    row = unsuccessful.iloc[0]
    assert row.status_category == "Incomplete" and row.message_id == 7
    assert re.fullmatch(r"no final response: aborted \(A-ABORT in frame \d+\)", row.status_meaning)
    exchanges = retrieve(get_id=4, instances=1)[:-3]  # the capture ends before the final response
    write_conversation(tmp_path / "cut.pcap", exchanges)
    cut = trace_analyzer.analyze(tmp_path / "cut.pcap").operations.iloc[0]
    assert (cut.status_category, cut.status_meaning) == ("Incomplete", "no final response: capture ended")


def test_released_then_aborted_and_the_abort_marked(tmp_path):
    _aborted(tmp_path / "both.pcap", release_first=True)
    analysis = trace_analyzer.analyze(tmp_path / "both.pcap")
    assert analysis.associations.outcome.tolist() == ["released, then aborted"]
    assert analysis.associations.abort_frame.tolist() == [analysis.captures.frames[0]]
    assert "1 released, then aborted" in run("analyze", tmp_path / "both.pcap").stdout
    last = analysis.captures.frames[0]  # the A-ABORT is the capture's last frame
    assert analysis.operations.status_meaning[0] == f"no final response: aborted (A-ABORT in frame {last})"
    import matplotlib

    matplotlib.use("Agg")
    ax = plots.plot_progress(analysis, message_id=7)
    assert any(text.get_text() == f"A-ABORT\nframe {last}" for text in ax.texts)
    html = report.render_html(analysis)
    assert "released, then aborted" in html and "A-ABORT" in html


# -- one peer label, ISO times ---------------------------------------------------------------------


def test_one_peer_label_everywhere():
    analysis = trace_analyzer.analyze(str(ERROR_COMMENT))
    peers = set(analysis.peers.peer)
    assert set(analysis.violations.peer) <= peers
    assert {f"{r.ae_title} @ {r.address}" for r in analysis.peers.itertuples()} == peers
    import matplotlib

    matplotlib.use("Agg")
    ax = plots.plot_findings(analysis)
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert legend <= peers and legend


def test_iso_utc_beside_every_epoch():
    analysis = trace_analyzer.analyze(str(ERROR_COMMENT))
    association = analysis.associations.iloc[0]
    expected = datetime.datetime.fromtimestamp(association.start_time, datetime.UTC)
    assert association.start_time_utc == expected.isoformat(timespec="microseconds").replace("+00:00", "Z")
    for name, columns in tables.COLUMNS.items():
        for column in columns:
            if column == "time" or column.endswith("_time"):
                assert f"{column}_utc" in columns, (name, column)
    text = _words(run("analyze", ERROR_COMMENT, columns=100).stdout)
    captured = analysis.captures.iloc[0]
    assert f"{captured.first_time_utc} to {captured.last_time_utc}" in text.split("associations")[0]
    findings = analysis.violations
    assert all(f"{t}: " in text for t in findings.time_utc)  # each finding's block says when
    assert association.start_time_utc in report.render_html(analysis)
    data = json.loads(run("analyze", ERROR_COMMENT, "--format", "json").stdout)
    assert data["associations"][0]["start_time"] == association.start_time  # both kept


# -- configuration validated -----------------------------------------------------------------------


@pytest.mark.parametrize("text,fragment", [
    ('[rule]\n"GET-RSP-008" = "warning"\n', "unknown table or key 'rule'"),
    ('"GET-RSP-008" = "warning"\n', "unknown table or key 'GET-RSP-008'"),
    ('[rules]\n"GET-RSP-999" = "warning"\n', "unknown rule 'GET-RSP-999'"),
    ('[rules]\n"GET-SUB-013" = "error"\n', "GET-SUB-013 is never checked"),
    ('[rules]\n"GET-RSP-008" = 3\n', "a level must be a string"),
    ('rules = "off"\n', "'rules' must be a table"),
])
def test_configuration_mistakes_exit_2_with_one_line(tmp_path, text, fragment):
    (tmp_path / "trace-analyzer.toml").write_text(text)
    result = run("check", ERROR_COMMENT, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "trace-analyzer.toml" in lines[0], lines


def test_rule_ids_and_levels_in_any_case(tmp_path):
    result = run("check", ERROR_COMMENT, "--rule", "get-id-002=Warning", "--rule", "GET-ID-007=OFF")
    data = json.loads(run("check", ERROR_COMMENT, "--rule", "get-id-002=Warning", "--rule", "GET-ID-007=OFF",
                          "--format", "json").stdout)
    findings = {f["rule"]: f["severity"] for peer in data["peers"] for f in peer["findings"]}
    assert findings.get("GET-ID-002") == "warning" and "GET-ID-007" not in findings
    assert result.returncode == 0
    (tmp_path / "trace-analyzer.toml").write_text('[rules]\n"get-id-002" = "warning"\n[limits]\n')
    assert "GET-ID-002 error -> warning" in run("check", ERROR_COMMENT, cwd=tmp_path).stderr
    refused = run("check", ERROR_COMMENT, "--rule", "GET-SUB-013=error")
    assert refused.returncode == 2 and "never checked" in refused.stderr


def test_config_judges_its_limits_table(tmp_path):
    from trace_analyzer.config_file import load_config
    from trace_analyzer.rules import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[rules]\n"GET-RSP-008" = "warning"\n[limits]\ncell-chars = 1000\n')
    config = load_config(str(path))
    assert config.limits == {"cell-chars": 1000}
    assert config.changed == {"GET-RSP-008": ("error", "warning")} and not config.implicit
    path.write_text('[limits]\nmax_pdu = 1000\n')
    with pytest.raises(ConfigError, match=r"c\.toml: \[limits\] unknown limit 'max_pdu'"):
        load_config(str(path))


# -- small things ----------------------------------------------------------------------------------


def test_rules_readable_at_100_columns_and_one_rule_explained():
    listing = run("rules", columns=100)
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100 and "…" not in listing.stdout
    from trace_analyzer.rules import CATALOG

    ids = [line.split()[0] for line in lines[2:] if line[:1] != " "]
    assert ids == list(CATALOG)
    row = next(line for line in lines if line.startswith("GET-SUB-013"))
    assert "[" in _words(listing.stdout.split("GET-SUB-013")[1].split("GET-SUB-014")[0]), row
    one = run("rules", "get-rsp-008", columns=100)
    assert one.returncode == 0 and max(len(line) for line in one.stdout.splitlines()) <= 100
    text = _words(one.stdout)
    assert text.startswith("GET-RSP-008: Success, Warning or Failure/Refused response contains (0000,1020)")
    for label in ("Severity: error", "Section: PS3.4 C.4.3.1.5", "What it checks: judged on each C-GET-RSP",
                  "Example: sample_pcaps/"):
        assert label in text
    assert "carries (0000,1020)" in text  # the example is a real finding's detail
    unknown = run("rules", "NOPE-1")
    assert unknown.returncode == 2 and "unknown rule 'NOPE-1'" in unknown.stderr


def test_rule_examples_and_docs_are_current():
    from trace_analyzer.cli import rule_examples, rules_markdown

    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == rules_markdown()
    assert "docs/rules.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert (ROOT / "docs" / "cget-rules.md").is_file()
    examples = rule_examples()
    from trace_analyzer.rules import IMPLEMENTED, load_families

    load_families()
    assert set(examples) == set(IMPLEMENTED)  # every checked rule has one
    by_file: dict[str, list] = {}
    for rule_id, example in examples.items():
        if "capture" in example:
            by_file.setdefault(example["capture"], []).append((rule_id, example))
        else:  # from a rule test: that test is there
            path, _, name = example["test"].partition("::")
            assert f"def {name.split('[')[0]}(" in (ROOT / path).read_text(encoding="utf-8"), rule_id
    for capture, items in sorted(by_file.items())[:6]:  # a few files: each example is reproduced
        rows = trace_analyzer.analyze(str(ROOT / capture)).rows("violations")
        for rule_id, example in items:
            assert {k: example[k] for k in ("frame", "detail")} in [
                {"frame": r["frame"], "detail": r["detail"]} for r in rows if r["rule"] == rule_id], rule_id


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"trace-analyzer {trace_analyzer.__version__}"


def test_a_closed_pipe_ends_quietly():
    environment = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    process = subprocess.Popen([*CLI, "analyze", str(WARNING_SUBOPS), "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    process.stdout.close()  # the reader is gone before anything is written
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0 and err == b""


def test_plot_refuses_a_message_id_that_does_not_exist():
    analysis = trace_analyzer.analyze(str(WARNING_SUBOPS))
    with pytest.raises(ValueError, match=r"no C-GET matches message_id=999; the C-GETs are: message_id=3 "):
        plots.plot_progress(analysis, message_id=999)


def test_offending_element_holds_pydicom_tags():
    from pydicom.tag import BaseTag

    final = trace_analyzer.analyze(str(ERROR_COMMENT)).c_gets[-1]
    assert all(isinstance(tag, BaseTag) for tag in final.OffendingElement)
    assert [str(tag) for tag in final.OffendingElement] == ["(0008,0052)", "(0010,0020)"]
    assert final.OffendingElement[0] == 0x00080052


def test_the_console_script_is_beside_the_interpreter():
    script = Path(sys.executable).parent / "trace-analyzer"
    assert script.is_file(), f"pip install -e . puts trace-analyzer beside {sys.executable}"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/nonexistent", "HOME": os.environ.get("HOME", "/")})
    assert result.returncode == 0 and "trace-analyzer" in result.stdout


@pytest.mark.parametrize("name", ["interleaved_two_associations.pcap", "pynetdicom_cancel.pcap",
                                  "fault_oversized_pdu_cut.pcap", "dcmtk_to_dcmtk_success.pcap"])
def test_notebook_picks_the_first_unsuccessful_c_get_itself(name):
    # The progress cell of notebook 01, as committed, run on other captures (CAPTURE changed).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    notebook = json.loads((ROOT / "notebooks" / "01_capture_tour.ipynb").read_text(encoding="utf-8"))
    cell = next("".join(c["source"]) for c in notebook["cells"]
                if c["cell_type"] == "code" and "plot_progress" in "".join(c["source"]))
    analysis = trace_analyzer.analyze(str(SAMPLES / name))
    namespace = {"analysis": analysis, "plots": plots, "pd": pandas, "plt": plt}
    exec(cell, namespace)
    ops = analysis.operations
    unsuccessful = ops[ops.status_category != "Success"]
    expected = (unsuccessful if len(unsuccessful) else ops).iloc[0]
    assert f"C-GET {expected.message_id} (association {expected.association})" in namespace["ax"].get_title()
    plt.close("all")


def test_on_a_real_terminal_of_100_columns():
    # A pseudo-terminal of 100 columns, COLUMNS unset: the width comes from the terminal itself.
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([*CLI, "check", str(ERROR_COMMENT), "--quiet"], stdout=slave, stderr=slave,
                               env=environment)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=120) == 1
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100 and len(lines) > 3
    detail = trace_analyzer.analyze(str(ERROR_COMMENT)).violations.detail.iloc[1]
    assert _words(detail) in _words(text)
