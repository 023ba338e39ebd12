"""The command's process entry (trace_analyzer/__main__.py): what a run imports.

The command loads pydicom with its optional pixel plugins hidden, and JSON output
needs neither pandas nor numpy; both must still work when an output asks for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "sample_pcaps" / "pynetdicom_failed_warning_subops.pcap"

_RUN = """
import sys
from trace_analyzer.__main__ import main
code = main(sys.argv[1:])
loaded = sorted(m for m in ("numpy", "pandas", "matplotlib", "PIL", "requests", "scapy") if m in sys.modules)
print("LOADED", ",".join(loaded), code, file=sys.stderr)
"""


def _run(*args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    result = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True, timeout=120)
    line = next(x for x in result.stderr.splitlines() if x.startswith("LOADED"))
    return result, [m for m in line.split()[1].split(",") if m] if len(line.split()) > 2 else []


def test_json_run_imports_no_table_or_plot_library(tmp_path):
    out = tmp_path / "a.json"
    result, loaded = _run("analyze", str(SAMPLE), "--format", "json", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert loaded == [], loaded
    tables = json.loads(out.read_text())
    assert tables["operations"] and tables["sub_operations"]


def test_numpy_still_works_after_the_lean_start(tmp_path):
    # The html report draws its plots with matplotlib, which needs numpy: imported after pydicom.
    out = tmp_path / "report.html"
    result, loaded = _run("analyze", str(SAMPLE), "--format", "html", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert {"numpy", "matplotlib"} <= set(loaded)
    assert "<img" in out.read_text()


def test_installed_command_uses_this_entry():
    from importlib.metadata import entry_points

    [script] = [e for e in entry_points(group="console_scripts") if e.name == "trace-analyzer"]
    assert script.value == "trace_analyzer.__main__:main"


def test_library_import_leaves_pydicom_whole():
    # Only the command's own process hides pydicom's plugins; a library user's pydicom keeps numpy.
    code = (f"import numpy, trace_analyzer; trace_analyzer.analyze(r'{SAMPLE}'); "
            "import pydicom.pixel_data_handlers.numpy_handler as h; print(h.is_available())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr
