"""Mutations of real sample captures: damage never raises, and never rewrites the past.

Each real recording is damaged in one way at a time: the file cut at a byte
offset, bits flipped in one frame, a frame dropped, duplicated or moved
later, every frame cut to a snaplen of 96. For every damaged copy:

* ``trace_analyzer.analyze`` does not raise and reads the file;
* every problem and every finding carries a frame of the capture;
* every C-GET whose last message (request, responses, cancels, sub-operation
  requests and responses) lies wholly before the first damaged frame is
  reported exactly as in the undamaged capture: final status, counters,
  pending responses and sub-operations.

``TA_FUZZ_EXAMPLES`` sets how many damaged copies each sample and kind gets.
"""

from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import pytest
from fuzz_support import EXAMPLES, CaptureFile, Unit, cut_packet, flip, split_capture

import trace_analyzer
from trace_analyzer.operations import Operation

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"
#: Real recordings (pynetdicom and DCMTK peers), pcap and pcapng, one or more associations.
REAL = [
    "pynetdicom_to_pynetdicom_success.pcap",
    "pynetdicom_failed_warning_subops.pcap",
    "pynetdicom_cancel.pcap",
    "dcmtk_to_dcmtk_success.pcap",
    "pynetdicom_scu_to_dcmtk_scp.pcap",
    "interleaved_two_associations.pcap",
    "pynetdicom_success.pcapng",
]
KINDS = ["cut", "flip", "drop", "duplicate", "reorder"]


def _frame(primitive) -> int:
    if primitive is None:
        return 0
    return max(primitive.frame or 0, primitive.data_frame or 0)


def _last_frame(operation: Operation) -> int:
    frames = [_frame(operation.request)]
    frames += [_frame(r) for r in operation.responses]
    frames += [_frame(c) for c in operation.cancels]
    for sub in operation.sub_operations:
        frames += [_frame(sub.request), _frame(sub.response)]
    return max(frames)


def _counters(primitive) -> tuple:
    return (primitive.Status, primitive.NumberOfRemainingSuboperations,
            primitive.NumberOfCompletedSuboperations, primitive.NumberOfFailedSuboperations,
            primitive.NumberOfWarningSuboperations)


def _signature(operation: Operation) -> tuple:
    final = operation.final
    subs = tuple(
        (sub.request.MessageID if sub.request else None,
         sub.request.AffectedSOPInstanceUID if sub.request else None,
         sub.response.Status if sub.response else None,
         sub.get_message_id, sub.candidates)
        for sub in operation.sub_operations)
    return (
        _counters(final) if final is not None else None,
        _frame(final),
        tuple(_counters(r) for r in operation.pending_responses),
        len(operation.cancels),
        subs,
    )


def _key(operation: Operation) -> tuple:
    return (operation.association, operation.invoker, operation.message_id, _frame(operation.request))


class Baseline:
    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.raw = (SAMPLES / name).read_bytes()
        self.capture = split_capture(self.raw)
        analysis = trace_analyzer.analyze(str(SAMPLES / name))
        assert not analysis.errors and analysis.operation_records, name
        self.frames = analysis.capture_summaries[0].frames
        assert self.frames == len(self.capture.packets)
        self.operations = [(op, _key(op), _signature(op), _last_frame(op))
                           for op in analysis.operation_records]
        assert all(sig[0] is not None for _, _, sig, _ in self.operations), "samples' C-GETs all complete"
        self.tmp_path = tmp_path
        self.count = 0

    def check(self, raw: bytes, first_damaged: int, what: str, header_cut: bool = False) -> None:
        """Analyse a damaged copy; ``first_damaged`` is the first frame (1-based) the damage touches.

        ``header_cut``: the damage is in the file header, so the file may be refused as a whole.
        """
        self.count += 1
        path = self.tmp_path / f"m{self.count}{Path(self.name).suffix}"
        path.write_bytes(raw)
        context = f"{self.name}, {what} (first damaged frame {first_damaged}); copy at {path}"
        analysis = trace_analyzer.analyze(str(path), errors="collect")
        if analysis.errors:
            assert header_cut, (context, analysis.errors)
            [error] = analysis.errors
            assert error.startswith(f"{path}: ") and "\n" not in error
            path.unlink()
            return
        frames = analysis.capture_summaries[0].frames
        for problem in analysis.problem_records:
            assert isinstance(problem.frame, int) and 0 <= problem.frame <= frames + 1, (context, problem)
            assert problem.code and problem.detail, (context, problem)
        for finding in analysis.findings:
            assert isinstance(finding.frame, int) and 1 <= finding.frame <= frames + 1, (context, finding)
        seen = {_key(op): op for op in analysis.operation_records}
        for _, key, signature, last in self.operations:
            if last >= first_damaged:
                continue
            assert key in seen, f"{context}: C-GET {key} completed at frame {last} is no longer reported"
            assert _signature(seen[key]) == signature, f"{context}: C-GET {key} (last frame {last}) changed"
        # The tables are built from the same records: they must not raise either.
        for table in ("operations", "problems", "violations", "sub_operations", "associations"):
            analysis.rows(table)
        path.unlink()


