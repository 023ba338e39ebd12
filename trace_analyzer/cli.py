"""Command line: ``trace-analyzer analyze CAPTURE... [--port N] [--format table|json|csv] [--output PATH]``.

Layer: presentation. Exit status: 0 when every capture was analysed, 2 with
a one-line message per problem for unusable arguments or unreadable input
(the readable captures are still analysed and reported).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .analysis import Analysis, analyze
from .config_file import CONFIG_FILE, NO_CONFIG_ENV, Config, load_config
from .output_files import OutputError, open_output, output_folder, write_folder, write_text
from .safe_text import clean_row, for_csv, for_terminal, free_text
from .tables import COLUMNS, TABLES, iter_rows, peer_key, shown_columns

#: Columns shown per table in the terminal; everything is in json/csv.
TERMINAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "associations": ("association", "client", "server", "calling_ae", "called_ae",
                     "requestor_implementation_version", "acceptor_implementation_version",
                     "requestor_max_pdu", "acceptor_max_pdu", "outcome", "first_frame", "last_frame",
                     "start_time_utc"),
    "contexts": ("association", "context_id", "abstract_syntax_name", "abstract_syntax", "result_text",
                 "transfer_syntax_name", "requestor_may", "acceptor_may"),
    "operations": ("association", "message_id", "sop_class_name", "query_retrieve_level", "request_frame",
                   "status_hex", "status_category", "remaining", "completed", "failed", "warning",
                   "pending_responses", "sub_operations", "sub_operations_failed", "cancel_requested",
                   "duration_s", "status_meaning", "error_comment", "offending_element", "request_time_utc"),
    "progress": ("association", "message_id", "frame", "elapsed_s", "status_hex", "status_category",
                 "remaining", "completed", "failed", "warning"),
    "sub_operations": ("association", "get_message_id", "message_id", "sop_class_name",
                       "affected_sop_instance_uid", "request_frame", "response_frame", "status_hex",
                       "status_category", "status_meaning", "dataset_bytes", "latency_s"),
    # Shown when the capture holds messages outside any C-GET (C-ECHO, C-FIND, plain C-STORE...).
    "messages": ("association", "frame", "sender", "context_id", "command", "message_id",
                 "message_id_being_responded_to", "affected_sop_class_uid", "status", "dataset_bytes"),
    "statuses": ("service", "status_hex", "category", "meaning", "responses", "operations"),
    "offending_elements": ("association", "message_id", "frame", "status_hex", "tag", "keyword",
                           "error_comment"),
    "violations": ("rule", "severity", "frame", "association", "message_id", "peer", "peer_role", "detail"),
    "peers": ("peer", "implementation_version", "roles", "associations", "operations",
              "errors", "warnings", "rules_broken", "verdict"),
    "problems": ("frame", "association", "code", "detail"),
}
TITLES = {
    "associations": "Associations", "contexts": "Presentation contexts", "operations": "C-GET operations",
    "progress": "C-GET responses (progress)", "sub_operations": "C-STORE sub-operations",
    "messages": "DIMSE messages",
    "statuses": "Non-success statuses", "offending_elements": "Offending elements and error comments",
    "violations": "Conformance findings", "peers": "Peers",
    "problems": "Capture and protocol problems",
}
MAX_CELL = 48
#: On a narrow terminal, the columns given up first (the rest go from the right).
NARROW_DROP: dict[str, tuple[str, ...]] = {
    "messages": ("affected_sop_class_uid", "dataset_bytes", "context_id", "message_id_being_responded_to"),
    "associations": ("start_time_utc", "requestor_implementation_version", "acceptor_implementation_version",
                     "requestor_max_pdu", "acceptor_max_pdu", "first_frame", "last_frame", "client",
                     "server"),
    "contexts": ("abstract_syntax", "requestor_may", "acceptor_may", "transfer_syntax_name"),
    "operations": ("request_time_utc", "sop_class_name", "query_retrieve_level", "request_frame",
                   "pending_responses",
                   "sub_operations", "offending_element", "error_comment", "duration_s", "status_meaning",
                   "cancel_requested", "sub_operations_failed"),
    "progress": ("elapsed_s", "status_category"),
    "sub_operations": ("sop_class_name", "request_frame", "affected_sop_instance_uid", "dataset_bytes",
                       "status_meaning", "latency_s", "status_category"),
    "statuses": ("operations", "category"),
    "violations": ("peer_role", "association", "message_id", "severity"),
    "peers": ("implementation_version", "roles", "associations", "operations", "rules_broken"),
    "problems": ("association",),
}
#: Rows shown per table on a terminal (--all shows every row).
TERMINAL_ROWS = 25
#: No column is shrunk below this many characters to fit the terminal; columns are dropped instead.
MIN_CELL = 16


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="trace-analyzer",
                     description="Rebuild and check DICOM C-GET exchanges from pcap/pcapng captures.")
    parser.add_argument("--version", action="version", version=f"trace-analyzer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("analyze", help="decode every C-GET exchange in the captures")
    run.add_argument("captures", nargs="+", metavar="CAPTURE", help=_CAPTURE_HELP)
    run.add_argument("--port", type=_port, action="append", default=[], metavar="N",
                     help="decode TCP port N as DICOM (repeatable); DICOM is otherwise detected on any port")
    run.add_argument("--format", choices=("table", "json", "csv", "html", "parquet"), default="table",
                     help="table: summary and tables for reading; json: one object of tables; csv: one "
                          "file per table; parquet: a folder per table, a file per capture set; html: a "
                          "self-contained report with plots")
    run.add_argument("--output", metavar="PATH",
                     help="json: the file to write (default: standard output); csv: the folder "
                          "(default: ./trace-analyzer-csv); parquet: the folder (default: "
                          "./trace-analyzer-parquet); html: the file (default: "
                          "./trace-analyzer-report.html); table: the file (default: standard output)")
    run.add_argument("--all", action="store_true", dest="show_all",
                     help="table: show every row and column, however wide the terminal")
    _annotate_option(run)
    _rule_options(run)

    check = commands.add_parser("check", help="judge every peer against the C-GET conformance rules")
    check.add_argument("captures", nargs="+", metavar="CAPTURE", help=_CAPTURE_HELP)
    check.add_argument("--port", type=_port, action="append", default=[], metavar="N",
                       help="decode TCP port N as DICOM (repeatable)")
    check.add_argument("--fail-on", choices=("error", "warning"), default="error",
                       help="exit 1 when any finding reaches this severity (default: error)")
    check.add_argument("--verbose", "-v", action="store_true",
                       help="every finding's capture, frame and detail (default: the first per rule)")
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text: verdicts and findings for reading; json: the same for a machine")
    check.add_argument("--output", metavar="FILE", help="write the text or JSON here (default: stdout)")
    check.add_argument("--junit", metavar="FILE",
                       help="also write JUnit XML: a test case per peer and rule (GitLab, Jenkins, GitHub)")
    _annotate_option(check)
    _rule_options(check)

    rules = commands.add_parser("rules", help="list the conformance rules (ID, severity, section, title), "
                                              "or explain one: trace-analyzer rules GET-RSP-008")
    rules.add_argument("rule_id", nargs="?", metavar="ID", help="the rule to explain (any case)")

    watch = commands.add_parser("watch", help="a live view of DICOM traffic: an interface (through tcpdump "
                                              "or dumpcap) or a pcap/pcapng stream")
    watch.add_argument("capture", nargs="?", metavar="CAPTURE | -",
                       help="a capture file or - (a pcap/pcapng stream on standard input); without it, "
                            "the interface given by --interface is captured")
    watch.add_argument("--interface", "-i", metavar="IF",
                       help="capture this interface live with tcpdump -U -w - (or dumpcap -w -)")
    watch.add_argument("--port", type=_port, action="append", default=[], metavar="N",
                       help="only TCP port N (the capture filter) and decode it as DICOM (repeatable)")
    _live_options(watch)

    proxy = commands.add_parser("proxy", help="relay DICOM connections, analysing (and recording) them live")
    proxy.add_argument("--listen", action="append", default=[], metavar="HOST:PORT", required=True,
                       help="accept connections here (a bare PORT listens on 127.0.0.1); repeatable, "
                            "each with its --forward")
    proxy.add_argument("--forward", action="append", default=[], metavar="HOST:PORT", required=True,
                       help="relay the connections of the matching --listen to this address")
    proxy.add_argument("--write", metavar="FILE.pcapng",
                       help="record the relayed conversations as pcapng (one interface per --listen)")
    _live_options(proxy)
    return parser


def _live_options(parser: argparse.ArgumentParser) -> None:
    """What watch and proxy share: the end's outputs, rule levels, no live view."""
    parser.add_argument("--format", choices=("table", "json", "csv", "html", "parquet"), default="table",
                        help="what is written at the end, as analyze writes it (default: summary and tables)")
    parser.add_argument("--output", metavar="PATH", help="where, as analyze's --output")
    parser.add_argument("--all", action="store_true", dest="show_all",
                        help="table: every row and column at the end")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no live view (it is drawn only on a terminal anyway); events go to stderr")
    _annotate_option(parser)
    _level_options(parser)


