"""Plots of an :class:`~trace_analyzer.analysis.Analysis`, drawn with matplotlib.

Layer: presentation. Every function draws on the Axes (or Figure) it is given,
or on a new pyplot figure, and returns it so that it can be restyled, saved or
combined. An analysis with nothing to show gives an empty plot with its title,
axis labels and a short note, never an exception.

>>> from trace_analyzer import analyze, plots
>>> a = analyze("retrieve.pcap")
>>> ax = plots.plot_progress(a, message_id=7)
>>> ax.figure.savefig("progress.png")

The data come from ``analysis.rows(...)`` (plain dicts), so plotting needs
matplotlib but not pandas. matplotlib is imported when a plot is drawn, never
when :mod:`trace_analyzer` is imported.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .safe_text import clean_value, for_plot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .analysis import Analysis

#: Colours of the four sub-operation counters.
COUNTER_COLORS = {"remaining": "#7f7f7f", "completed": "#2ca02c", "failed": "#d62728", "warning": "#ff7f0e"}
#: Colours of status categories (None: no status seen).
CATEGORY_COLORS = {"Success": "#2ca02c", "Warning": "#ff7f0e", "Failure": "#d62728", "Cancel": "#9467bd",
                   "Pending": "#7f7f7f", "Incomplete": "#8c564b", None: "#1f77b4"}
_EMPTY_COLOR = "0.45"


# -- helpers ----------------------------------------------------------------


def _new_axes(ax: Axes | None, width: float = 7.0, height: float = 3.8) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _figure, new = plt.subplots(figsize=(width, height), layout="constrained")
    return new


def _empty(ax: Axes, title: str, xlabel: str, ylabel: str, note: str) -> Axes:
    """An empty plot that still says what it would show."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", color=_EMPTY_COLOR,
            fontsize="medium", wrap=True)
    return ax


def _origin(analysis: Analysis) -> float | None:
    """The start of the earliest readable capture: time zero of the time plots."""
    starts = [c.first_time for c in analysis.capture_summaries if c.first_time is not None]
    return min(starts) if starts else None