def _mutants(capture: CaptureFile, raw: bytes, kind: str, rng: random.Random, count: int):
    """(damaged bytes, first damaged frame, description) for one kind of damage."""
    packets = capture.packets
    frames = len(packets)
    if kind == "cut":
        offsets = capture.packet_offsets()
        # Evenly spread over the file, then random; each lands inside some record or header.
        cuts = sorted({1 + (len(raw) - 2) * i // max(1, count - 1) for i in range(count)}
                      | {rng.randrange(1, len(raw)) for _ in range(count)})
        for cut in cuts:
            first = next((n for n, (_, end) in enumerate(offsets, 1) if end > cut), frames + 1)
            yield raw[:cut], first, f"cut at byte {cut} of {len(raw)}", cut < offsets[0][0]
        return
    for _ in range(count):
        frame = rng.randrange(1, frames + 1)
        index = packets[frame - 1]
        units = list(capture.units)
        if kind == "flip":
            n = rng.randrange(1, 4)
            positions = [rng.randrange(0, 1 << 16) for _ in range(n)]
            masks = [rng.randrange(1, 256) for _ in range(n)]
            units[index] = flip(units[index], positions, masks)
            what = f"bits flipped in frame {frame} at {positions} with {masks}"
        elif kind == "drop":
            del units[index]
            what = f"frame {frame} dropped"
        elif kind == "duplicate":
            units.insert(index + rng.randrange(1, 4), units[index])
            what = f"frame {frame} duplicated"
        else:  # reorder: the frame arrives a few frames later
            if frame == frames:
                continue
            later = min(frames - 1, frame - 1 + rng.randrange(1, 6))
            moved = units.pop(index)
            units.insert(packets[later], moved)
            what = f"frame {frame} moved after frame {later + 1}"
        yield CaptureFile(capture.kind, capture.head, units, capture.little).to_bytes(), frame, what, False


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", REAL)
def test_mutated_sample(name, kind, tmp_path):
    baseline = Baseline(name, tmp_path)
    rng = random.Random(f"{name}:{kind}")
    for raw, first, what, header_cut in _mutants(baseline.capture, baseline.raw, kind, rng, EXAMPLES):
        baseline.check(raw, first, what, header_cut)


@pytest.mark.parametrize("name", REAL)
def test_snaplen_96(name, tmp_path):
    """Every frame cut to 96 bytes: holes everywhere, reported with their frames, nothing raises."""
    baseline = Baseline(name, tmp_path)
    capture = baseline.capture
    units = [cut_packet(capture, unit, 96) if unit.is_packet else unit for unit in capture.units]
    cut = CaptureFile(capture.kind, capture.head, units, capture.little)
    first = next(n for n, i in enumerate(capture.packets, 1) if len(units[i].raw) < len(capture.units[i].raw))
    baseline.check(cut.to_bytes(), first, "snaplen 96")
    path = tmp_path / f"snap{Path(name).suffix}"
    path.write_bytes(cut.to_bytes())
    analysis = trace_analyzer.analyze(str(path), errors="collect")
    holes = [p for p in analysis.problem_records if p.code.startswith("CAPTURE-")]
    assert holes, "bytes cut by the snaplen are reported as capture faults"
    assert any("snaplen" in p.detail for p in holes)


@pytest.mark.parametrize("name", ["pynetdicom_to_pynetdicom_success.pcap", "dcmtk_to_dcmtk_success.pcap"])
def test_snaplen_keeps_head_of_capture(name, tmp_path):
    """A snaplen that only cuts the frames after some point leaves the C-GETs before it intact."""
    baseline = Baseline(name, tmp_path)
    capture = baseline.capture
    packets = capture.packets
    for start in (len(packets) // 2, len(packets) - 3, len(packets)):
        units: list[Unit] = list(capture.units)
        for index in packets[start - 1:]:
            units[index] = cut_packet(capture, units[index], 96)
        cut = CaptureFile(capture.kind, capture.head, units, capture.little)
        first = next((n for n, i in enumerate(packets, 1) if units[i] is not capture.units[i]),
                     len(packets) + 1)
        baseline.check(cut.to_bytes(), first, f"snaplen 96 from frame {start}")


def _gzip_cuts(raw: bytes) -> list[int]:
    rng = random.Random("gzip")
    return sorted({rng.randrange(30, len(raw)) for _ in range(EXAMPLES)} | {len(raw) - 8, len(raw) - 1})


def test_gzip_cut_never_raises(tmp_path):
    """A gzip-compressed capture cut short: no exception, one line if the file is refused."""
    raw = (SAMPLES / "retrieve.pcap.gz").read_bytes()
    whole = trace_analyzer.analyze(str(SAMPLES / "retrieve.pcap.gz"))
    path = tmp_path / "cut.pcap.gz"
    for cut in _gzip_cuts(raw):
        path.write_bytes(raw[:cut])
        analysis = trace_analyzer.analyze(str(path), errors="collect")
        if analysis.errors:  # nothing of the pcap header could be decompressed
            assert len(zlib.decompressobj(31).decompress(raw[:cut])) < 24, cut
            continue
        assert analysis.capture_summaries[0].frames <= whole.capture_summaries[0].frames
        assert any(p.code == "CAPTURE-TRUNCATED" for p in analysis.problem_records), cut
        assert all(isinstance(p.frame, int) for p in analysis.problem_records)


def test_gzip_cut_keeps_frames_before_the_cut(tmp_path):
    """Frames whose bytes decompress before the cut are all read, and the truncation has a frame."""
    raw = (SAMPLES / "retrieve.pcap.gz").read_bytes()
    capture = split_capture(gzip.decompress(raw))
    offsets = capture.packet_offsets()
    path = tmp_path / "cut.pcap.gz"
    for cut in (len(raw) - 8, len(raw) * 3 // 4, len(raw) // 2):
        path.write_bytes(raw[:cut])
        available = len(zlib.decompressobj(31).decompress(raw[:cut]))
        whole_frames = sum(1 for _, end in offsets if end <= available)
        analysis = trace_analyzer.analyze(str(path), errors="collect")
        assert analysis.capture_summaries[0].frames >= whole_frames, cut
        assert all(p.frame >= 1 for p in analysis.problem_records), cut