_CAPTURE_HELP = ("pcap or pcapng file (may be gzipped), a directory of them (searched recursively), or - "
                 "for a stream on standard input; rotated files that continue each other are one capture")


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of processes, 1 or more, not {text!r}")
    return value


def _input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=_workers, metavar="N",
                        help="analyse independent capture sets on N local processes")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="analyse the capture sets on this Dask distributed scheduler's workers "
                             "(they must read the same paths)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bar (there is none anyway unless standard error is a terminal)")


def _rule_options(parser: argparse.ArgumentParser) -> None:
    _input_options(parser)
    parser.add_argument("--no-fast-lane", action="store_false", dest="fast_lane",
                        help="send every packet through the layer-by-layer decoding (slower; the "
                             "results are the same: for comparing when in doubt)")
    _level_options(parser)


def _level_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rule", action="append", default=[], metavar="ID=LEVEL",
                        help="set a rule's level: error, warning, info or off (repeatable), "
                             "e.g. --rule GET-RSP-008=warning")
    parser.add_argument("--config", metavar="FILE",
                        help=f"TOML file with a [rules] table of ID = LEVEL and a [limits] table of "
                             f"NAME = VALUE (default: ./{CONFIG_FILE} if present; it is announced)")
    parser.add_argument("--no-config", action="store_true",
                        help=f"do not read ./{CONFIG_FILE} (nor does {NO_CONFIG_ENV}=1)")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="change a limit on what a hostile capture can make the analysis keep "
                             "(repeatable): inflated-bytes, cell-chars, problems-per-code, "
                             "empty-messages, e.g. --limit cell-chars=4096")


