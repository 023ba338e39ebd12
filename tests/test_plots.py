"""Plots from an Analysis: they draw what the tables say, return their Axes/Figure, and an
analysis with nothing to show gives an empty, labelled plot rather than an exception."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import trace_analyzer  # noqa: E402
from trace_analyzer import plots  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"


@pytest.fixture(scope="module")
def warning():
    return trace_analyzer.analyze(str(SAMPLES / "pynetdicom_failed_warning_subops.pcap"))


@pytest.fixture(scope="module")
def cancel():
    return trace_analyzer.analyze(str(SAMPLES / "pynetdicom_cancel.pcap"))


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    """A readable capture without DICOM: every table is empty."""
    from builders import write_conversation

    path = tmp_path_factory.mktemp("plots") / "nothing.pcap"
    write_conversation(path, [])
    return trace_analyzer.analyze(str(path))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(ax: Axes) -> str:
    return " ".join(t.get_text() for t in ax.texts)


def test_progress_of_one_c_get_draws_the_counters_and_marks_the_final(warning):
    ax = plots.plot_progress(warning, message_id=3)
    assert isinstance(ax, Axes)
    assert "C-GET 3" in ax.get_title() and "0xB000" in ax.get_title()
    labels = {text.get_text() for text in ax.get_legend().get_texts()}
    assert {"completed", "warning", "failed", "remaining"} <= labels
    assert "final 0xB000" in _texts(ax) and "frame 34" in _texts(ax)
    # The stacked total is the number of sub-operations the SCP announced: 5 in every response.
    total = next(line for line in ax.get_lines() if line.get_label() == "total")
    assert set(total.get_ydata()) == {5}


def test_progress_marks_the_cancel(cancel):
    ax = plots.plot_progress(cancel)  # the only C-GET
    assert "C-CANCEL" in _texts(ax) and "0xFE00" in ax.get_title()
    [operation] = cancel.rows("operations")
    assert f"frame {operation['cancel_frame']}" in _texts(ax)


def test_progress_draws_on_the_given_axes(warning):
    figure, ax = plt.subplots()
    assert plots.plot_progress(warning, message_id=3, ax=ax) is ax


def test_progress_needs_one_c_get_when_several_match():
    analysis = trace_analyzer.analyze(str(SAMPLES / "interleaved_two_associations.pcap"))
    with pytest.raises(ValueError, match="association="):
        plots.plot_progress(analysis, message_id=1)
    ax = plots.plot_progress(analysis, message_id=1, association=2)
    assert "association 2" in ax.get_title()
    figure = plots.plot_all_progress(analysis)
    assert isinstance(figure, Figure)
    assert len([a for a in figure.axes if a.get_visible()]) == len(analysis.rows("operations"))


def test_statuses_by_service_and_peer(warning):
    rows = plots.status_counts(warning)
    assert {(r["service"], r["status_hex"]) for r in rows} == {
        ("C-GET", "0xB000"), ("C-STORE", "0xA700"), ("C-STORE", "0xB000"), ("C-STORE", "0xC000")}
    # A C-GET response comes from the C-GET SCP, a C-STORE response from the storage SCP (the SCU here).
    by = {(r["service"], r["status_hex"]): r["peer"] for r in rows}
    assert by[("C-GET", "0xB000")].startswith("GETSCP @") and by[("C-STORE", "0xA700")].startswith("GETSCU @")
    ax = plots.plot_statuses(warning)
    labels = " ".join(t.get_text() for t in ax.get_yticklabels())
    assert "C-STORE 0xA700" in labels and "Coercion" in labels
    assert {t.get_text() for t in ax.get_legend().get_texts()} == set(by.values())


def test_findings_by_rule_and_peer(warning):
    ax = plots.plot_findings(warning)
    labels = " ".join(t.get_text() for t in ax.get_yticklabels())
    for finding in warning.findings:
        assert finding.rule in labels
    assert ax.get_title() == "Conformance findings by rule and peer"


def test_latency_and_throughput(warning):
    ax = plots.plot_latency(warning)
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == len(warning.rows("sub_operations"))
    ax = plots.plot_throughput(warning)
    rate = sum(p.get_height() * p.get_width() for p in ax.patches)
    assert rate == pytest.approx(len(warning.rows("sub_operations")))
    assert ax.right_axis.get_ylabel() == "data set MB/s"
    assert isinstance(plots.plot_timing(warning), Figure)


@pytest.mark.parametrize("draw", [
    lambda a: plots.plot_progress(a), lambda a: plots.plot_statuses(a), lambda a: plots.plot_findings(a),
    lambda a: plots.plot_latency(a), lambda a: plots.plot_throughput(a),
    lambda a: plots.plot_all_progress(a).axes[0], lambda a: plots.plot_timing(a).axes[0],
])
def test_empty_analysis_gives_an_empty_labelled_plot(empty, draw, tmp_path):
    ax = draw(empty)
    assert ax.get_title() and ax.texts, "an empty plot still says what it shows and why it is empty"
    ax.figure.savefig(tmp_path / "empty.png")


def test_no_finding_and_only_success_give_empty_plots():
    analysis = trace_analyzer.analyze(str(SAMPLES / "pynetdicom_cancel.pcap"), rules={})
    ax = plots.plot_statuses(analysis)
    assert ax.get_yticklabels()  # the cancel is a non-success status
    success = trace_analyzer.analyze(str(SAMPLES / "dcmtk_to_dcmtk_success.pcap"))
    assert "Success or Pending" in _texts(plots.plot_statuses(success))


def test_importing_the_package_loads_no_plotting_library():
    import subprocess
    import sys

    code = ("import sys, trace_analyzer; a = trace_analyzer.analyze(sys.argv[1]); a.to_json(); "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "pynetdicom_cancel.pcap")],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_panel_titles_of_long_capture_names_fit_their_panels(tmp_path):
    # Two captures with long names: each panel title's lines stay within its panel's width.
    import builders
    import matplotlib

    matplotlib.use("Agg")
    names = []
    for index in range(2):
        path = tmp_path / f"pacs-archive-{index}-rotated-capture-of-the-night-shift-2026-12-02.pcap"
        builders.write_conversation(path, builders.retrieve(instances=1))
        names.append(str(path))
    analysis = trace_analyzer.analyze(names)
    figure = plots.plot_all_progress(analysis)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    panels = [ax for ax in figure.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 2
    for ax in panels:
        title = ax.title.get_window_extent(renderer)
        box = ax.get_window_extent(renderer)
        assert title.width <= box.width * 1.05, ax.get_title()
    left, right = (ax.title.get_window_extent(renderer) for ax in panels)
    assert not left.overlaps(right)
