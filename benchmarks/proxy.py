"""Benchmark the proxy: a large DCMTK retrieve (getscu from dcmqrscp) on loopback, direct and
relayed by ``trace-analyzer proxy``, wall time and the proxy's resident memory.

    python benchmarks/proxy.py                  # 200 MB: 40 CT images of 5 MB, 2 runs each way
    python benchmarks/proxy.py --size-mb 50 --runs 1

Each run gets a fresh dcmqrscp (the same files). The proxy runs as a user runs it (``--quiet``,
analysing live; ``--write`` adds the pcapng recording). Its resident memory is sampled every
0.2 s during the transfer (VmRSS) and its peak read at the end (VmHWM): flat means the samples
at the end are no higher than those early on. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from samples.capture import ManagedProcess, find_tool, free_port  # noqa: E402
from samples.dcmtk import run_getscu, wait_listening  # noqa: E402
from samples.instances import study_instances, study_uid, write_instances  # noqa: E402

TRACE_ANALYZER = str(Path(sys.executable).parent / "trace-analyzer")
IMAGE_BYTES = 5 * 1024 * 1024


def make_instances(folder: Path, size_mb: int) -> list[Path]:
    """CT images of 5 MB each, ``size_mb`` in all, one study."""
    template = study_instances(1)[0]
    rows = 1280
    columns = IMAGE_BYTES // (rows * 2)
    datasets = []
    for number in range(max(1, size_mb * 1024 * 1024 // IMAGE_BYTES)):
        ds = copy.deepcopy(template)
        uid = f"{template.SOPInstanceUID}.{number + 1}"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = number + 1
        ds.Rows, ds.Columns = rows, columns
        ds.PixelData = bytes((number + i) % 251 for i in range(251)) * (IMAGE_BYTES // 251) + bytes(
            IMAGE_BYTES % 251)
        datasets.append(ds)
    return write_instances(folder, datasets)


class QrScp:
    def __init__(self, workdir: Path, files: list[Path]) -> None:
        self.workdir, self.port = workdir, free_port()
        storage = workdir / "db"
        storage.mkdir(parents=True)
        for path in files:
            shutil.copy(path, storage / path.name)
        subprocess.run([find_tool("dcmqridx"), str(storage), *map(str, sorted(storage.glob("*.dcm")))],
                       check=True, capture_output=True, timeout=600)
        config = workdir / "dcmqrscp.cfg"
        config.write_text("\n".join([
            f"NetworkTCPPort  = {self.port}", "MaxPDUSize      = 65536", "MaxAssociations = 4",
            "HostTable BEGIN", "HostTable END", "VendorTable BEGIN", "VendorTable END", "AETable BEGIN",
            f"QRSCP {storage} RW (200, 4096mb) ANY", "AETable END", ""]))
        self.proc = ManagedProcess([find_tool("dcmqrscp", "dcmtk"), "-s", "-c", str(config), str(self.port)],
                                   cwd=workdir)
        wait_listening(self.port)

    def stop(self) -> None:
        self.proc.stop()


def _memory(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def retrieve(workdir: Path, port: int) -> tuple[float, int]:
    started = time.perf_counter()
    seen = run_getscu(port, workdir, {"StudyInstanceUID": study_uid(1)}, "STUDY", max_pdu=65536)
    return time.perf_counter() - started, seen["files_written"]


def proxied(workdir: Path, server_port: int, write: bool) -> dict:
    listen = free_port()
    cmd = [TRACE_ANALYZER, "proxy", "--quiet", "--listen", str(listen), "--forward",
           f"127.0.0.1:{server_port}", "--format", "json", "--output", str(workdir / "live.json")]
    if write:
        cmd += ["--write", str(workdir / "proxy.pcapng")]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            samples.append(_memory(proc.pid, "VmRSS"))

    try:
        wait_listening(listen, timeout=30)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        seconds, files = retrieve(workdir, listen)
        done.set()
        sampler.join()
        peak = _memory(proc.pid, "VmHWM")
    finally:
        done.set()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=600)
    return {"seconds": seconds, "files": files, "peak": peak, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ta-proxy-bench-") as scratch:
        folder = Path(scratch)
        folder.chmod(0o755)
        files = make_instances(folder / "instances", options.size_mb)
        total = sum(p.stat().st_size for p in files)
        print(f"{len(files)} CT images, {total / 1e6:.0f} MB, DCMTK getscu <- dcmqrscp, PDU 64 KiB, loopback")
        results: dict[str, list] = {"direct": [], "proxy": [], "proxy --write": []}
        for run in range(options.runs):
            for kind in results:
                workdir = folder / f"{kind.replace(' ', '_')}{run}"
                scp = QrScp(workdir / "scp", files)
                try:
                    if kind == "direct":
                        seconds, count = retrieve(workdir, scp.port)
                        results[kind].append({"seconds": seconds, "files": count})
                    else:
                        results[kind].append(proxied(workdir, scp.port, kind.endswith("--write")))
                finally:
                    scp.stop()
                shutil.rmtree(workdir / "scp", ignore_errors=True)
        direct = min(r["seconds"] for r in results["direct"])
        for kind, runs in results.items():
            best = min(r["seconds"] for r in runs)
            line = (f"{kind:14s} best {best:6.2f} s  ({total / best / 1e6:6.1f} MB/s)  files "
                    f"{runs[0]['files']}  added {100 * (best - direct) / direct:+6.1f} %")
            if kind != "direct":
                samples = runs[0]["samples"]
                quarter = max(1, len(samples) // 4)
                line += (f"  peak RSS {max(r['peak'] for r in runs) / 2**20:5.1f} MiB  RSS first quarter "
                         f"{max(samples[:quarter] or [0]) / 2**20:5.1f} MiB, last quarter "
                         f"{max(samples[-quarter:] or [0]) / 2**20:5.1f} MiB")
            print(line)


if __name__ == "__main__":
    main()
