"""Untrusted captures: nothing a capture holds reaches the reader's terminal, browser or
spreadsheet as anything but text, and no user-identity secret reaches any output.

One hypothesis test generates captures whose every wire string (AE titles, implementation
class UIDs and versions, the SOP class and instance UIDs, error comments, identifier values and
character set, the application context name, the user-identity username) and whose file name
are arbitrary bytes, arbitrary text or known attack strings, runs every command and format on
each as a user would (the command-line entry, in process), and checks:

* terminal output (``analyze`` tables, with and without a terminal width, ``check``, every
  message on stderr) has no control, format, separator or surrogate character but newline;
* every CSV cell that starts with ``= + - @``, tab or CR is a number;
* the HTML reports, parsed by headless Chromium (one browser run for all of them), hold only
  the elements and attributes the report writes, as many table rows and cells as the tables
  have, and the Content-Security-Policy; the title reads back as the text it was given;
* the secrets (passcode, Kerberos ticket, SAML assertion, JWT, the AC's server response),
  well-formed or in a malformed identity item, appear in no output, file, log record or warning.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
import warnings
from pathlib import Path

import pyarrow.parquet
from fuzz_support import EXAMPLES, FUZZ
from hostile_builders import IDENTITY_KINDS, MALFORMED, Identity, Strings, capture_bytes
from hypothesis import given
from hypothesis import strategies as st

import trace_analyzer
from trace_analyzer import cli
from trace_analyzer.report import REPORT_COLUMNS, SECTIONS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: Strings that did harm before: terminal escapes, markup, formulas, bidi, mathtext.
ATTACKS = [
    "\x1b[2J", "\x1b]0;retitled\x07", "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\", "AB\b\bCD",
    "row\roverwrite", "\x9b31m", "\u202eevil\u202c", "\u2066x\u2069", "\u2028", "\x00", "\x7f",
    "<img src=x onerror=alert(document.domain)>", "<script>alert(1)</script>", '"><svg onload=alert(1)>',
    "' onmouseover='alert(1)", "</td></tr></table><b>injected</b>", "<!--", "]]>", "&amp;",
    '=HYPERLINK("http://evil.example/","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\t=1",
    "\r=1", "\uff1d1+1", "$\\frac{1}{0}$", "$x", "_hidden", "%s%n", "{}", "\\x1b",
]
#: Marks every secret so it can be found in any output, whole or in part (hex included).
MARK = b"Qz7Kx9Vt"


def _wire_bytes() -> st.SearchStrategy[bytes]:
    piece = st.one_of(st.binary(max_size=24), st.text(max_size=16).map(lambda t: t.encode("utf-8")),
                      st.sampled_from(ATTACKS).map(lambda t: t.encode("utf-8")))
    return st.lists(piece, max_size=3).map(b"".join)


def _file_name() -> st.SearchStrategy[bytes]:
    name = st.one_of(
        st.binary(min_size=1, max_size=60),
        st.text(min_size=1, max_size=40).map(lambda t: t.encode("utf-8")),
        st.sampled_from(ATTACKS).map(lambda t: t.encode("utf-8")),
    ).map(lambda raw: raw.replace(b"/", b"_").replace(b"\x00", b"_"))
    suffix = st.sampled_from([b".pcap", b"", b".pcap\x1b[0m"])
    return st.tuples(name, suffix).map(lambda t: (t[0] + t[1])[:200])


def _secret() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=40).map(lambda raw: MARK + raw + MARK)


@st.composite
def hostile(draw) -> tuple[Strings, bytes, bool]:
    wire = _wire_bytes()
    kind = draw(st.sampled_from(sorted(IDENTITY_KINDS)))
    identity = Identity(kind, draw(wire), draw(_secret()), draw(st.sampled_from(MALFORMED)))
    strings = Strings(
        called_ae=draw(wire), calling_ae=draw(wire), rq_class_uid=draw(wire), rq_version=draw(wire),
        app_context=draw(st.one_of(st.just(Strings.app_context), wire)),
        ac_class_uid=draw(wire), ac_version=draw(wire),
        sop_class=draw(st.one_of(st.just(Strings.sop_class), wire)),
        instance_uid=draw(wire), level=draw(wire), patient_id=draw(wire), patient_name=draw(wire),
        study_uid=draw(wire), charset=draw(st.one_of(st.none(), st.just(b"ISO_IR 192"), wire)),
        error_comment=draw(wire), store_comment=draw(st.one_of(st.none(), wire)),
        final_status=draw(st.sampled_from([0x0000, 0xA702, 0xC000, 0xB000, 0xFE00, 0x0110])),
        store_status=draw(st.sampled_from([0x0000, 0xA700, 0xB007])),
        identity=draw(st.one_of(st.none(), st.just(identity))),
        server_response=draw(st.one_of(st.none(), _secret())),
    )
    return strings, draw(_file_name()), draw(st.booleans())


# -- what each sink must hold ----------------------------------------------------------


def _unsafe_for_terminal(text: str) -> list[str]:
    """Characters that may act on a terminal or hide what is shown: C0/C1 controls, DEL,
    format characters (bidi overrides), surrogates, private and unassigned code points,
    line and paragraph separators. Newline is the only one allowed."""
    return sorted({c for c in text if c != "\n" and (unicodedata.category(c)[0] == "C"
                                                    or unicodedata.category(c) in ("Zl", "Zp"))})


FORMULA = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _formula_cells(folder: Path) -> list[tuple[str, str]]:
    bad = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                bad += [(path.name, cell) for cell in row
                        if cell.startswith(FORMULA) and not NUMBER.fullmatch(cell)]
    return bad


def _secret_fragments(text: str) -> list[str]:
    lowered = text.lower()
    needles = [MARK.decode(), MARK.hex(), base64.b64encode(MARK).decode()[:8]]
    return [needle for needle in needles if needle.lower() in lowered]


@contextlib.contextmanager
def _captured():
    """stdout, stderr, log records and warnings of an in-process run."""
    out, err = io.StringIO(), io.StringIO()
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            result = {"code": None}
            yield result, out, err, records, caught
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _run(*argv: str, columns: str | None = None) -> tuple[int, str, str, str]:
    """Run the command line in process; return (exit status, stdout, stderr, logs and warnings)."""
    saved = os.environ.get("COLUMNS")
    if columns is None:
        os.environ.pop("COLUMNS", None)
    else:
        os.environ["COLUMNS"] = columns
    try:
        with _captured() as (_result, out, err, records, caught):
            code = cli.main(list(argv))
        logs = "\n".join(records + [str(w.message) for w in caught])
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return code, out.getvalue(), err.getvalue(), logs


def _parquet_text(folder: Path) -> str:
    return "\n".join(repr(pyarrow.parquet.read_table(path).to_pylist())
                     for path in sorted(folder.glob("*.parquet")))


# -- the HTML, as Chromium parses it -------------------------------------------------------

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "p", "nav", "a", "main",
                "section", "h2", "div", "table", "thead", "tbody", "tr", "th", "td", "span", "img", "code",
                "footer"}
ALLOWED_CLASSES = {"cards", "card", "label", "value", "detail", "scroll", "note", "text", "num", "null",
                   "badge", "plot"}
PLOT_ALTS = {"Sub-operation progress per C-GET", "Non-success statuses by service and peer",
             "Conformance findings by rule and peer", "C-STORE sub-operation latency and throughput"}
#: Report section -> the table it shows.
SECTION_TABLES = {"peers": "peers", "findings": "violations", "operations": "operations",
                  "statuses": "statuses", "offending-elements": "offending_elements",
                  "sub-operations": "sub_operations",
                  "associations": "associations", "contexts": "contexts", "responses": "progress",
                  "problems": "problems", "captures": "captures"}

# Walks each report as Chromium's HTML parser builds it (DOMParser: the same parser as a page
# load, without running anything) and writes what it found into the page, for --dump-dom.
HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>harness</title></head><body>
<pre id="out"></pre>
<script>
const reports = %s;
const results = [];
for (const encoded of reports) {
  const bytes = Uint8Array.from(atob(encoded), c => c.charCodeAt(0));
  const doc = new DOMParser().parseFromString(new TextDecoder().decode(bytes), "text/html");
  const elements = [];
  for (const el of doc.querySelectorAll("*")) {
    const attrs = {};
    for (const a of el.attributes) attrs[a.name] = a.name === "src" ? a.value.slice(0, 40) : a.value;
    elements.push([el.localName, el.namespaceURI, attrs]);
  }
  const sections = {};
  for (const section of doc.querySelectorAll("body > main > section")) {
    sections[section.id] = {
      rows: Array.from(section.querySelectorAll("tbody > tr"), tr => tr.children.length),
      heads: section.querySelectorAll("thead th").length,
      images: section.querySelectorAll("img").length,
    };
  }
  results.push({elements, sections, title: doc.title,
                head: Array.from(doc.head.children, el => [el.localName, el.getAttribute("http-equiv")])});
}
document.getElementById("out").textContent = JSON.stringify(results);
</script></body></html>
"""


