"""Command line: ``trace-analyzer analyze CAPTURE... [--port N] [--format table|json|csv] [--output PATH]``.

Layer: presentation. Exit status: 0 when every capture was analysed, 2 with
a one-line message per problem for unusable arguments or unreadable input
(the readable captures are still analysed and reported).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .analysis import Analysis, analyze
from .output_files import OutputError, open_output, output_folder, write_folder, write_text
from .rules import CONFIG_FILE
from .safe_text import clean_row, for_csv, for_terminal, free_text
from .tables import COLUMNS, TABLES, iter_rows, peer_key

#: Columns shown per table in the terminal; everything is in json/csv.
TERMINAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "associations": ("association", "client", "server", "calling_ae", "called_ae",
                     "requestor_implementation_version", "acceptor_implementation_version",
                     "requestor_max_pdu", "acceptor_max_pdu", "outcome", "first_frame", "last_frame"),
    "contexts": ("association", "context_id", "abstract_syntax_name", "abstract_syntax", "result_text",
                 "transfer_syntax_name", "requestor_may", "acceptor_may"),
    "operations": ("association", "message_id", "sop_class_name", "query_retrieve_level", "request_frame",
                   "status_hex", "status_category", "remaining", "completed", "failed", "warning",
                   "pending_responses", "sub_operations", "sub_operations_failed", "cancel_requested",
                   "duration_s", "status_meaning", "error_comment", "offending_element"),
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
    "peers": ("ae_title", "address", "implementation_version", "roles", "associations", "operations",
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
    "associations": ("requestor_implementation_version", "acceptor_implementation_version",
                     "requestor_max_pdu", "acceptor_max_pdu", "first_frame", "last_frame", "client",
                     "server"),
    "contexts": ("abstract_syntax", "requestor_may", "acceptor_may", "transfer_syntax_name"),
    "operations": ("sop_class_name", "query_retrieve_level", "request_frame", "pending_responses",
                   "sub_operations", "offending_element", "error_comment", "duration_s", "status_meaning",
                   "cancel_requested", "sub_operations_failed"),
    "progress": ("elapsed_s", "status_category"),
    "sub_operations": ("sop_class_name", "request_frame", "affected_sop_instance_uid", "dataset_bytes",
                       "status_meaning", "latency_s", "status_category"),
    "statuses": ("operations", "category"),
    "violations": ("peer_role", "association", "message_id", "severity"),
    "peers": ("implementation_version", "roles", "associations", "operations", "rules_broken", "address"),
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
    parser = _Parser(prog="trace-analyzer",
                     description="Rebuild and check DICOM C-GET exchanges from pcap/pcapng captures.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("analyze", help="decode every C-GET exchange in the captures")
    run.add_argument("captures", nargs="+", metavar="CAPTURE", help=_CAPTURE_HELP)
    run.add_argument("--port", type=int, action="append", default=[], metavar="N",
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
    check.add_argument("--port", type=int, action="append", default=[], metavar="N",
                       help="decode TCP port N as DICOM (repeatable)")
    check.add_argument("--fail-on", choices=("error", "warning"), default="error",
                       help="exit 1 when any finding reaches this severity (default: error)")
    _annotate_option(check)
    _rule_options(check)

    commands.add_parser("rules", help="list the conformance rules: ID, severity, checked or not, "
                                      "section, title")

    watch = commands.add_parser("watch", help="a live view of DICOM traffic: an interface (through tcpdump "
                                              "or dumpcap) or a pcap/pcapng stream")
    watch.add_argument("capture", nargs="?", metavar="CAPTURE | -",
                       help="a capture file or - (a pcap/pcapng stream on standard input); without it, "
                            "the interface given by --interface is captured")
    watch.add_argument("--interface", "-i", metavar="IF",
                       help="capture this interface live with tcpdump -U -w - (or dumpcap -w -)")
    watch.add_argument("--port", type=int, action="append", default=[], metavar="N",
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
    parser.set_defaults(no_config=False)  # (read where the configuration file can be declined)


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
                        help=f"TOML file with a [rules] table of ID = LEVEL "
                             f"(default: ./{CONFIG_FILE} if present)")


def _annotate_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotate", metavar="OUT.pcapng",
                        help="also write the capture as pcapng with every finding, problem and C-GET "
                             "final status as a comment on its frame (Wireshark: frame.comment)")


def _annotate(analysis: Analysis, args: argparse.Namespace, files: list[str] | None = None) -> None:
    """--annotate: the analysed files again as pcapng, the analysis in packet comments."""
    if not getattr(args, "annotate", None):
        return
    from .annotate import summaries, write_annotated
    from .capture import STDIN, CaptureError

    if files is None and any(c.capture == STDIN for c in summaries(analysis)):
        print("trace-analyzer: --annotate: standard input is read once and cannot be copied; "
              "the other captures are annotated", file=sys.stderr)
    try:
        done = write_annotated(analysis, args.annotate, files)
    except CaptureError as exc:
        raise UsageError(f"--annotate: {exc}") from None
    print(f"trace-analyzer: wrote {done.frames} frames with {done.comments} comment(s) to "
          f"{for_terminal(args.annotate)}", file=sys.stderr)


def _rule_levels(args: argparse.Namespace) -> dict[str, str]:
    """Levels from the config file, then --rule on top. Raises UsageError."""
    from .rules import ConfigError, load_config, parse_levels

    try:
        levels = load_config(args.config)
        levels.update(parse_levels(args.rule))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return levels


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
        self.c_gets += len(result.operations)
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

    ``width`` fits the lines to a terminal: cells are clipped with "…" and the
    columns that still do not fit (``drop_first`` ones first) are named below
    the table; ``max_rows`` shows the first rows and counts the rest.
    """
    shown = rows if max_rows is None else rows[:max_rows]
    cells = [[_cell(row.get(c), max_cell) for c in columns] for row in shown]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    kept = list(range(len(columns)))
    if width is not None:
        widths, kept = _fit(columns, widths, width, drop_first)
    numeric = [all(_is_number(row.get(c)) for row in shown) for c in columns]

    def line(values: Sequence[str]) -> str:
        parts = []
        for i in kept:
            text = _clip(values[i], widths[i])
            parts.append(text.rjust(widths[i]) if numeric[i] else text.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    if len(shown) < len(rows):
        out.append(_clip(f"… {len(rows) - len(shown)} more row(s) (--all shows them)", width))
    hidden = [c for i, c in enumerate(columns) if i not in kept]
    if hidden:
        out.append(_clip(f"… {len(hidden)} more column(s) (--all shows them): {', '.join(hidden)}", width))
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def render_text(analysis: Analysis, width: int | None = None, max_rows: int | None = None,
                show_all: bool = False) -> str:
    """The summary first (captures, associations, C-GETs by final status, peers by verdict,
    findings), then the tables. ``width`` and ``max_rows`` truncate for a terminal; ``show_all``
    lifts every limit and shows empty tables too."""
    from .report import summary_lines

    if show_all:
        width = max_rows = None
    out = ["Summary"]
    lines = summary_lines(analysis)
    label_width = max(len(label) for label, _ in lines)
    for label, text in lines:
        out.append(_clip(f"  {label.ljust(label_width)}  {for_terminal(text)}", width))
    for name, columns in TERMINAL_COLUMNS.items():
        rows = analysis.rows(name)
        if not rows and not show_all and name in ("offending_elements", "problems", "statuses", "violations"):
            continue
        if name == "messages" and not show_all and not (analysis.other_messages or analysis.unlinked_stores):
            continue  # every message is in the C-GET tables already
        out.append("")
        out.append(f"{TITLES[name]} ({len(rows)})")
        out.append(format_table(rows, columns, width, max_rows, None if show_all else MAX_CELL,
                                NARROW_DROP.get(name, ())) if rows else "(none)")
    return "\n".join(out) + "\n"


def _terminal_limits(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """Width and rows for table output: a terminal's size when writing to one (or COLUMNS when
    set), no limit when writing to a file or a pipe, none at all with --all."""
    if args.show_all:
        return None, None
    to_terminal = args.output is None and sys.stdout.isatty()
    if to_terminal or os.environ.get("COLUMNS", "").isdigit():
        return shutil.get_terminal_size((100, 24)).columns, TERMINAL_ROWS
    return None, None


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
        sys.stdout.write(text)
        return
    write_text(path, text)


def _run(args: argparse.Namespace) -> Analysis:
    from .analysis import SchedulerError, find_inputs

    levels = _rule_levels(args)
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
                           on_file_done=progress.file_done if progress is not None else None)
    except SchedulerError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if progress is not None:
            progress.close()
    for path in analysis.skipped:
        print(f"trace-analyzer: {path}: skipped (not a pcap or pcapng capture)", file=sys.stderr)
    for error in analysis.errors:
        print(f"trace-analyzer: {for_terminal(error)}", file=sys.stderr)
    return analysis


def render_check(analysis: Analysis) -> str:
    """Each peer's verdict, then its findings grouped by rule with their frames."""
    out = []
    peers = analysis.rows("peers")
    findings = analysis.rows("violations")
    by_peer: dict[tuple, list[dict]] = {}
    # Keyed as the rows are: a file name or AE title that was not valid text is cleaned there.
    records = {(free_text(r.capture), r.association): r for r in analysis.association_records}
    peer_columns = ("ae_title", "address", "implementation_class_uid", "implementation_version")
    for finding in findings:
        record = records.get((finding["capture_set"], finding["association"]))  # records name the set
        if record is None or finding["peer_side"] is None:
            continue
        key = tuple(clean_row(dict(zip(peer_columns, peer_key(record, finding["peer_side"]),
                                       strict=True))).values())
        by_peer.setdefault(key, []).append(finding)
    if not peers:
        out.append("No DICOM association found.")
    for peer in peers:
        key = (peer["ae_title"], peer["address"], peer["implementation_class_uid"],
               peer["implementation_version"])
        name = f"{peer['ae_title'] or '?'} @ {peer['address']}"
        implementation = peer["implementation_version"] or peer["implementation_class_uid"] or "unknown"
        out.append(f"{name} ({implementation}; {peer['roles']}): {peer['verdict'].upper()}"
                   f" - {peer['errors']} error(s), {peer['warnings']} warning(s)")
        grouped: dict[str, list[dict]] = {}
        for finding in by_peer.get(key, []):
            grouped.setdefault(finding["rule"], []).append(finding)
        for rule_id, items in sorted(grouped.items()):
            first = items[0]
            frames = ", ".join(str(f["frame"]) for f in items[:12] if f["frame"] is not None)
            more = f" (+{len(items) - 12} more)" if len(items) > 12 else ""
            out.append(f"  {rule_id} [{first['severity']}] {first['section']} - "
                       f"{len(items)} finding(s), frames {frames or '-'}{more}")
            out.append(f"      {first['detail']}")
        out.append("")
    # Every line holds wire text (AE titles, versions, details): each is made safe as a whole.
    return "\n".join(for_terminal(line) for line in out).rstrip() + "\n"


def run_check(args: argparse.Namespace) -> int:
    analysis = _run(args)
    _annotate(analysis, args)
    sys.stdout.write(render_check(analysis))
    if analysis.errors:
        return 2
    threshold = ("error",) if args.fail_on == "error" else ("error", "warning")
    return 1 if any(f.severity in threshold for f in analysis.findings) else 0


def run_rules(args: argparse.Namespace) -> int:
    from .rules import CATALOG, IMPLEMENTED, NOT_CHECKABLE, load_families

    load_families()
    rows = []
    for info in CATALOG.values():
        if info.id in IMPLEMENTED:
            checked = "yes"
        elif info.id in NOT_CHECKABLE:
            checked = "no: " + NOT_CHECKABLE[info.id]
        else:
            checked = "not yet"
        rows.append({"rule": info.id, "severity": info.severity, "checked": checked,
                     "section": info.section, "title": info.title})
    sys.stdout.write(format_table(rows, ("rule", "severity", "checked", "section", "title")) + "\n")
    return 0


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
    elif len(analysis.errors) < len(analysis.captures):
        width, rows = _terminal_limits(args)
        _emit(render_text(analysis, width, rows, args.show_all), args.output)
    return 2 if analysis.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "analyze":
            return run_analyze(args)
        if args.command == "check":
            return run_check(args)
        if args.command == "rules":
            return run_rules(args)
        if args.command == "watch":
            from .watch import run_watch

            return run_watch(args)
        if args.command == "proxy":
            from .proxy import run_proxy

            return run_proxy(args)
    except (UsageError, OutputError) as exc:
        print(f"trace-analyzer: {for_terminal(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"trace-analyzer: {for_terminal(exc.filename or '')}: {for_terminal(exc.strerror or exc)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
