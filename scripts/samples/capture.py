"""Loopback packet capture (tcpdump / dumpcap) and small process helpers.

All waits are bounded.  Every process started here is stopped by its own pid
(SIGINT first, then SIGTERM, then SIGKILL), never by name.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

CAPTURE_READY_TIMEOUT = 10.0
FLUSH_DELAY = 0.5


class SampleError(RuntimeError):
    """A scenario could not be recorded."""


def find_tool(name: str, marker: str | None = None) -> str:
    """Path of an external tool.

    `marker` is a string that must appear in ``NAME --version`` output; it is used
    for DCMTK tools because pynetdicom installs console scripts with the same
    names (``getscu``, ``storescu``) that can shadow them on PATH.
    """
    candidates = []
    for directory in ("/usr/bin", "/usr/local/bin", "/usr/sbin"):
        candidates.append(os.path.join(directory, name))
    found = shutil.which(name)
    if found:
        candidates.append(found)
    for path in candidates:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        if marker is None:
            return path
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if marker in out.stdout + out.stderr:
            return path
    raise SampleError(f"tool {name!r} not found" + (f" (needs {marker!r})" if marker else ""))


def free_port(family: int = socket.AF_INET) -> int:
    """A currently unused TCP port chosen by the kernel."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on host:port.

    Note: this opens (and closes) one connection, so call it before the
    capture starts, or the probe would end up in the capture.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.connect((host, port))
                return
            except OSError:
                time.sleep(0.05)
    raise SampleError(f"nothing listening on {host}:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen, first: int = signal.SIGINT, timeout: float = 5.0) -> int:
    """Stop one process we started: `first` signal, then SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return proc.returncode
    for sig in (first, signal.SIGTERM, signal.SIGKILL):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait(timeout=timeout)


class _LineCollector(threading.Thread):
    """Reads a pipe line by line in the background and keeps the text."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self.lines: list[str] = []
        self._cond = threading.Condition()

    def run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if any(needle in line for line in self.lines):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or not self.is_alive():
                    return any(needle in line for line in self.lines)
                self._cond.wait(left)

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


class LoopbackCapture:
    """Capture ``tcp port P`` (one or more ports) on the loopback interface.

    ``tool="tcpdump"`` writes classic pcap (DLT_EN10MB on Linux ``lo``);
    ``tool="dumpcap"`` writes pcapng.  ``interface="any"`` gives Linux cooked
    headers with tcpdump (``-y LINUX_SLL`` forces version 1).

    Use as a context manager: the capture is listening when ``__enter__``
    returns and is stopped (SIGINT, wait) after a short flush delay on exit.
    """

    def __init__(
        self,
        path: Path,
        ports: list[int] | int,
        tool: str = "tcpdump",
        interface: str = "lo",
        linktype: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.ports = [ports] if isinstance(ports, int) else list(ports)
        self.tool = tool
        self.interface = interface
        self.linktype = linktype
        self.proc: subprocess.Popen | None = None
        self._stderr: _LineCollector | None = None
        self.summary = ""

    @property
    def bpf(self) -> str:
        return " or ".join(f"tcp port {p}" for p in self.ports)

    def _command(self) -> tuple[list[str], str]:
        if self.tool == "tcpdump":
            # --immediate-mode: without it packets may wait in the kernel ring (up to the
            # 1 s block timeout) and be lost when SIGINT ends the capture.
            cmd = [
                find_tool("tcpdump"),
                "-i",
                self.interface,
                "--immediate-mode",
                "-U",
                "-n",
                "-w",
                str(self.path),
            ]
            if os.geteuid() == 0:
                # Debian's tcpdump otherwise switches to user "tcpdump" before it
                # creates the file, which then cannot write into a root-owned directory.
                cmd += ["-Z", "root"]
            if self.linktype:
                cmd += ["-y", self.linktype]
            return cmd + [self.bpf], "listening on"
        if self.tool == "dumpcap":
            # dumpcap 4.0 writes pcapng by default; -n makes it explicit (it has no -F).
            cmd = [find_tool("dumpcap"), "-i", self.interface, "-n", "-w", str(self.path)]
            return cmd + ["-f", self.bpf], "Capturing on"
        raise ValueError(self.tool)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        cmd, ready = self._command()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._stderr = _LineCollector(self.proc.stderr)
        self._stderr.start()
        if not self._stderr.wait_for(ready, CAPTURE_READY_TIMEOUT):
            self.stop()
            raise SampleError(f"{self.tool} did not start: {self._stderr.text}")
        # The "listening" message is printed right after the socket is bound
        # and the filter attached; a short pause covers the rest of start-up.
        time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, signal.SIGINT)
        if self._stderr is not None:
            self._stderr.join(timeout=5)
            self.summary = self._stderr.text
        self.proc = None

    def __enter__(self) -> LoopbackCapture:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            # dumpcap has no immediate mode: give its 250 ms buffer timeout time to expire
            time.sleep(FLUSH_DELAY if self.tool == "tcpdump" else 1.0)
        self.stop()
        if self.path.exists():
            os.chmod(self.path, 0o644)  # dumpcap creates its file 0600
        if exc_type is None:
            if not self.path.exists() or self.path.stat().st_size <= 24:
                raise SampleError(f"capture {self.path.name} is empty: {self.summary}")
            dropped = re.search(r"(\d+) packets dropped by kernel", self.summary)
            if dropped and int(dropped.group(1)):
                raise SampleError(f"capture {self.path.name} dropped packets: {self.summary}")


class ManagedProcess:
    """A child process with collected stdout+stderr and guaranteed stop."""

    def __init__(self, cmd: list[str], cwd: Path | None = None) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._out = _LineCollector(self.proc.stdout)
        self._out.start()

    @property
    def output(self) -> str:
        return self._out.text

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise SampleError(f"{os.path.basename(self.cmd[0])} timed out: {self.output[-2000:]}") from exc
        finally:
            self._out.join(timeout=5)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM)
        self._out.join(timeout=5)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
