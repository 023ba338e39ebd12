"""Write trace_analyzer/rules/examples.json: for each rule, the first finding it makes in the
bundled sample captures (file, frame, detail), which `trace-analyzer rules ID` shows as its
example; and docs/rules.md, the catalog as the package has it. Run after a change to the rules
or the samples: tests/test_rules_command.py fails while either is stale."""

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


def main() -> None:
    EXAMPLES.write_text(json.dumps(examples(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    CATALOG_DOC.write_text(rules_markdown(), encoding="utf-8")
    print(f"wrote {EXAMPLES.relative_to(ROOT)} and {CATALOG_DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
