"""The summary of an analysis, and the self-contained HTML report.

Layer: presentation. :func:`summary` counts what a reader wants first
(captures, associations by outcome, C-GETs by final status, peers by verdict,
findings by severity) from plain rows, without pandas or matplotlib, so the
terminal output can use it. :func:`render_html` builds one HTML page with
inline CSS and the plots embedded as PNG data URIs: it opens with no network
and can be mailed as it is.
"""

from __future__ import annotations

import base64
import datetime
import io
from collections import Counter
from typing import TYPE_CHECKING, Any

from .safe_text import content_security_policy, css_class, for_html
from .tables import command_counts, shown_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .analysis import Analysis

#: Section ids of the HTML report, in page order, with their headings.
SECTIONS: dict[str, str] = {
    "summary": "Summary",
    "peers": "Peers and verdicts",
    "findings": "Conformance findings",
    "operations": "C-GET operations",
    "progress": "Sub-operation progress",
    "statuses": "Non-success statuses",
    "offending-elements": "Offending elements and error comments",
    "sub-operations": "C-STORE sub-operations",
    "timing": "Latency and throughput",
    "associations": "Associations",
    "contexts": "Presentation contexts",
    "responses": "C-GET responses",
    "problems": "Capture and protocol problems",
    "captures": "Captures",
}

#: Columns of each table in the report; every column is in the JSON, CSV and parquet exports.
REPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "peers": ("ae_title", "address", "implementation_version", "implementation_class_uid", "roles",
              "associations", "operations", "errors", "warnings", "rules_broken", "verdict"),
    "violations": ("rule", "severity", "frame", "time_utc", "association", "message_id", "peer", "peer_role",
                   "section", "detail"),
    "operations": ("association", "message_id", "sop_class_name", "query_retrieve_level", "identifier",
                   "request_frame", "request_time_utc", "status_hex", "status_category", "status_meaning",
                   "remaining",
                   "completed", "failed", "warning", "pending_responses", "sub_operations",
                   "sub_operations_failed", "cancel_requested", "final_frame", "duration_s", "error_comment",
                   "offending_element", "errors", "warnings"),
    "statuses": ("service", "status_hex", "category", "meaning", "responses", "operations"),
    "offending_elements": ("association", "message_id", "frame", "status_hex", "tag", "keyword",
                           "error_comment"),
    "sub_operations": ("association", "get_message_id", "message_id", "sop_class_name",
                       "affected_sop_instance_uid", "request_frame", "response_frame", "status_hex",
                       "status_category", "status_meaning", "dataset_bytes", "latency_s", "ambiguous"),
    "associations": ("association", "client", "server", "calling_ae", "called_ae",
                     "requestor_implementation_version", "acceptor_implementation_version",
                     "requestor_max_pdu", "acceptor_max_pdu", "outcome", "first_frame", "last_frame",
                     "start_time_utc", "reject", "abort", "abort_frame"),
    "contexts": ("association", "context_id", "abstract_syntax_name", "abstract_syntax", "result_text",
                 "transfer_syntax_name", "requestor_may", "acceptor_may"),
    "progress": ("association", "message_id", "frame", "elapsed_s", "status_hex", "status_category",
                 "remaining", "completed", "failed", "warning", "final"),
    "problems": ("frame", "time_utc", "association", "code", "detail"),
    "captures": ("capture", "frames", "bytes", "tcp_frames", "skipped_frames", "connections",
                 "dicom_connections", "first_time", "first_time_utc", "last_time", "last_time_utc", "error"),
}

_BADGE_COLUMNS = {"status_category", "category", "verdict", "severity", "outcome"}
#: Free-text columns, wrapped; every other cell stays on one line.
_TEXT_COLUMNS = {"detail", "identifier", "status_meaning", "meaning", "error_comment", "roles", "section",
                 "abort", "reject", "capture", "error", "sop_class_name", "abstract_syntax_name"}


# -- summary ------------------------------------------------------------------


def summary(analysis: Analysis) -> dict[str, Any]:
    """Counts for a reader's first glance, from plain rows (no pandas)."""
    captures = analysis.rows("captures")
    associations = analysis.rows("associations")
    operations = analysis.rows("operations")
    peers = analysis.rows("peers")
    commands = command_counts(analysis)
    return {
        "captures": captures,
        "messages": sum(commands.values()),
        "messages_by_command": dict(commands),
        "associations": len(associations),
        "associations_by_outcome": dict(Counter(row["outcome"] or "unknown" for row in associations)),
        "c_gets": sum(1 for row in operations if row["service"] == "C-GET"),
        "c_gets_by_status": dict(Counter(row["status_category"] or "no final response"
                                         for row in operations if row["service"] == "C-GET")),
        "c_moves": sum(1 for row in operations if row["service"] == "C-MOVE"),
        "c_moves_by_status": dict(Counter(row["status_category"] or "no final response"
                                          for row in operations if row["service"] == "C-MOVE")),
        "other_operations": dict(Counter(row["service"] for row in operations
                                         if row["service"] not in ("C-GET", "C-MOVE"))),
        "peers": len(peers),
        "peers_by_verdict": dict(Counter(row["verdict"] for row in peers)),
        "findings": len(analysis.findings),
        "findings_by_severity": dict(Counter(f.severity for f in analysis.findings)),
        "problems": len(analysis.problem_records),
    }