def _annotate_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotate", metavar="OUT.pcapng",
                        help="also write the capture as pcapng with every finding, problem and C-GET "
                             "final status as a comment on its frame (Wireshark: frame.comment)")


def _annotate(analysis: Analysis, args: argparse.Namespace, files: list[str] | None = None) -> None:
    """--annotate: the analysed files again as pcapng, the analysis in packet comments."""
    if not getattr(args, "annotate", None):
        return
    from .annotate import write_annotated
    from .capture import STDIN, CaptureError

    if files is None and any(c.capture == STDIN for c in analysis.capture_summaries):
        print("trace-analyzer: --annotate: standard input is read once and cannot be copied; "
              "the other captures are annotated", file=sys.stderr)
    try:
        done = write_annotated(analysis, args.annotate, files)
    except CaptureError as exc:
        raise UsageError(f"--annotate: {exc}") from None
    print(f"trace-analyzer: wrote {done.frames} frames with {done.comments} comment(s) to "
          f"{for_terminal(args.annotate)}", file=sys.stderr)


def _limits(args: argparse.Namespace, config: Config):
    """Limits from the configuration's [limits], then --limit on top. Raises UsageError."""
    from .limits import parse_limit_flags, parse_limits
    from .rules import ConfigError

    try:
        return parse_limit_flags(args.limit, parse_limits(config.limits))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1 to 65535, not {text!r}")
    return value


def _configuration(args: argparse.Namespace) -> tuple[Config, dict[str, str]]:
    """The configuration file read (announced on stderr) and the levels: the file's, then
    --rule on top. Raises UsageError."""
    from .rules import ConfigError, parse_levels

    if args.config is not None and args.no_config:
        raise UsageError("--config and --no-config: give one")
    try:
        config = load_config(args.config, use_default=not args.no_config)
        levels = dict(config.levels)
        levels.update(parse_levels(args.rule))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if config.announcement() is not None:
        print(f"trace-analyzer: {for_terminal(config.announcement())}", file=sys.stderr)
    return config, levels


# -- progress ----------------------------------------------------------------


class _Progress:
    """A progress bar on stderr (tqdm): bytes read, capture files done and C-GETs found."""

    def __init__(self, total: int | None, files: int, stream: TextIO) -> None:
        from tqdm import tqdm

        self.files, self.files_done, self.c_gets = files, 0, 0
        self.set_files = self.set_c_gets = 0  # of the set being read here, file by file
        size = shutil.get_terminal_size((80, 24))  # a terminal of no size says 0 (tqdm then draws nothing)
        self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=stream,
                        ncols=size.columns or 80, nrows=size.lines or 24, leave=False, mininterval=0.25,
                        desc="reading")
        self._note()

    def __call__(self, size: int) -> None:
        self.bar.update(size)

    def file_done(self, c_gets: int) -> None:
        self.set_files += 1
        self.set_c_gets = c_gets
        self._note()

    def set_done(self, result) -> None:
        self.files_done += len(result.summaries)
        self.c_gets += sum(1 for operation in result.operations if operation.service == "C-GET")
        self.set_files = self.set_c_gets = 0
        self._note()

    def _note(self) -> None:
        self.bar.set_postfix_str(f"files {self.files_done + self.set_files}/{self.files}, "
                                 f"C-GETs {self.c_gets + self.set_c_gets}")

    def close(self) -> None:
        self.bar.close()


# -- output ------------------------------------------------------------------


def _cell(value: Any, limit: int | None = MAX_CELL) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return _clip(for_terminal(value), limit)


