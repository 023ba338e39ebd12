"""Write trace_analyzer/rules/examples.json: for each rule, the first finding it makes in the
bundled sample captures (file, frame, detail), or else in a conversation one of the rule tests
(tests/rules/) builds, which `trace-analyzer rules ID` shows as its example; and docs/rules.md,
the catalog as the package has it. Run after a change to the rules, their tests or the samples:
tests/test_first_hour.py fails while either file is stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trace_analyzer  # noqa: E402
from trace_analyzer.cli import rules_markdown  # noqa: E402

SAMPLES = ROOT / "sample_pcaps"
EXAMPLES = ROOT / "trace_analyzer" / "rules" / "examples.json"
CATALOG_DOC = ROOT / "docs" / "rules.md"


def examples() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for path in sorted(p for p in SAMPLES.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz")):
        analysis = trace_analyzer.analyze(str(path))
        for row in analysis.rows("violations"):
            found.setdefault(row["rule"], {"capture": f"sample_pcaps/{path.name}", "frame": row["frame"],
                                           "peer": row["peer"], "detail": row["detail"]})
    return dict(sorted(found.items()))


class _Recorder:
    """A pytest plugin: the first finding of each rule in any analysis a rule test makes."""

    def __init__(self) -> None:
        self.found: dict[str, dict] = {}
        self.test: str | None = None

    def pytest_configure(self, config) -> None:
        original = trace_analyzer.analyze

        def analyze(*args, **options):
            analysis = original(*args, **options)
            for row in analysis.rows("violations"):
                self.found.setdefault(row["rule"], {"test": self.test, "frame": row["frame"],
                                                    "peer": row["peer"], "detail": row["detail"]})
            return analysis

        trace_analyzer.analyze = analyze  # the rule tests call trace_analyzer.analyze

    def pytest_runtest_setup(self, item) -> None:
        self.test = item.nodeid


def crafted_examples() -> dict[str, dict]:
    import pytest

    recorder = _Recorder()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                        str(ROOT / "tests" / "rules")], plugins=[recorder])
    if code != 0:
        raise SystemExit(f"the rule tests failed (exit {code}): fix them first")
    return recorder.found


def main() -> None:
    found = examples()
    for rule_id, example in crafted_examples().items():
        found.setdefault(rule_id, example)
    EXAMPLES.write_text(json.dumps(dict(sorted(found.items())), indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    CATALOG_DOC.write_text(rules_markdown(), encoding="utf-8")
    print(f"wrote {EXAMPLES.relative_to(ROOT)} and {CATALOG_DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