_STATUS_ORDER = ("Failure", "Cancel", "Warning", "Incomplete", "no final response", "Success")
_COMMAND_ORDER = ("C-GET-RQ", "C-GET-RSP", "C-CANCEL-RQ", "C-STORE-RQ", "C-STORE-RSP")
_VERDICT_ORDER = ("non-conformant", "not judged", "conformant", "not exercised")


def _ordered(counts: dict[str, int], order: tuple[str, ...]) -> list[tuple[str, int]]:
    rank = {key: index for index, key in enumerate(order)}
    return sorted(counts.items(), key=lambda item: (rank.get(item[0], len(order)), item[0]))


def _counted(total: int, counts: dict[str, int], order: tuple[str, ...] = ()) -> str:
    if not counts:
        return str(total)
    return f"{total}: " + ", ".join(f"{count} {key}" for key, count in _ordered(counts, order))


def summary_lines(analysis: Analysis) -> list[tuple[str, str]]:
    """The summary as (label, text) pairs, in reading order."""
    data = summary(analysis)
    capture_texts = []
    for row in data["captures"]:
        if row["error"]:
            capture_texts.append(f"{row['capture']} (unreadable: {row['error']})")
        else:
            span = (f", {row['first_time_utc']} to {row['last_time_utc']}" if row["first_time_utc"] else "")
            capture_texts.append(f"{row['capture']} ({row['frames']} frames, {row['tcp_frames']} TCP, "
                                 f"{row['dicom_connections']} DICOM connection(s){span})")
    lines = [
        ("captures", f"{len(data['captures'])}: " + "; ".join(capture_texts) if capture_texts else "0"),
        ("associations", _counted(data["associations"], data["associations_by_outcome"])),
        # Every service, not only C-GET: a capture of C-ECHO or C-FIND traffic says so here.
        ("messages", _counted(data["messages"], data["messages_by_command"], _COMMAND_ORDER)),
        ("C-GETs", _counted(data["c_gets"], data["c_gets_by_status"], _STATUS_ORDER)),
        *([("C-MOVEs", _counted(data["c_moves"], data["c_moves_by_status"], _STATUS_ORDER))]
          if data["c_moves"] else []),
        *([("other operations", _counted(sum(data["other_operations"].values()), data["other_operations"]))]
          if data["other_operations"] else []),
        ("peers", _counted(data["peers"], data["peers_by_verdict"], _VERDICT_ORDER)),
        ("findings", _counted(data["findings"], data["findings_by_severity"], ("error", "warning", "info"))),
    ]
    if data["problems"]:
        lines.append(("problems", f"{data['problems']} capture or protocol problem(s)"))
    config = getattr(analysis, "configuration", None)
    if config is not None and config.path is not None:
        lines.append(("configuration", f"{config.path}: {config.changes_text()}"))
    return lines


# -- HTML ---------------------------------------------------------------------

_CSS = """
:root { --fg: #1d2430; --muted: #5b6472; --line: #d8dde5; --head: #f2f4f7; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif;
       color: var(--fg); margin: 0; background: #fff; }
header { background: #1d2a3a; color: #fff; padding: 18px 28px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c8d1dc; font-size: 13px; }
nav { padding: 8px 28px; background: var(--head); border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
main { padding: 8px 28px 40px; max-width: 1500px; }
section { margin-top: 22px; }
h2 { font-size: 18px; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin: 0 0 10px; }
p.note { color: var(--muted); margin: 4px 0 8px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 180px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 24px; font-weight: 600; }
.card .detail { font-size: 13px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 6px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top;
         white-space: nowrap; }
td.text { white-space: normal; min-width: 16em; max-width: 42em; }
th { background: var(--head); position: sticky; top: 0; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.null { color: #9aa3af; }
tr:nth-child(even) td { background: #fafbfc; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-weight: 600; font-size: 12px;
         white-space: nowrap; }
.b-success, .b-conformant, .b-released, .b-accepted { background: #dff3e4; color: #1b6b32; }
.b-warning { background: #fff0d9; color: #8a4d00; }
.b-failure, .b-non-conformant, .b-error, .b-aborted, .b-released-then-aborted, .b-rejected {
  background: #fde2e1; color: #a1231d; }
.b-cancel { background: #ece4f7; color: #5b2f91; }
.b-info, .b-not-exercised, .b-incomplete, .b-pending { background: #e8edf3; color: #3d4b5c; }
img.plot { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; margin: 6px 0; }
details summary { cursor: pointer; color: var(--accent); margin: 4px 0; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px; }
"""