def _clip(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[:max(limit - 1, 0)] + "…"


def _fit(columns: Sequence[str], widths: list[int], width: int,
         drop_first: Sequence[str] = ()) -> tuple[list[int], list[int]]:
    """Fit a line into ``width``: drop columns (``drop_first`` ones first, then from the right)
    until the rest fit at their narrowest, then narrow the widest columns as little as needed.

    Returns the widths and the indices of the columns kept. A column never gets narrower than
    its header or MIN_CELL.
    """
    floors = [min(w, max(len(c), MIN_CELL)) for c, w in zip(columns, widths, strict=True)]

    def total(ws: list[int], kept: list[int]) -> int:
        return sum(ws[i] for i in kept) + 2 * (len(kept) - 1)

    kept = list(range(len(columns)))
    order = [columns.index(c) for c in drop_first if c in columns]
    order += [i for i in reversed(range(len(columns))) if i not in order]
    for index in order:
        if len(kept) <= 1 or total(floors, kept) <= width:
            break
        kept.remove(index)
    if total(widths, kept) <= width:
        return widths, kept
    low, high = 0, max(widths[i] for i in kept)  # the largest cap on column widths that fits
    while low < high:
        cap = (low + high + 1) // 2
        if total([max(f, min(w, cap)) for w, f in zip(widths, floors, strict=True)], kept) <= width:
            low = cap
        else:
            high = cap - 1
    fitted = [max(f, min(w, low)) for w, f in zip(widths, floors, strict=True)]
    spare = width - total(fitted, kept)
    for i in reversed(kept):  # what is left goes to the clipped columns, rightmost first
        extra = min(spare, widths[i] - fitted[i])
        fitted[i] += extra
        spare -= extra
    return fitted, kept


def format_table(rows: list[dict[str, Any]], columns: Sequence[str], width: int | None = None,
                 max_rows: int | None = None, max_cell: int | None = MAX_CELL,
                 drop_first: Sequence[str] = ()) -> str:
    """Rows as aligned text.

    ``width`` fits the lines to a terminal: a text cell wider than its column (at most
    ``max_cell``) is wrapped onto more lines, never cut, and the columns that still do not
    fit (``drop_first`` ones first) are named below the table; ``max_rows`` shows the first
    rows and counts the rest. Without ``width`` every cell is given whole on one line.
    """
    shown = rows if max_rows is None else rows[:max_rows]
    cells = [[_cell(row.get(c), None) for c in columns] for row in shown]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    kept = list(range(len(columns)))
    if width is not None:
        if max_cell is not None:  # a long text wraps in a column of readable width; the last takes the rest
            widths = [w if i == len(columns) - 1 else max(min(w, max_cell), len(c))
                      for i, (w, c) in enumerate(zip(widths, columns, strict=True))]
        widths, kept = _fit(columns, widths, width, drop_first)
    numeric = [all(_is_number(row.get(c)) for row in shown) for c in columns]

    def lines(values: Sequence[str]) -> list[str]:
        parts = {i: _wrap_cell(values[i], widths[i]) if width is not None else [values[i]] for i in kept}
        height = max((len(p) for p in parts.values()), default=1)
        out = []
        for n in range(height):
            line = []
            for i in kept:
                text = parts[i][n] if n < len(parts[i]) else ""
                line.append(text.rjust(widths[i]) if numeric[i] else text.ljust(widths[i]))
            out.append("  ".join(line).rstrip())
        return out

    out = lines(columns) + lines(["-" * w for w in widths])
    for r in cells:
        out.extend(lines(r))
    if len(shown) < len(rows):
        out.extend(_wrap_cell(f"… {len(rows) - len(shown)} more row(s) (--all shows them)", width))
    hidden = [c for i, c in enumerate(columns) if i not in kept]
    if hidden:
        out.extend(_wrap_cell(f"… {len(hidden)} more column(s) (--all shows them): {', '.join(hidden)}",
                              width))
    return "\n".join(out)


def _wrap_cell(text: str, width: int | None) -> list[str]:
    """A cell's text on lines of at most ``width``: at spaces where it can, else mid-word."""
    if width is None or len(text) <= width:
        return [text]
    import textwrap

    return textwrap.wrap(text, max(width, 1), break_on_hyphens=False, drop_whitespace=True) or [""]


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


#: Tables a person reads as prose (a finding's or a problem's detail): one block per row, the
#: detail wrapped on its own lines, as ``check`` gives them.
BLOCK_TABLES = {
    "violations": lambda r: (f"{r['rule']} [{r['severity']}] {r['capture']} frame {_cell(r['frame'])}"
                             f", association {_cell(r['association'])}, Message ID {_cell(r['message_id'])}"
                             f", {r['time_utc'] or 'time unknown'}: {r['peer']} ({r['peer_role']})"),
    "problems": lambda r: (f"{r['code']} {r['capture']} frame {_cell(r['frame'])}"
                           f", association {_cell(r['association'])}, {r['time_utc'] or 'time unknown'}"),
}


def format_blocks(name: str, rows: list[dict[str, Any]], width: int | None,
                  max_rows: int | None) -> str:
    """Rows of a BLOCK_TABLES table: a head line, then the detail indented (wrapped at
    ``width``, whole without it)."""
    out = []
    for row in rows if max_rows is None else rows[:max_rows]:
        out.extend(_wrapped(for_terminal(BLOCK_TABLES[name](row)), "", width, "  "))
        out.extend(_wrapped(for_terminal(row["detail"] or ""), "    ", width))
    if max_rows is not None and len(rows) > max_rows:
        out.append(f"… {len(rows) - max_rows} more (--all shows them)")
    return "\n".join(out)


def render_text(analysis: Analysis, width: int | None = None, max_rows: int | None = None,
                show_all: bool = False) -> str:
    """The summary first (captures, associations, C-GETs by final status, peers by verdict,
    findings), then the tables. ``width`` and ``max_rows`` fit a terminal (long text wrapped,
    never cut; the least needed columns left out and named); ``show_all`` lifts every limit
    and shows every column and the empty tables too."""
    from .report import summary_lines

    if show_all:
        width = max_rows = None
    out = ["Summary"]
    lines = summary_lines(analysis)
    label_width = max(len(label) for label, _ in lines)
    for label, text in lines:
        wrapped = _wrapped(for_terminal(text), " " * (label_width + 4), width)
        out.append(f"  {label.ljust(label_width)}  {wrapped[0].lstrip()}")
        out.extend(wrapped[1:])
    for name, columns in TERMINAL_COLUMNS.items():
        rows = analysis.rows(name)
        if name == "contexts":  # accepted first: a row limit never hides them behind refusals
            rows.sort(key=lambda row: row["result"] != 0)
        if not rows and not show_all and name in ("offending_elements", "problems", "statuses", "violations"):
            continue
        if name == "messages" and not show_all and not analysis.outside_retrieves:
            continue  # every message is in the C-GET tables already
        columns = shown_columns(name, rows, columns)
        out.append("")
        out.append(f"{TITLES[name]} ({len(rows)})")
        if not rows:
            out.append("(none)")
        elif name in BLOCK_TABLES and not show_all:
            out.append(format_blocks(name, rows, width, max_rows))
        else:
            out.append(format_table(rows, tuple(COLUMNS[name]) if show_all else columns, width, max_rows,
                                    MAX_CELL, NARROW_DROP.get(name, ())))
    return "\n".join(out) + "\n"


def _terminal_limits(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """Width and rows for table output: a terminal's size when writing to one (or COLUMNS when
    set), no limit when writing to a file or a pipe, none at all with --all."""
    if args.show_all:
        return None, None
    width = _text_width(args)
    return (width, TERMINAL_ROWS) if width is not None else (None, None)


def _write_csv(analysis: Analysis, folder: str) -> None:
    def table(name: str) -> Callable[[TextIO], None]:
        def write(handle: TextIO) -> None:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS[name]))
            writer.writeheader()
            for row in iter_rows(name, analysis):
                writer.writerow({k: "" if v is None else for_csv(v) for k, v in row.items()})
        return write

    # Links planted in the folder are replaced, never followed; no table is left half written.
    write_folder(folder, {f"{name}.csv": table(name) for name in TABLES})


