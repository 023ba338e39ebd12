"""Benchmark capture sets analysed serially and in parallel (``--workers``).

Generates (unless they are there already) CAPTURES independent C-GET captures of about SIZE MB
each (make_capture.py's Ethernet-MTU shape, each an hour after the last, every one its own
association), then runs, in fresh processes, on the same folder:

* ``trace-analyzer analyze DIR --format json --output OUT --quiet`` (serial), and
* the same with ``--workers N``,

REPEAT times each, alternately (each round after a machine check: a pure-Python loop on N
processes against N times in one, which says how many cores the neighbours left), and prints
the best wall time of each, the peak RSS of the main process and of the largest worker process
(from /proc, VmHWM, polled every 20 ms), and the speed-up. The two JSON outputs are compared:
the benchmark fails if they differ.

    python3 benchmarks/parallel.py                       # 40 x 20 MB, --workers 2
    python3 benchmarks/parallel.py --captures 8 --size-mb 5 --repeat 1   # a quick look
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_capture import PcapWriter, write_association  # noqa: E402

#: One capture's data set size; the number of instances sets the file size.
INSTANCE_BYTES = 512 * 1024


def generate(folder: Path, captures: int, size_mb: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    instances = max(1, round(size_mb * 1e6 / (INSTANCE_BYTES * 1.04)))  # 4 % of headers at MSS 1448
    paths = []
    for index in range(captures):
        path = folder / f"pacs_{index:03d}.pcap"
        paths.append(path)
        if path.exists():
            continue
        writer = PcapWriter(str(path) + ".part")
        writer.clock += 3600.0 * index  # an hour apart: separate retrieves, not one capture rotated
        write_association(writer, index, instances, INSTANCE_BYTES, 1448, 16384)
        writer.close()
        os.replace(str(path) + ".part", path)
    return paths


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _peak(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, in kB."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS of the main process in MB, of its largest descendant in MB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, int] = {}
    while process.poll() is None:
        tree = _children()
        pending, seen = [process.pid], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            peak = _peak(pid)
            if peak is not None:
                peaks[pid] = max(peaks.get(pid, 0), peak)
            pending.extend(tree.get(pid, []))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        error = process.stderr.read().decode()
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {error}")
    main = peaks.pop(process.pid, 0)
    return wall, main / 1024, max(peaks.values(), default=0) / 1024


def _burn(turns: int) -> int:
    total = 0
    for number in range(turns):
        total += number * number
    return total


def machine_check(workers: int, turns: int = 10_000_000) -> float:
    """What the machine gives right now: a pure-Python loop run WORKERS times one after another
    and on WORKERS processes at once; the second's share of the first's time (1/WORKERS on idle
    cores; more when neighbours share them)."""
    import multiprocessing

    start = time.perf_counter()
    for _ in range(workers):
        _burn(turns)
    serial = time.perf_counter() - start
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        start = time.perf_counter()
        pool.map(_burn, [turns] * workers)
        parallel = time.perf_counter() - start
    return parallel / serial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=40)
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "ta-parallel-bench",
                        help="where the captures are kept between runs")
    args = parser.parse_args()

    folder = args.dir / f"{args.captures}x{args.size_mb:g}MB"
    started = time.perf_counter()
    paths = generate(folder, args.captures, args.size_mb)
    total = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} captures, {total / 1e6:,.0f} MB in {folder} "
          f"(ready in {time.perf_counter() - started:.1f} s); {os.cpu_count()} CPUs")
    base = [sys.executable, "-m", "trace_analyzer", "analyze", str(folder), "--format", "json", "--quiet",
            "--output"]
    outputs = {"serial": args.dir / "serial.json", "parallel": args.dir / "parallel.json"}
    commands = {"serial": base + [str(outputs["serial"])],
                "parallel": base + [str(outputs["parallel"]), "--workers", str(args.workers)]}
    best: dict[str, tuple[float, float, float]] = {}
    checks = []
    for run in range(args.repeat):
        checks.append(machine_check(args.workers))
        print(f"  run {run + 1} machine check: {args.workers} CPU-bound processes take {checks[-1]:.2f} of "
              "their serial time", flush=True)
        for name, command in commands.items():
            wall, main_mb, worker_mb = measure(command)
            print(f"  run {run + 1} {name:8s} {wall:6.2f} s  main {main_mb:5.0f} MB  "
                  f"largest worker {worker_mb:5.0f} MB", flush=True)
            if name not in best or wall < best[name][0]:
                best[name] = (wall, main_mb, worker_mb)
    same = outputs["serial"].read_bytes() == outputs["parallel"].read_bytes()
    serial, parallel = best["serial"], best["parallel"]
    print()
    print("| run | wall s | MB/s | peak RSS main | peak RSS per worker |")
    print("|---|---:|---:|---:|---:|")
    print(f"| serial | {serial[0]:.2f} | {total / 1e6 / serial[0]:,.0f} | {serial[1]:.0f} MB | - |")
    print(f"| --workers {args.workers} | {parallel[0]:.2f} | {total / 1e6 / parallel[0]:,.0f} | "
          f"{parallel[1]:.0f} MB | {parallel[2]:.0f} MB |")
    print()
    ratio = parallel[0] / serial[0]
    print(f"speed-up {serial[0] / parallel[0]:.2f}x (parallel takes {ratio:.2f} of the serial time; "
          f"target <= 0.6: {'met' if ratio <= 0.6 else 'NOT met'}); outputs identical: {same}")
    print(f"machine check: {args.workers} pure-Python processes took {min(checks):.2f} to {max(checks):.2f} "
          "of their serial time during these runs (what the cores allowed)")
    if not same:
        raise SystemExit("the serial and parallel JSON outputs differ")


if __name__ == "__main__":
    main()