def _short(text: str | None, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


#: Characters of a capture name in a panel title: neighbouring panels' titles must not run
#: into each other (the full name is in the tables and the report's text).
TITLE_NAME = 32


def _capture_label(analysis: Analysis, capture: str | None) -> str:
    if capture is None or len(analysis.capture_summaries) < 2:
        return ""
    name = capture.replace(chr(92), "/").rsplit("/", 1)[-1]
    if len(name) > TITLE_NAME:  # shortened in the middle: the start and the rotation suffix stay
        name = name[:TITLE_NAME // 2 - 1] + "…" + name[-(TITLE_NAME // 2):]
    return f"{for_plot(name)}\n"  # on a line of its own, above the C-GET


def peer_names(analysis: Analysis) -> dict[tuple[str, int, str], str]:
    """``(capture, association, side) -> "AE @ address"``, the peers table's ``peer`` column
    (the AE title as that table gives it: hex when it was not valid text)."""
    from .tables import peer_labels

    return {key: clean_value("peer", label) for key, label in peer_labels(analysis).items()}


#: Peer colours: none of them red, green or orange, which mean a status category.
PEER_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#bcbd22", "#7f7f7f", "#393b79",
               "#637939", "#843c39")


def _peer_colors(peers: Iterable[str]) -> dict[str, str]:
    return {peer: PEER_COLORS[index % len(PEER_COLORS)] for index, peer in enumerate(sorted(set(peers)))}


#: Bars and peer series a bar chart shows at most; the rest are summed into one "other" bar and one
#: "other peers" series, so a capture with thousands of statuses or peers still gives a small figure.
MAX_BARS = 15
MAX_PEERS = 8


def bars_shown(count: int) -> int:
    """How many bars a chart of ``count`` labels shows (at least 2 for the figure height)."""
    return min(max(count, 2), MAX_BARS)


def _bounded(labels: list[str], counts: dict[str, dict[str, int]],
             noun: str) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The MAX_BARS - 1 biggest labels (in their order) and one "other" bar for the rest; the
    MAX_PEERS - 1 biggest peers and one "other peers" series."""
    if len(labels) > MAX_BARS:
        rank = {label: index for index, label in enumerate(labels)}
        totals = {label: sum(counts[label].values()) for label in labels}
        keep = set(sorted(labels, key=lambda label: (-totals[label], rank[label]))[:MAX_BARS - 1])
        other = f"other: {len(labels) - len(keep)} more {noun}"
        merged: dict[str, int] = defaultdict(int)
        for label in labels:
            if label not in keep:
                for peer, count in counts[label].items():
                    merged[peer] += count
        labels = [label for label in labels if label in keep] + [other]
        counts = {**{label: counts[label] for label in labels[:-1]}, other: dict(merged)}
    peer_totals: Counter[str] = Counter()
    for label in labels:
        peer_totals.update(counts[label])
    if len(peer_totals) > MAX_PEERS:
        top = {peer for peer, _ in sorted(peer_totals.items(), key=lambda item: (-item[1], item[0]))
               [:MAX_PEERS - 1]}
        other_peers = f"other peers ({len(peer_totals) - len(top)})"  # a peer's name always has " @ "
        regrouped = {}
        for label in labels:
            per_peer: dict[str, int] = defaultdict(int)
            for peer, count in counts[label].items():
                per_peer[peer if peer in top else other_peers] += count
            regrouped[label] = dict(per_peer)
        counts = regrouped
    return labels, counts


def _stacked_bars(ax: Axes, labels: list[str], counts: dict[str, dict[str, int]], legend_title: str,
                  noun: str = "bars") -> None:
    """Horizontal bars, one per label (top to bottom), stacked by peer; bounded (see _bounded)."""
    labels, counts = _bounded(labels, counts, noun)
    peers = sorted({peer for per_peer in counts.values() for peer in per_peer})
    colors = _peer_colors(peers)
    positions = list(range(len(labels)))[::-1]
    left = [0] * len(labels)
    for peer in peers:
        values = [counts[label].get(peer, 0) for label in labels]
        bars = ax.barh(positions, values, left=left, color=colors[peer], label=for_plot(peer), height=0.6)
        ax.bar_label(bars, labels=[str(v) if v else "" for v in values], label_type="center",
                     color="white", fontsize="small", fontweight="bold")
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(positions, labels)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(left) * 1.05 if left else 1)
    ax.set_ylim(-0.6, max(len(labels), 2) - 0.4)
    legend = ax.legend(title=legend_title, fontsize="small", title_fontsize="small", loc="upper left",
                       bbox_to_anchor=(1.01, 1.0), frameon=False)
    for text in legend.get_texts():  # peer names are wire text: never TeX, whatever rcParams say
        text.set_usetex(False)
    ax.grid(axis="x", alpha=0.3)


# -- progress ---------------------------------------------------------------


#: The services whose operations have sub-operations and counters: drawn by plot_progress.
RETRIEVES = ("C-GET", "C-MOVE")


def _select(rows: list[dict], message_id: int | None, association: int | None,
            capture: str | None, operation: int | None = None) -> list[dict]:
    return [row for row in rows
            if (message_id is None or row["message_id"] == message_id)
            and (operation is None or row["operation"] == operation)
            and (association is None or row["association"] == association)
            and (capture is None or capture in (row["capture"], row["capture_set"]))]


def _no_such_c_get(operations: list[dict], message_id: int | None, association: int | None,
                   capture: str | None, operation: int | None = None) -> str:
    """Why a selection found nothing, with the C-GETs there are to choose from."""
    wanted = ", ".join(f"{name}={value!r}" for name, value in
                       (("message_id", message_id), ("association", association), ("capture", capture),
                        ("operation", operation))
                       if value is not None)
    if not operations:
        return f"no C-GET matches {wanted}: this analysis holds no C-GET"
    there = "; ".join(f"message_id={o['message_id']} (association {o['association']}, {o['capture']})"
                      for o in operations[:20])
    more = f"; and {len(operations) - 20} more" if len(operations) > 20 else ""
    return f"no C-GET matches {wanted}; the C-GETs are: {there}{more}"


def plot_progress(analysis: Analysis, message_id: int | None = None, *, association: int | None = None,
                  capture: str | None = None, ax: Axes | None = None, legend: bool = True,
                  tables: dict[str, list[dict]] | None = None, operation: int | None = None) -> Axes:
    """Sub-operation counters of one C-GET (or C-MOVE) over time, from its pending and final responses.

    The C-GET is chosen by ``message_id`` (with ``association`` and ``capture``
    when several share it); with none given, the analysis must hold exactly one
    C-GET. Remaining, completed, failed and warning are drawn as steps against
    the seconds since the C-GET-RQ; a C-CANCEL-RQ and the final response are
    marked with their frame numbers, and an A-ABORT that ended a C-GET without a final
    response. A selection that matches no C-GET raises ValueError listing the C-GETs there
    are; one that matches several raises ValueError naming them. An analysis without any
    C-GET, with nothing selected, gives an empty plot.
    ``tables`` (``"operations"`` and ``"progress"`` rows) saves building them again
    when many C-GETs are drawn. ``operation`` (the tables' operation number) picks one
    C-GET whatever its Message ID (which may be absent or unreadable).
    """
    ax = _new_axes(ax)
    tables = tables or {name: analysis.rows(name) for name in ("operations", "progress")}
    operations = [o for o in _select(tables["operations"], message_id, association, capture, operation)
                  if o.get("service", "C-GET") in RETRIEVES]
    xlabel, ylabel = "seconds since the C-GET request", "sub-operations"
    if not operations and (message_id, association, capture, operation) != (None, None, None, None):
        raise ValueError(_no_such_c_get(tables["operations"], message_id, association, capture, operation))
    if not operations:
        return _empty(ax, "C-GET sub-operation progress", xlabel, ylabel, "No C-GET in this analysis")
    if len(operations) > 1:
        choices = ", ".join(f"(association={o['association']}, message_id={o['message_id']})"
                            for o in operations[:8])
        raise ValueError(f"{len(operations)} C-GETs match; choose one with message_id= and association= "
                         f"(and capture=): {choices}; plot_all_progress() draws them all")
    operation = operations[0]
    # By capture set: the responses of a C-GET that spans rotated files name the file each is in.
    key = (operation["capture_set"], operation["association"], operation["operation"])
    responses = [row for row in tables["progress"]
                 if (row["capture_set"], row["association"], row["operation"]) == key
                 and row.get("service", "C-GET") == operation.get("service", "C-GET")]
    status = operation["status_hex"] or operation["status_meaning"] or "no final response"
    category = operation["status_category"] if operation["status_hex"] else None
    title = (f"{_capture_label(analysis, operation['capture'])}{operation.get('service') or 'C-GET'} "
             f"{operation['message_id']} "
             f"(association {operation['association']}): {status}" + (f" {category}" if category else ""))
    if not responses:
        _empty(ax, title, xlabel, ylabel, "No C-GET response in the capture")
        ax.title.set_usetex(False)
        return ax

    # Completed, warning and failed stacked from the bottom, remaining on top: the
    # top edge is the total the SCP announced. An absent counter counts as 0 here
    # (the tables keep it null).
    timed = [row for row in responses if row["elapsed_s"] is not None]
    times = [row["elapsed_s"] for row in timed]
    final = next((row for row in timed if row["final"]), None)
    end = (final or timed[-1])["elapsed_s"] if timed else 0.0
    margin = max(end * 0.3, 1e-3)
    if timed:
        stack_x = [*times, end + margin]
        order = ("completed", "warning", "failed", "remaining")
        layers = [[row[c] or 0 for row in timed] for c in order]
        layers = [[*layer, layer[-1]] for layer in layers]
        ax.stackplot(stack_x, *layers, labels=order, colors=[COUNTER_COLORS[c] for c in order],
                     step="post", alpha=0.75, linewidth=0)
        totals = [sum(values) for values in zip(*layers, strict=True)]
        ax.step(stack_x, totals, where="post", color="black", linewidth=1, label="total")
        ax.plot(times, totals[:-1], "o", color="black", markersize=3)
    ax.axvline(0, color="0.6", linewidth=1, linestyle=":")
    top = max([sum(row[c] or 0 for c in COUNTER_COLORS) for row in responses] + [1])

    record = next((o for o in analysis.operation_records
                   if (o.capture, o.association, o.number) == key and o.service in RETRIEVES), None)
    start = operation["request_time"]
    if start is None and responses[0]["time"] is not None and responses[0]["elapsed_s"] is not None:
        start = responses[0]["time"] - responses[0]["elapsed_s"]
    if record is not None and record.cancels and start is not None:
        cancel = record.cancels[0]
        if cancel.time is not None:
            ax.axvline(cancel.time - start, color=CATEGORY_COLORS["Cancel"], linestyle="--", linewidth=1.5)
            ax.annotate(f"C-CANCEL\nframe {cancel.frame}", (cancel.time - start, top * 1.1), xytext=(-4, 0),
                        textcoords="offset points", ha="right", va="top", fontsize="small",
                        color=CATEGORY_COLORS["Cancel"])
    owner = None if record is None else (record.capture, record.association)
    abort = next((r for r in analysis.association_records if (r.capture, r.association) == owner), None)
    if final is None and abort is not None and abort.abort_time is not None and start is not None:
        # The A-ABORT that ended the association: where a C-GET without a final response stopped.
        ax.axvline(abort.abort_time - start, color=CATEGORY_COLORS["Failure"], linestyle="-.",
                   linewidth=1.5)
        ax.annotate(f"A-ABORT\nframe {abort.abort_frame}", (abort.abort_time - start, top * 0.75),
                    xytext=(4, 0), textcoords="offset points", ha="left", va="top", fontsize="small",
                    color=CATEGORY_COLORS["Failure"])
        end = max(end, abort.abort_time - start)
        margin = max(end * 0.3, 1e-3)
    if final is not None:
        color = CATEGORY_COLORS.get(final["status_category"], CATEGORY_COLORS[None])
        ax.axvline(final["elapsed_s"], color=color, linewidth=1.5)
        ax.annotate(f"final {final['status_hex']}\n{final['status_category'] or ''}\nframe {final['frame']}",
                    (final["elapsed_s"], top * 1.1), xytext=(4, 0), textcoords="offset points",
                    ha="left", va="top", fontsize="small", color=color,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
    ax.set_xlim(right=end + margin)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, top * 1.45 + 0.3)
    ax.set_xlim(left=min([0.0, *times]) - margin * 0.1)
    ax.set_title(title, usetex=False)  # it may name the capture file: wire text, never TeX
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize="small", loc="upper left", ncols=3)
    return ax


def plot_all_progress(analysis: Analysis, *, max_operations: int = 12, columns: int = 3,
                      figure: Figure | None = None) -> Figure:
    """:func:`plot_progress` for every C-GET (the first ``max_operations``), one panel each.

    C-GETs that did not end in Success come first. Returns the Figure; its
    ``axes`` are the panels.
    """
    tables = {name: analysis.rows(name) for name in ("operations", "progress")}  # built once for every panel
    operations = [o for o in tables["operations"] if o["service"] in RETRIEVES]
    ordered = sorted(operations, key=lambda o: o["status_category"] == "Success")[:max_operations]
    count = max(len(ordered), 1)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    if figure is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(4.6 * columns + 0.6, 3.4 * rows + 0.5), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    if not ordered:
        _empty(panels[0], "C-GET sub-operation progress", "seconds since the C-GET request",
               "sub-operations", "No C-GET in this analysis")
        return figure
    for index, (operation, ax) in enumerate(zip(ordered, panels, strict=False)):
        plot_progress(analysis, association=operation["association"], capture=operation["capture_set"],
                      ax=ax, legend=index == 0, tables=tables, operation=operation["operation"])
        ax.title.set_fontsize("medium")
    for ax in panels[len(ordered):]:
        ax.set_visible(False)
    shown = f"{len(ordered)} of {len(operations)}" if len(operations) > len(ordered) else str(len(operations))
    services = sorted({o["service"] for o in ordered}, key=RETRIEVES.index)
    figure.suptitle(f"Sub-operation progress of {shown} {' and '.join(services)}(s)")
    return figure


# -- statuses and findings ---------------------------------------------------


def status_counts(analysis: Analysis) -> list[dict[str, Any]]:
    """Non-success, non-pending statuses as rows: service, status, meaning, the peer that sent it, count."""
    from .status import status_category, status_hex, status_meaning

    names = peer_names(analysis)
    counts: Counter[tuple[str, int, str]] = Counter()

    def count(service: str, message: Any) -> None:
        status = message.Status
        if not isinstance(status, int) or isinstance(status, bool) or status in (0x0000, 0xFF00, 0xFF01):
            return
        peer = names.get((message.capture, message.association, message.sender), "?")
        counts[(service, status, peer)] += 1

    for operation in analysis.operation_records:
        for response in operation.responses:
            count(operation.service, response)
        for sub in operation.sub_operations:
            if sub.response is not None:
                count("C-STORE", sub.response)
    for sub in analysis.unlinked_stores:
        if sub.response is not None:
            count("C-STORE", sub.response)
    return [{"service": service, "status": status, "status_hex": status_hex(status),
             "category": status_category(status), "meaning": status_meaning(service, status),
             "peer": peer, "responses": responses}
            for (service, status, peer), responses in sorted(counts.items())]


def plot_statuses(analysis: Analysis, *, ax: Axes | None = None) -> Axes:
    """Non-success statuses (failure, cancel, warning) by service and status, stacked by sending peer."""
    rows = status_counts(analysis)
    ax = _new_axes(ax, 8.0, 1.6 + 0.45 * bars_shown(len({(r["service"], r["status"]) for r in rows})))
    title = "Non-success statuses by service and peer"
    if not rows:
        return _empty(ax, title, "responses", "", "Every C-GET and C-STORE response was Success or Pending")
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    labels = []
    for row in rows:
        label = (f"{row['service']} {row['status_hex']} {row['category']}\n"
                 f"{_short(row['meaning'], 44)}")
        if label not in counts:
            labels.append(label)
        counts[label][row["peer"]] = counts[label].get(row["peer"], 0) + row["responses"]
    _stacked_bars(ax, labels, counts, "sent by", "statuses")
    ax.set_title(title)
    ax.set_xlabel("responses")
    return ax


def plot_findings(analysis: Analysis, *, ax: Axes | None = None) -> Axes:
    """Conformance findings counted by rule (with its severity), stacked by the peer at fault."""
    findings = analysis.findings
    ax = _new_axes(ax, 8.0, 1.6 + 0.4 * bars_shown(len({f.rule for f in findings})))
    title = "Conformance findings by rule and peer"
    if not findings:
        return _empty(ax, title, "findings", "", "No conformance finding")
    names = peer_names(analysis)
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    order: Counter[str] = Counter()
    for finding in findings:
        label = f"{finding.rule} ({finding.severity})"
        peer = names.get((finding.capture, finding.association, finding.peer_side), finding.peer or "?")
        counts[label][peer] = counts[label].get(peer, 0) + 1
        order[label] += 1
    severity = {"error": 0, "warning": 1, "info": 2}
    labels = sorted(order, key=lambda label: (severity.get(label.rsplit("(", 1)[1].rstrip(")"), 3),
                                              -order[label], label))
    _stacked_bars(ax, labels, counts, "peer at fault", "rules")
    ax.set_title(title)
    ax.set_xlabel("findings")
    return ax


# -- timing -------------------------------------------------------------------


def _sub_operation_times(analysis: Analysis) -> list[dict[str, Any]]:
    origin = _origin(analysis)
    out = []
    for row in analysis.rows("sub_operations"):
        if row["request_time"] is None or origin is None:
            continue
        out.append({**row, "t": row["request_time"] - origin})
    return out


def plot_latency(analysis: Analysis, *, ax: Axes | None = None) -> Axes:
    """Each C-STORE sub-operation's latency (request to response), at its request time, coloured by status."""
    ax = _new_axes(ax, 8.0, 3.4)
    title = "C-STORE sub-operation latency"
    xlabel, ylabel = "seconds since the capture started", "latency (ms)"
    rows = _sub_operation_times(analysis)
    answered = [row for row in rows if row["latency_s"] is not None]
    if not answered:
        note = "No C-STORE sub-operation" if not rows else "No C-STORE sub-operation was answered"
        return _empty(ax, title, xlabel, ylabel, note)
    by_category: dict[str | None, list[dict]] = defaultdict(list)
    for row in answered:
        by_category[row["status_category"]].append(row)
    for category, items in by_category.items():
        ax.scatter([r["t"] for r in items], [r["latency_s"] * 1000 for r in items], s=22,
                   color=CATEGORY_COLORS.get(category, CATEGORY_COLORS[None]), label=category or "no status",
                   alpha=0.85, edgecolors="none")
    latencies = [r["latency_s"] * 1000 for r in answered]
    positive = [v for v in latencies if v > 0]
    if positive and max(positive) / max(min(positive), 1e-6) > 100:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    unanswered = len(rows) - len(answered)
    ax.set_title(title + (f" ({unanswered} unanswered, not shown)" if unanswered else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(title="C-STORE status", fontsize="small", title_fontsize="small")
    return ax


def _bin_width(span: float) -> float:
    """A round bin width giving about 30 bins over ``span`` seconds."""
    raw = max(span, 1e-3) / 30
    power = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if raw <= step * power:
            return step * power
    return 10 * power


def plot_throughput(analysis: Analysis, *, bin_s: float | None = None, ax: Axes | None = None) -> Axes:
    """Sub-operations answered per second (bars, by status) and data set MB/s (line, right axis).

    Sub-operations are counted at their response, in bins of ``bin_s`` seconds
    (about 30 bins over the capture by default). The right-hand Axes is
    ``ax.right_axis``.
    """
    ax = _new_axes(ax, 8.0, 3.4)
    title = "C-STORE sub-operation throughput"
    xlabel, ylabel = "seconds since the capture started", "sub-operations / s"
    rows = [row for row in _sub_operation_times(analysis) if row["latency_s"] is not None]
    if not rows:
        return _empty(ax, title, xlabel, ylabel, "No answered C-STORE sub-operation")
    done = [row["t"] + row["latency_s"] for row in rows]
    start, end = min(row["t"] for row in rows), max(done)
    width = bin_s if bin_s and bin_s > 0 else _bin_width(end - start)
    first = math.floor(start / width)
    bins = math.floor(end / width) - first + 1
    lefts = [(first + i) * width for i in range(bins)]
    per_category: dict[str | None, list[float]] = defaultdict(lambda: [0.0] * bins)
    volume = [0.0] * bins
    for row, when in zip(rows, done, strict=True):
        index = min(max(math.floor(when / width) - first, 0), bins - 1)
        per_category[row["status_category"]][index] += 1 / width
        volume[index] += (row["dataset_bytes"] or 0) / width / 1e6
    bottom = [0.0] * bins
    for category in sorted(per_category, key=lambda c: list(CATEGORY_COLORS).index(c)
                           if c in CATEGORY_COLORS else 99):
        values = per_category[category]
        ax.bar(lefts, values, width=width, bottom=bottom, align="edge", alpha=0.8,
               color=CATEGORY_COLORS.get(category, CATEGORY_COLORS[None]), label=category or "no status")
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    right = ax.twinx()
    centres = [left + width / 2 for left in lefts]
    right.step(centres, volume, where="mid", color="black", linewidth=1.2, label="data set MB/s")
    right.set_ylabel("data set MB/s")
    right.set_ylim(bottom=0)
    ax.right_axis = right  # type: ignore[attr-defined]
    ax.set_ylim(bottom=0)
    ax.set_title(f"{title} ({_format_width(width)} bins)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = right.get_legend_handles_labels()
    ax.legend(handles + more_handles, labels + more_labels, fontsize="small", loc="upper left")
    return ax


def _format_width(width: float) -> str:
    if width >= 1:
        return f"{width:g} s"
    return f"{width * 1000:g} ms"


def plot_timing(analysis: Analysis, *, figure: Figure | None = None) -> Figure:
    """Latency above throughput on a shared time axis; returns the Figure."""
    if figure is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(8.5, 6.4), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    plot_latency(analysis, ax=top)
    plot_throughput(analysis, ax=bottom)
    if top.get_xticks().size:
        top.set_xlabel("")
    return figure


__all__ = ["CATEGORY_COLORS", "COUNTER_COLORS", "MAX_BARS", "MAX_PEERS", "bars_shown", "peer_names",
           "plot_all_progress", "plot_findings", "plot_latency", "plot_progress", "plot_statuses",
           "plot_throughput", "plot_timing", "status_counts"]