def _write_parquet(analysis: Analysis, folder: str) -> None:
    """A Parquet dataset per table, ``folder/TABLE/``, partitioned by capture set: one file per
    set (``00000.parquet`` for the first set analysed, and so on; a table without a capture
    set, such as peers, or with no rows, is one file), each with the table's every column and
    the DataFrame's nullable types (Int64 stays int64 with nulls). pandas, pyarrow, Dask and
    DuckDB read the folder (or ``folder/TABLE/*.parquet``) as one table."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError("--format parquet needs pyarrow (pip install pyarrow)") from None
    arrow_types = {"int": pyarrow.int64(), "float": pyarrow.float64(), "str": pyarrow.string(),
                   "bool": pyarrow.bool_()}
    sets = {name: index for index, name in enumerate(analysis.capture_sets)}
    output_folder(folder)
    for name in TABLES:
        schema = pyarrow.schema([(column, arrow_types[kind]) for column, kind in COLUMNS[name].items()])
        table = pyarrow.Table.from_pandas(analysis.table(name), schema=schema, preserve_index=False)
        parts: dict[str, Any] = {}
        if "capture_set" not in COLUMNS[name] or table.num_rows == 0:
            parts["00000.parquet"] = table
        else:
            rows: dict[int, list[int]] = {}
            for row, capture_set in enumerate(table.column("capture_set").to_pylist()):
                rows.setdefault(sets.get(capture_set, len(sets)), []).append(row)
            for index, taken in sorted(rows.items()):
                parts[f"{index:05d}.parquet"] = table.take(taken)
        target = output_folder(os.path.join(folder, name))  # never a planted link
        for old in os.listdir(target):  # a dataset written before: its old parts would be read too
            if old.endswith(".parquet") and old not in parts:
                os.remove(os.path.join(target, old))  # a link is removed, never followed
        write_folder(target, {file: (lambda handle, part=part: pyarrow.parquet.write_table(part, handle))
                              for file, part in parts.items()}, binary=True)


def _write_html(analysis: Analysis, path: str) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--format html needs matplotlib (pip install matplotlib)") from None
    from .report import write_html

    write_html(analysis, path)


def _emit(text: str, path: str | None) -> None:
    if path is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `| head` has read what it wanted: not an error
            _quiet_stdout()
        return
    write_text(path, text)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _run(args: argparse.Namespace) -> Analysis:
    from .analysis import SchedulerError, find_inputs

    config, levels = _configuration(args)
    limits = _limits(args, config)
    progress = None
    if sys.stderr.isatty() and not args.quiet:
        found, _ = find_inputs(args.captures)
        files = [p for p in found if os.path.isfile(p)]
        # Inflated bytes are counted: a gzipped file's or a stream's total is not known.
        known = len(files) == len(found) and not any(p.endswith(".gz") for p in files)
        progress = _Progress(sum(os.path.getsize(p) for p in files) if known else None, len(found),
                             sys.stderr)
    try:
        analysis = analyze(args.captures, ports=args.port, on_progress=progress, rules=levels,
                           fast_lane=args.fast_lane, workers=args.workers, scheduler=args.scheduler,
                           on_set_done=progress.set_done if progress is not None else None,
                           on_file_done=progress.file_done if progress is not None else None,
                           errors="collect", limits=limits)
    except SchedulerError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if progress is not None:
            progress.close()
    # Named in the JSON, the summary and the report only when a file was read.
    analysis.configuration = config if config.path is not None else None
    analysis.rule_levels = levels
    for path in analysis.skipped:
        print(f"trace-analyzer: {path}: skipped (not a pcap or pcapng capture)", file=sys.stderr)
    for error in analysis.errors:
        print(f"trace-analyzer: {for_terminal(error)}", file=sys.stderr)
    return analysis


def check_results(analysis: Analysis) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each peers row with the violations rows about it, in the peers table's order."""
    by_peer: dict[tuple, list[dict]] = {}
    # Keyed as the rows are: a file name or AE title that was not valid text is cleaned there.
    records = {(free_text(r.capture), r.association): r for r in analysis.association_records}
    peer_columns = ("ae_title", "address", "implementation_class_uid", "implementation_version")
    for finding in analysis.rows("violations"):
        record = records.get((finding["capture_set"], finding["association"]))  # records name the set
        if record is None or finding["peer_side"] is None:
            continue
        key = tuple(clean_row(dict(zip(peer_columns, peer_key(record, finding["peer_side"]),
                                       strict=True))).values())
        by_peer.setdefault(key, []).append(finding)
    return [(peer, by_peer.get(tuple(peer[c] for c in peer_columns), [])) for peer in analysis.rows("peers")]