def chromium_dom(page: Path, *extra: str) -> str:
    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/setup.sh"
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, "--dump-dom",
                                 page.as_uri()], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-800:]
    return result.stdout


def parse_in_chromium(reports: list[str], folder: Path) -> list[dict]:
    """Every report parsed by Chromium in one browser run."""
    encoded = [base64.b64encode(text.encode("utf-8")).decode("ascii") for text in reports]
    page = folder / "harness.html"
    page.write_text(HARNESS % json.dumps(encoded), encoding="utf-8")
    dom = chromium_dom(page)
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found, dom[:500]
    return json.loads(html.unescape(found.group(1)))


def check_report(parsed: dict, expected: dict) -> None:
    """What Chromium built holds only what the report writes: its tags and attributes, one row
    per table row, one cell per column, the policy first in the head."""
    for tag, namespace, attrs in parsed["elements"]:
        assert namespace == "http://www.w3.org/1999/xhtml", (tag, namespace)
        assert tag in ALLOWED_TAGS, (tag, attrs)
        for name, value in attrs.items():
            if name == "class":
                for token in value.split():
                    assert token in ALLOWED_CLASSES or re.fullmatch(r"b-[a-z0-9-]+", token), (tag, value)
            elif tag == "a" and name == "href":
                assert value.startswith("#") and value[1:] in SECTIONS, value
            elif tag == "section" and name == "id":
                assert value in SECTIONS, value
            elif tag == "img" and name == "src":
                assert value.startswith("data:image/png;base64,"), value
            elif tag == "img" and name == "alt":
                assert value in PLOT_ALTS, value
            elif tag == "html" and name == "lang":
                assert value == "en"
            elif tag == "meta" and name in ("charset", "name", "content", "http-equiv"):
                pass
            else:
                raise AssertionError(f"attribute {name}={value!r} on <{tag}> the report does not write")
    tags = [tag for tag, _, _ in parsed["elements"]]
    assert tags.count("img") == 4 and tags.count("section") == len(SECTIONS) and tags.count("meta") == 4
    assert tags.count("style") == 1 and tags.count("title") == 1
    assert parsed["head"][:2] == [["meta", None], ["meta", "Content-Security-Policy"]], parsed["head"]
    policy = next(attrs["content"] for tag, _, attrs in parsed["elements"] if attrs.get("http-equiv"))
    assert "script-src 'none'" in policy and "default-src 'none'" in policy, policy
    assert parsed["title"] == expected["title"], (parsed["title"], expected["title"])
    for section, name in SECTION_TABLES.items():
        got = parsed["sections"][section]
        rows = expected["rows"][name]
        assert len(got["rows"]) == min(rows, 500), (section, got["rows"], rows)
        assert all(cells == len(REPORT_COLUMNS[name]) for cells in got["rows"]), (section, got["rows"])
        assert got["heads"] == (len(REPORT_COLUMNS[name]) if rows else 0), section