def _esc(value: Any) -> str:
    return for_html(value)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return '<td class="null">–</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    if isinstance(value, float):
        text = f"{value:.6f}" if column.endswith("_s") else f"{value:.3f}"
        return f'<td class="num">{text}</td>'
    if column in _BADGE_COLUMNS:
        return f'<td><span class="badge b-{css_class(value)}">{_esc(value)}</span></td>'
    if column in _TEXT_COLUMNS:
        return f'<td class="text">{_esc(value)}</td>'
    return f"<td>{_esc(value)}</td>"


def html_table(rows: list[dict[str, Any]], columns: tuple[str, ...], max_rows: int | None = 500) -> str:
    """Rows as an HTML table (escaped); past ``max_rows`` the rest are counted, not shown."""
    if not rows:
        return '<p class="note">(none)</p>'
    shown = rows if max_rows is None else rows[:max_rows]
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(_cell(c, row.get(c)) for c in columns) + "</tr>" for row in shown)
    more = ""
    if len(shown) < len(rows):
        more = (f'<p class="note">First {len(shown)} of {len(rows)} rows; '
                f"<code>--format csv</code> or <code>--format parquet</code> has them all.</p>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>{more}")


def figure_png(figure: Figure, dpi: int = 100) -> str:
    """A Figure as a ``data:image/png;base64,...`` URI (drawn with Agg, no display needed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _img(figure: Figure, alt: str) -> str:
    return f'<img class="plot" alt="{_esc(alt)}" src="{figure_png(figure)}">'


def _plots(analysis: Analysis) -> dict[str, str]:
    """The report's plots as <img> tags, by section id. Uses matplotlib's Figure, not pyplot.

    A plot that cannot be drawn is replaced by a note saying so: the tables and the other
    plots of the report are still written."""
    from . import plots

    def progress() -> Figure:
        count = min(len(analysis.operation_records), 12)
        columns = max(1, min(3, count))
        rows = max(1, -(-count // columns))
        return plots.plot_all_progress(analysis, figure=_figure(4.6 * columns + 0.6, 3.4 * rows + 0.5))

    def statuses() -> Figure:
        shown = plots.bars_shown(len({(r["service"], r["status"]) for r in plots.status_counts(analysis)}))
        figure = _figure(9.0, 1.6 + 0.5 * shown)  # bounded: top statuses and "other"
        plots.plot_statuses(analysis, ax=figure.subplots())
        return figure

    def findings() -> Figure:
        figure = _figure(9.0, 1.6 + 0.45 * plots.bars_shown(len({f.rule for f in analysis.findings})))
        plots.plot_findings(analysis, ax=figure.subplots())
        return figure

    def timing() -> Figure:
        return plots.plot_timing(analysis, figure=_figure(9.0, 6.4))

    out = {}
    for key, alt, draw in (("progress", "Sub-operation progress per C-GET", progress),
                           ("statuses", "Non-success statuses by service and peer", statuses),
                           ("findings", "Conformance findings by rule and peer", findings),
                           ("timing", "C-STORE sub-operation latency and throughput", timing)):
        try:
            out[key] = _img(draw(), alt)
        except Exception as exc:  # a plot is not worth the whole report
            out[key] = (f'<p class="note">{_esc(alt)}: the plot could not be drawn '
                        f"({_esc(type(exc).__name__)}: {_esc(exc)}).</p>")
    return out


def _summary_html(analysis: Analysis) -> str:
    data = summary(analysis)
    cards = [
        ("Captures", len(data["captures"]), ", ".join(  # the names as given, escaped here
            _esc(c.capture.replace("\\", "/").rsplit("/", 1)[-1]) for c in analysis.capture_summaries)),
        ("Associations", data["associations"], _detail(data["associations_by_outcome"], ())),
        ("DIMSE messages", data["messages"], _detail(data["messages_by_command"], _COMMAND_ORDER)),
        ("C-GETs", data["c_gets"], _detail(data["c_gets_by_status"], _STATUS_ORDER)),
        *([("C-MOVEs", data["c_moves"], _detail(data["c_moves_by_status"], _STATUS_ORDER))]
          if data["c_moves"] else []),
        ("Peers", data["peers"], _detail(data["peers_by_verdict"], _VERDICT_ORDER)),
        ("Findings", data["findings"], _detail(data["findings_by_severity"], ("error", "warning", "info"))),
        ("Problems", data["problems"], "capture or protocol faults"),
    ]
    parts = ['<div class="cards">']
    for label, value, detail in cards:
        parts.append(f'<div class="card"><div class="label">{_esc(label)}</div>'
                     f'<div class="value">{value}</div><div class="detail">{detail}</div></div>')
    parts.append("</div>")
    return "".join(parts)


def _detail(counts: dict[str, int], order: tuple[str, ...]) -> str:
    if not counts:
        return "none"
    return ", ".join(f'{count} <span class="badge b-{css_class(key)}">{_esc(key)}</span>'
                     for key, count in _ordered(counts, order))


def render_html(analysis: Analysis, *, title: str | None = None, max_rows: int | None = 500) -> str:
    """The whole report as one self-contained HTML document."""
    from . import __version__

    names = [c.capture.replace("\\", "/").rsplit("/", 1)[-1] for c in analysis.capture_summaries]
    title = title or ("C-GET trace analysis: " + ", ".join(names) if names else "C-GET trace analysis")
    images = _plots(analysis)

    def table(name: str) -> str:
        rows = analysis.rows(name)
        return html_table(rows, shown_columns(name, rows, REPORT_COLUMNS[name]), max_rows)

    first_error = next((f for f in sorted(analysis.findings, key=lambda f: (f.capture, f.frame or 0))
                        if f.severity == "error"), None)
    findings_note = ("No rule was broken." if not analysis.findings else
                     f"First error: {first_error.rule} in frame {first_error.frame} "
                     f"(Wireshark filter <code>frame.number == {first_error.frame}</code>)."
                     if first_error is not None and first_error.frame is not None else "")
    config = getattr(analysis, "configuration", None)
    config_note = ""
    if config is not None and config.path is not None:  # a delivered file may have turned rules down
        config_note = (f'<p class="note config">Configuration read: <code>{_esc(config.path)}</code>, '
                       f"which {_esc(config.changes_text())}.</p>")
        findings_note = _esc(f"Rule levels set by {config.path}: {config.changes_text()}. ") + findings_note
    bodies = {
        "summary": config_note + _summary_html(analysis),
        "peers": '<p class="note">A peer is non-conformant when it broke at least one rule of error '
                 "severity.</p>" + table("peers"),
        "findings": f'<p class="note">{findings_note}</p>' + images["findings"] + table("violations"),
        "operations": table("operations"),
        "progress": '<p class="note">Counters from each C-GET response: completed, warning and failed '
                    "stacked, remaining on top; the C-CANCEL, an A-ABORT and the final response are "
                    "marked with their frames.</p>" + images["progress"],
        "statuses": images["statuses"] + table("statuses"),
        "offending-elements": table("offending_elements"),
        "sub-operations": table("sub_operations"),
        "timing": images["timing"],
        "associations": table("associations"),
        "contexts": table("contexts"),
        "responses": table("progress"),
        "problems": table("problems"),
        "captures": table("captures"),
    }
    nav = "".join(f'<a href="#{key}">{_esc(heading)}</a>' for key, heading in SECTIONS.items())
    sections = "\n".join(f'<section id="{key}"><h2>{_esc(heading)}</h2>\n{bodies[key]}\n</section>'
                         for key, heading in SECTIONS.items())
    generated = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_esc(content_security_policy(_CSS))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="trace_analyzer {_esc(__version__)}">
<title>{_esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>{_esc(title)}</h1>
<p>DICOM C-GET exchanges rebuilt from the capture and checked against the C-GET conformance rules.
Frames are numbered as Wireshark numbers them.
Generated {generated} by trace_analyzer {_esc(__version__)}.</p>
</header>
<nav>{nav}</nav>
<main>
{sections}
</main>
<footer>Every column of every table: <code>trace-analyzer analyze CAPTURE --format json</code>,
<code>--format csv</code> or <code>--format parquet</code>.</footer>
</body>
</html>
"""


def write_html(analysis: Analysis, path: str, **options: Any) -> None:
    """Write :func:`render_html` to ``path`` (UTF-8), replacing whatever is there (a link
    too, never followed: see :mod:`trace_analyzer.output_files`)."""
    from .output_files import write_text

    write_text(path, render_html(analysis, **options))


__all__ = ["REPORT_COLUMNS", "SECTIONS", "figure_png", "html_table", "render_html", "summary",
           "summary_lines", "write_html"]