def _where(items: list[dict[str, Any]], limit: int | None) -> str:
    """Frames by capture file: ``D01.pcap frames 54, 60; D03.pcap frame 24``."""
    by_file: dict[str, list[str]] = {}
    for item in items[:limit]:
        by_file.setdefault(item["capture"] or "?", []).append(str(item["frame"]) if item["frame"] is not None
                                                                else "-")
    parts = [f"{name} frame{'s' if len(frames) > 1 else ''} {', '.join(frames)}"
             for name, frames in by_file.items()]
    more = f" (+{len(items) - limit} more; --verbose lists them)" if limit and len(items) > limit else ""
    return "; ".join(parts) + more


def _wrapped(text: str, indent: str, width: int | None, hang: str = "") -> list[str]:
    """A person's reading text on a terminal: wrapped to its width, never cut; lines after
    the first indented by ``hang`` more (a heading's continuation is not a new heading)."""
    if width is None:
        return [indent + text]
    import textwrap

    # Lines break at spaces only; a word (a file name) is split only when longer than a line.
    return textwrap.wrap(text, max(width, len(indent) + 20), initial_indent=indent,
                         subsequent_indent=indent + hang, break_on_hyphens=False) or [indent]


def render_check(analysis: Analysis, verbose: bool = False, width: int | None = None) -> str:
    """Each peer's verdict, then its findings grouped by rule with the capture and frame of each;
    the first finding's detail per rule, or every finding's with ``verbose``. ``width`` wraps the
    lines for a terminal."""
    out: list[str] = []
    config = analysis.configuration
    if config is not None and config.announcement() is not None:
        out.extend(_wrapped(for_terminal(config.announcement()[0].upper() + config.announcement()[1:]), "",
                            width, "    "))
        out.append("")
    results = check_results(analysis)
    if not results:
        out.append("No DICOM association found.")
    for peer, findings in results:
        implementation = peer["implementation_version"] or peer["implementation_class_uid"] or "unknown"
        out.extend(_wrapped(for_terminal(
            f"{peer['peer']} ({implementation}; {peer['roles']}): {peer['verdict'].upper()}"
            f" - {peer['errors']} error(s), {peer['warnings']} warning(s)"), "", width, "    "))
        grouped: dict[str, list[dict]] = {}
        for finding in findings:
            grouped.setdefault(finding["rule"], []).append(finding)
        for rule_id, items in sorted(grouped.items()):
            first = items[0]
            out.extend(_wrapped(for_terminal(f"{rule_id} [{first['severity']}] {first['section']} - "
                                             f"{len(items)} finding(s): {first['title']}"), "  ", width,
                                "  "))
            if verbose:
                for item in items:
                    out.extend(_wrapped(for_terminal(f"{_where([item], None)}: {item['detail']}"),
                                        "      ", width))
                continue
            out.extend(_wrapped(for_terminal(_where(items, 12)), "      ", width))
            out.extend(_wrapped(for_terminal(first["detail"]), "      ", width))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def check_json(analysis: Analysis, fail_on: str, status: int) -> dict[str, Any]:
    """``check``'s result for a machine: each peer's row with its findings, the captures, the
    configuration read and the exit status."""
    return {"exit_status": status, "fail_on": fail_on,
            "configuration": analysis.configuration.to_dict() if analysis.configuration else None,
            "captures": analysis.rows("captures"),
            "peers": [dict(peer, findings=findings) for peer, findings in check_results(analysis)]}