def _shown(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of the file name that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _expected_title(paths: list[str]) -> str:
    """The title as a reader must see it: the file names, their unprintable characters escaped."""
    names = [path.replace("\\", "/").rsplit("/", 1)[-1] for path in paths]
    return "C-GET trace analysis: " + ", ".join(
        "".join(c if c.isprintable() else _shown(c) for c in name) for name in names)


# -- the test ----------------------------------------------------------------------------------


def test_hostile_strings_reach_no_sink_as_anything_but_text(tmp_path):
    reports: list[str] = []
    expectations: list[dict] = []
    counter = iter(range(10 ** 6))

    @FUZZ
    @given(hostile())
    def example(case):
        strings, name, with_unreadable = case
        folder = tmp_path / f"case{next(counter)}"
        folder.mkdir()
        path = os.fsdecode(os.path.join(os.fsencode(folder), name))
        Path(path).write_bytes(capture_bytes(strings))
        paths = [path]
        if with_unreadable:  # a second file, not a capture: its error message names it
            bad = os.fsdecode(os.path.join(os.fsencode(folder), b"not\x1b]0;x\x07" + name[:20]))
            Path(bad).write_bytes(b"\x1b[2J<b>not a capture</b>")
            paths.append(bad)
        secrets_seen: list[str] = []
        terminal: list[str] = []

        code, out, err, logs = _run("analyze", *paths)
        terminal += [out, err]
        secrets_seen += [logs]
        code_all, out_all, err_all, logs = _run("analyze", *paths, "--all")
        terminal += [out_all, err_all]
        secrets_seen += [logs]
        code_narrow, out_narrow, err_narrow, logs = _run("analyze", *paths, columns="70")
        terminal += [out_narrow, err_narrow]
        secrets_seen += [logs]
        code, out_check, err_check, logs = _run("check", *paths)
        assert code in (0, 1, 2)
        terminal += [out_check, err_check]
        secrets_seen += [logs]
        assert "Summary" in out and "Associations (1)" in out_all, (out, err)

        json_path = folder / "out.json"
        code, out, err, logs = _run("analyze", *paths, "--format", "json", "--output", str(json_path))
        terminal += [out, err]
        json_text = json_path.read_text(encoding="utf-8")
        json.loads(json_text)
        secrets_seen += [logs, json_text]
        code, out_json, err, logs = _run("analyze", *paths, "--format", "json")
        terminal += [err]
        secrets_seen += [out_json, logs]

        csv_folder = folder / "csv"
        code, out, err, logs = _run("analyze", *paths, "--format", "csv", "--output", str(csv_folder))
        terminal += [out, err]
        csv_text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(csv_folder.glob("*.csv")))
        secrets_seen += [logs, csv_text]
        assert not _formula_cells(csv_folder)

        parquet_folder = folder / "parquet"
        code, out, err, logs = _run("analyze", *paths, "--format", "parquet", "--output", str(parquet_folder))
        terminal += [out, err]
        secrets_seen += [logs, _parquet_text(parquet_folder)]

        report = folder / "report.html"
        code, out, err, logs = _run("analyze", *paths, "--format", "html", "--output", str(report))
        assert code in (0, 2), err
        terminal += [out, err]
        report_text = report.read_text(encoding="utf-8")
        secrets_seen += [logs, report_text]

        for text in terminal:
            assert not _unsafe_for_terminal(text), (_unsafe_for_terminal(text), text[:2000])
            text.encode("utf-8")  # strict: nothing a real terminal's encoder would refuse
        for text in terminal + secrets_seen:
            assert not _secret_fragments(text), _secret_fragments(text)

        analysis = trace_analyzer.analyze(paths)
        assert not _secret_fragments(analysis.to_json())
        reports.append(report_text)
        expectations.append({"title": _expected_title(paths),
                             "rows": {name: len(analysis.rows(name)) for name in SECTION_TABLES.values()}})

    example()
    assert len(reports) >= min(EXAMPLES, 5)
    parsed = parse_in_chromium(reports, tmp_path)
    assert len(parsed) == len(reports)
    for one, expected in zip(parsed, expectations, strict=True):
        check_report(one, expected)


