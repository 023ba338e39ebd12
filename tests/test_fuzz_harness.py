"""A short fixed-seed run of benchmarks/fuzz.py (the harness is run by hand for minutes).

It also checks that the harness does what it says: its structure-aware mutants keep the TCP
streams whole (no capture loss where only a field changed, lengths fixed), so the damage reaches
the layer it aims at, and a real failure would be caught and written out.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import fuzz  # noqa: E402

import trace_analyzer  # noqa: E402

SEEDS = ["pynetdicom_to_pynetdicom_success.pcap", "dcmtk_to_dcmtk_success.pcap", "pynetdicom_cancel.pcap",
         "interleaved_two_associations.pcap", "fault_oversized_pdu_cut_pynetdicom.pcap",
         "pynetdicom_success.pcapng"]


def test_fixed_seed_run_finds_nothing(tmp_path):
    seeds = fuzz.seeds_from([str(ROOT / "sample_pcaps" / name) for name in SEEDS])
    result = fuzz.run(seeds, cases=60, seconds=None, seed=15, out=tmp_path, quiet=True)
    assert result["cases"] == 60
    assert not result["failures"], result["failures"][:3]
    kinds = result["kinds"]
    assert sum(n for k, n in kinds.items() if k.startswith("structure:")) > 20, kinds
    assert sum(n for k, n in kinds.items() if k.startswith("blind:")) > 8, kinds
    assert result["slowest"][0] < 30


def test_structure_mutants_keep_the_streams_whole(tmp_path):
    name = "pynetdicom_to_pynetdicom_success.pcap"
    pcap = fuzz.read_pcap((ROOT / "sample_pcaps" / name).read_bytes())
    rng = random.Random(4)
    checked = 0
    path = tmp_path / "mutant.pcap"
    while checked < 15:
        made = fuzz.mutate_structure(pcap, rng)
        if made is None or not made[2].startswith(("value set", "resized")) or "65536" in made[1]:
            continue
        path.write_bytes(made[0].to_bytes())
        analysis = trace_analyzer.analyze(str(path))
        lost = [p for p in analysis.problem_records if p.code in ("CAPTURE-HOLE", "CAPTURE-RESYNC")
                and "retransmi" not in p.detail]
        assert not [p for p in lost if p.code == "CAPTURE-HOLE"], (made[1], lost)
        checked += 1


def test_a_failure_is_caught_and_written(tmp_path, monkeypatch):
    def broken(path: str, fast_lane: bool):
        raise RuntimeError("planted")

    monkeypatch.setattr(fuzz, "tables_of", broken)
    seeds = fuzz.seeds_from([str(ROOT / "sample_pcaps" / SEEDS[0])])
    result = fuzz.run(seeds, cases=2, seconds=None, seed=1, out=tmp_path, quiet=True)
    assert len(result["failures"]) == 2 and "planted" in result["failures"][0][2]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".pcap", ".pcap", ".txt", ".txt"]