def check_junit(analysis: Analysis, fail_on: str) -> str:
    """JUnit XML as GitLab, Jenkins and GitHub read it: a test suite per peer, a test case per
    peer and checked rule (classname the peer, name the rule), failed when a finding reaches
    ``fail_on``, skipped when the rule was switched off; findings below it in system-out."""
    import xml.etree.ElementTree as ET

    from .rules import CATALOG, IMPLEMENTED, load_families

    load_families()
    threshold = ("error",) if fail_on == "error" else ("error", "warning")
    levels = dict(getattr(analysis, "rule_levels", {}) or {})
    root = ET.Element("testsuites", name="trace-analyzer check")
    total = failed = skipped = 0
    for peer, findings in check_results(analysis):
        label = for_terminal(peer["peer"])  # XML 1.0 holds no control character: escaped as \x..
        suite = ET.SubElement(root, "testsuite", name=label)
        by_rule: dict[str, list[dict]] = {}
        for finding in findings:
            by_rule.setdefault(finding["rule"], []).append(finding)
        counts = [0, 0, 0]
        for rule_id in CATALOG:
            if rule_id not in IMPLEMENTED:
                continue
            info = CATALOG[rule_id]
            case = ET.SubElement(suite, "testcase", classname=label, name=f"{rule_id} {info.title}")
            counts[0] += 1
            items = by_rule.get(rule_id, [])
            text = "\n".join(for_terminal(f"{_where([i], None)}: [{i['severity']}] {i['detail']}")
                              for i in items)
            if levels.get(rule_id) == "off":
                ET.SubElement(case, "skipped", message="switched off by the configuration or --rule")
                counts[2] += 1
            elif any(i["severity"] in threshold for i in items):
                failure = ET.SubElement(case, "failure", type=info.severity,
                                        message=for_terminal(f"{len(items)} finding(s): {info.section}"))
                failure.text = text
                counts[1] += 1
            elif items:
                ET.SubElement(case, "system-out").text = text
        suite.set("tests", str(counts[0]))
        suite.set("failures", str(counts[1]))
        suite.set("skipped", str(counts[2]))
        suite.set("errors", "0")
        total, failed, skipped = total + counts[0], failed + counts[1], skipped + counts[2]
    root.set("tests", str(total))
    root.set("failures", str(failed))
    root.set("skipped", str(skipped))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def run_check(args: argparse.Namespace) -> int:
    analysis = _run(args)
    _annotate(analysis, args)
    status = 2 if analysis.errors else 0
    dicom: dict[str, int] = {}  # per capture set: a connection counts in the file it began in
    for summary in analysis.capture_summaries:
        if not summary.error:
            dicom[summary.capture_set] = dicom.get(summary.capture_set, 0) + summary.dicom_connections
    for name, connections in dicom.items():
        if not connections:
            print(f"trace-analyzer: {for_terminal(name)}: no DICOM traffic found (try --port)",
                  file=sys.stderr)
            status = 2
    if status == 0:
        threshold = ("error",) if args.fail_on == "error" else ("error", "warning")
        status = 1 if any(f.severity in threshold for f in analysis.findings) else 0
    if args.junit is not None:
        write_text(args.junit, check_junit(analysis, args.fail_on))
    if args.format == "json":
        _emit(json.dumps(check_json(analysis, args.fail_on, status), allow_nan=False) + "\n", args.output)
    else:
        _emit(render_check(analysis, args.verbose, _text_width(args)), args.output)
    return status


def _checked(rule_id: str) -> str:
    from .rules import IMPLEMENTED, NOT_CHECKABLE

    if rule_id in IMPLEMENTED:
        return "yes"
    return "no: " + NOT_CHECKABLE[rule_id] if rule_id in NOT_CHECKABLE else "not yet"


def rule_examples() -> dict[str, dict[str, Any]]:
    """Per rule, a finding it made in a bundled sample capture (scripts/rule_examples.py)."""
    from importlib import resources

    try:
        data = resources.files("trace_analyzer.rules").joinpath("examples.json").read_text("utf-8")
        return json.loads(data)
    except (OSError, ValueError):
        return {}


#: What each pipeline event is, in words, for "judged on" in ``trace-analyzer rules ID``.
_EVENT_WORDS = {
    "pdu": "every PDU", "pdu_cut": "a PDU cut short", "associate_rq": "the A-ASSOCIATE-RQ",
    "associate_ac": "the A-ASSOCIATE-AC", "associate_rj": "the A-ASSOCIATE-RJ",
    "release_rq": "the A-RELEASE-RQ", "release_rp": "the A-RELEASE-RP", "abort": "an A-ABORT",
    "p_data": "every P-DATA-TF PDU and its PDVs", "p_data_run": "bulk P-DATA-TF PDUs",
    "problem": "a decoding fault", "message": "every DIMSE message", "c_get_rq": "each C-GET-RQ",
    "c_get_rsp": "each C-GET-RSP", "c_cancel": "each C-CANCEL-RQ", "c_store_rq": "each C-STORE-RQ",
    "c_store_rsp": "each C-STORE-RSP", "operation_final": "a C-GET's final response",
    "association_end": "the end of the association",
}