# -- the checks themselves can fail, and the policy holds in a page load ------------------------

FIXED_NAME = b"<img src=x onerror=alert(document.domain)>\xff\x1b]0;t\x07.pcap"


def _fixed_capture(folder: Path) -> str:
    strings = Strings(called_ae=b"</td><b>x</b>", calling_ae=b"\x1b[2J<i>", rq_version=b"\xe2\x80\xaeRTL",
                      error_comment=b'=HYPERLINK("http://evil.example/")', patient_id=b"<script>1</script>",
                      identity=Identity(2, b"alice", MARK + b"pass" + MARK))
    path = os.fsdecode(os.path.join(os.fsencode(folder), FIXED_NAME))
    Path(path).write_bytes(capture_bytes(strings))
    return path


def test_report_checks_catch_injected_markup_in_chromium(tmp_path):
    """The DOM checks of the hypothesis test fail on a report that lets markup through (the
    file name written raw, as the summary card once did; an extra cell; an event handler)."""
    path = _fixed_capture(tmp_path)
    analysis = trace_analyzer.analyze(path)
    report = trace_analyzer.report.render_html(analysis)
    expected = {"title": _expected_title([path]),
                "rows": {name: len(analysis.rows(name)) for name in SECTION_TABLES.values()}}
    escaped_name = html.escape(_expected_title([path])[len("C-GET trace analysis: "):], quote=True)
    assert report.count(f'<div class="detail">{escaped_name}</div>') == 1
    raw_name = os.fsdecode(FIXED_NAME).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    tampered = [
        report.replace(f'<div class="detail">{escaped_name}</div>', f'<div class="detail">{raw_name}</div>'),
        report.replace("<td>", "<td>x</td><td>", 1),
        report.replace('<span class="badge', '<span onclick="alert(1)" class="badge', 1),
        report.replace("</main>", "<svg><script>alert(1)</script></svg></main>"),
    ]
    parsed = parse_in_chromium([report, *tampered], tmp_path)
    check_report(parsed[0], expected)
    for index, one in enumerate(parsed[1:]):
        try:
            check_report(one, expected)
        except AssertionError:
            continue
        raise AssertionError(f"tampered report {index} passed the checks")


def test_policy_stops_script_in_a_page_load(tmp_path):
    """Chromium loads a report with script planted in it (inline, and an event handler) and
    runs none of it; the same page without the policy runs it, so the check can fail."""
    report = trace_analyzer.report.render_html(trace_analyzer.analyze(_fixed_capture(tmp_path)))
    planted = report.replace("</main>", '<script>document.title="SCRIPT RAN"</script><img alt="" '
                                        'src="x" onerror="document.title=\'HANDLER RAN\'"></main>')
    guarded, open_page = tmp_path / "guarded.html", tmp_path / "open.html"
    guarded.write_text(planted, encoding="utf-8")
    without_policy = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", planted)
    open_page.write_text(without_policy, encoding="utf-8")
    dom = chromium_dom(guarded, "--virtual-time-budget=3000")
    assert "SCRIPT RAN" not in dom.split("</title>")[0] and "HANDLER RAN" not in dom.split("</title>")[0]
    assert "<title>C-GET trace analysis" in dom
    dom = chromium_dom(open_page, "--virtual-time-budget=3000")
    assert re.search(r"<title>(SCRIPT|HANDLER) RAN</title>", dom), dom[:300]