def render_rule(rule_id: str, width: int | None) -> str:
    """One rule as ``ruff rule`` explains one: title, severity, section, what it checks, an example."""
    from .rules import CATALOG, IMPLEMENTED

    info = CATALOG[rule_id]
    out = [*_wrapped(for_terminal(f"{info.id}: {info.title}"), "", width), ""]
    fields = [("Severity", f"{info.severity} (change it with --rule {info.id}=LEVEL or in {CONFIG_FILE})"),
              ("Section", info.section), ("Checked", _checked(rule_id))]
    events = list(dict.fromkeys(IMPLEMENTED.get(rule_id, ())))
    if events:
        judged = ", ".join(_EVENT_WORDS.get(e, e) for e in events)
        fields.append(("What it checks", f"judged on {judged}: a finding is made where the condition "
                       "above holds, naming the peer at fault, the frame and what was seen"))
    example = rule_examples().get(rule_id)
    if example is not None:
        where = (example["capture"] if "capture" in example else
                 f"the conversation {example['test']} builds,")
        fields.append(("Example", f"{where} frame {example['frame']}, {example['peer']}: "
                                  f"{example['detail']}"))
    else:
        fields.append(("Example", "none of the bundled sample captures or rule tests breaks it"))
    for label, text in fields:
        out.extend(_wrapped(for_terminal(f"{label}: {text}"), "", width))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def rules_markdown() -> str:
    """The catalog as docs/rules.md gives it (scripts/rule_examples.py writes that file)."""
    from .rules import CATALOG, load_families

    load_families()
    lines = ["# Conformance rules", "",
             "The rules `trace-analyzer check` judges, as `trace-analyzer rules` lists them (this file is",
             "written by `scripts/rule_examples.py`; `trace-analyzer rules ID` explains one, with an",
             "example). IDs other than `TA-` come from the C-GET conformance catalog,",
             "[cget-rules.md](cget-rules.md) section 5; `TA-` rules are the project's own.", "",
             "| rule | severity | checked | section | condition flagged |", "|---|---|---|---|---|"]
    for info in CATALOG.values():
        cells = [info.id, info.severity, _checked(info.id), info.section, info.title]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _run_watch(args: argparse.Namespace) -> int:
    from .watch import run_watch

    return run_watch(args)


def _run_proxy(args: argparse.Namespace) -> int:
    from .proxy import run_proxy

    return run_proxy(args)


def run_rules(args: argparse.Namespace) -> int:
    from .rules import CATALOG, load_families

    load_families()
    width = _text_width(args)
    if args.rule_id is not None:
        rule_id = args.rule_id.strip().upper()
        if rule_id not in CATALOG:
            raise UsageError(f"unknown rule {args.rule_id!r} (trace-analyzer rules lists them)")
        _emit(render_rule(rule_id, width), None)
        return 0
    rows = []
    for info in CATALOG.values():
        checked = _checked(info.id)
        title = info.title if checked == "yes" else f"{info.title} [{checked}]"
        rows.append({"rule": info.id, "severity": info.severity, "section": info.section, "title": title})
    _emit(format_table(rows, ("rule", "severity", "section", "title"), width, None, 28) + "\n", None)
    return 0


def _text_width(args: argparse.Namespace) -> int | None:
    """A terminal's width (or COLUMNS when set, for standard output); None for --output FILE or
    a pipe: nothing is wrapped or left out."""
    if getattr(args, "output", None) is not None:
        return None
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return shutil.get_terminal_size((100, 24)).columns
    return None


def run_analyze(args: argparse.Namespace) -> int:
    analysis = _run(args)
    _annotate(analysis, args)
    return deliver(analysis, args)


def deliver(analysis: Analysis, args: argparse.Namespace) -> int:
    """The analysis in ``args.format`` to ``args.output`` (analyze; watch and proxy at their end)."""
    if args.format == "json":
        if args.output is None:
            analysis.write_json(sys.stdout)
            sys.stdout.write("\n")
        else:
            with open_output(args.output) as handle:
                analysis.write_json(handle)
                handle.write("\n")
    elif args.format == "csv":
        folder = args.output or "trace-analyzer-csv"
        _write_csv(analysis, folder)
        print(f"trace-analyzer: wrote {len(TABLES)} CSV files to {for_terminal(folder)}", file=sys.stderr)
    elif args.format == "parquet":
        folder = args.output or "trace-analyzer-parquet"
        _write_parquet(analysis, folder)
        print(f"trace-analyzer: wrote {len(TABLES)} Parquet datasets (one folder per table, one file per "
              f"capture set) to {for_terminal(folder)}", file=sys.stderr)
    elif args.format == "html":
        path = args.output or "trace-analyzer-report.html"
        _write_html(analysis, path)
        print(f"trace-analyzer: wrote the report to {for_terminal(path)}", file=sys.stderr)
    elif len(analysis.errors) < len(analysis.capture_summaries):
        width, rows = _terminal_limits(args)
        _emit(render_text(analysis, width, rows, args.show_all), args.output)
    return 2 if analysis.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        run = {"analyze": run_analyze, "check": run_check, "rules": run_rules,
               "watch": _run_watch, "proxy": _run_proxy}.get(args.command)
        if run is not None:
            status = run(args)
            sys.stdout.flush()  # here, where a reader that closed the pipe is caught
            return status
    except (UsageError, OutputError) as exc:
        print(f"trace-analyzer: {for_terminal(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except OSError as exc:
        print(f"trace-analyzer: {for_terminal(exc.filename or '')}: {for_terminal(exc.strerror or exc)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2



if __name__ == "__main__":
    sys.exit(main())
