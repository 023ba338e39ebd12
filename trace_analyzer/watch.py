"""``trace-analyzer watch``: the live view over a capture as it is made.

The source is a live interface, read through the system's capture tool (``tcpdump -U -w -``, or
``dumpcap -w -`` where there is no tcpdump: this tool captures nothing itself), a pcap/pcapng
stream on standard input, or a capture file. Records are read as they arrive (the streaming
reader of capture.py) and fed, one by one, to the same
:class:`~trace_analyzer.analysis.CaptureAnalyzer` that ``analyze`` uses; the live view
(live_view.py) reads it meanwhile. Ctrl-C (or the stream's end) ends it as ``analyze`` ends.
Memory stays bounded: an association that ended keeps its rows, not its decoding state (the
analyzer drops a connection's session when it closes), and nothing of the stream is held beyond
the block being read; with ``--annotate`` the records are spooled to a file, not to memory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque

from .analysis import CaptureAnalyzer
from .capture import STDIN, CaptureError, iter_records
from .pcapng_writer import PcapngWriter
from .safe_text import for_terminal

#: Lines of the capture tool's standard error kept for the view.
LOG_LINES = 50


def capture_command(interface: str, ports: list[int]) -> list[str]:
    """The capture tool's command line: pcap (tcpdump) or pcapng (dumpcap) on its standard output."""
    bpf = " or ".join(f"tcp port {port}" for port in ports) if ports else "tcp"
    tcpdump = _tool("tcpdump")
    if tcpdump is not None:
        # -U: each packet written as it is captured; --immediate-mode: none held in the kernel.
        return [tcpdump, "-i", interface, "-U", "--immediate-mode", "-n", "-w", "-", bpf]
    dumpcap = _tool("dumpcap")
    if dumpcap is not None:
        return [dumpcap, "-i", interface, "-q", "-w", "-", "-f", bpf]
    raise FileNotFoundError("neither tcpdump nor dumpcap is installed: watching an interface needs one "
                            "(or feed a capture on standard input: ... | trace-analyzer watch -)")


def _tool(name: str) -> str | None:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_watch(args: argparse.Namespace) -> int:
    from .cli import UsageError
    from .live_view import LiveView, finish, live_console, settings

    if (args.capture is None) == (args.interface is None):
        raise UsageError("watch: give a CAPTURE (or - for standard input) or --interface IF, one of them")
    levels, limits = settings(args)
    log: deque[str] = deque(maxlen=LOG_LINES)
    tool = None
    fd = 0
    if args.interface is not None:
        try:
            command = capture_command(args.interface, args.port)
        except FileNotFoundError as exc:
            raise UsageError(str(exc)) from None
        # Its own process group: a Ctrl-C is ours to pass on, so that it flushes what it has.
        tool = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        fd = tool.stdout.fileno()
        # Without a live view its messages go to stderr as they come ("listening on ...").
        echo = args.quiet or live_console() is None
        threading.Thread(target=_collect, args=(tool.stderr, log, echo), daemon=True).start()
        path, name = STDIN, f"{os.path.basename(command[0])} -i {args.interface}"
    else:
        path = name = args.capture
    analyzer = CaptureAnalyzer(path if path != STDIN or tool is None else name, args.port,
                               rule_levels=levels, fast_lane=False, limits=limits)
    lock = threading.Lock()
    spool = spool_handle = None
    if args.annotate and path == STDIN:  # the stream is read once: its records are kept in a file
        descriptor, spool = tempfile.mkstemp(suffix=".pcapng", prefix=".trace-analyzer-watch-",
                                             dir=os.path.dirname(os.path.abspath(args.annotate)))
        spool_handle = os.fdopen(descriptor, "wb")
    stopping = []

    def interrupted(number, frame) -> None:
        if tool is not None and not stopping:  # the tool ends its stream: we read it to the end
            stopping.append(True)
            with contextlib.suppress(ProcessLookupError):
                tool.send_signal(signal.SIGINT)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    console = None if args.quiet else live_console()
    error = None
    try:
        live = contextlib.nullcontext()
        if console is not None:
            from rich.live import Live

            live = Live(LiveView(analyzer, lock, f"watch {for_terminal(name)}", log=log), console=console,
                        refresh_per_second=4, transient=False)
        with live:
            try:
                _feed(analyzer, lock, path, fd, spool_handle)
            except KeyboardInterrupt:
                pass
            except CaptureError as exc:
                error = str(exc)
    finally:
        signal.signal(signal.SIGINT, previous)
        if tool is not None:
            _stop(tool)
        if spool_handle is not None:
            spool_handle.close()
    try:
        if error is not None:
            if tool is not None:  # its stream, not standard input: say what the tool said
                error = f"{name}: no capture from the capture tool ({'; '.join(log) or error})"
            print(f"trace-analyzer: {for_terminal(error)}", file=sys.stderr)
            if analyzer.summary.frames == 0:
                return 2
        if tool is not None and console is not None:  # shown in the view; kept once it is gone
            for line in log:
                print(f"trace-analyzer: {for_terminal(line)}", file=sys.stderr)
        recorded = [(spool, analyzer.capture)] if spool else ([path] if path != STDIN else None)
        return finish(analyzer, args, recorded)
    finally:
        if spool:
            with contextlib.suppress(OSError):
                os.remove(spool)


def _feed(analyzer: CaptureAnalyzer, lock: threading.Lock, path: str, fd: int, spool) -> None:
    """Every record of the stream into the analyzer as it arrives (and into the spool)."""

    def problem(frame: int, text: str) -> None:
        with lock:
            analyzer.problem(frame, analyzer.summary.last_time or 0.0, "CAPTURE-TRUNCATED", text)

    writer = PcapngWriter(spool) if spool is not None else None
    interfaces: dict[int, int] = {}
    feed = analyzer.feed_frame
    for frame, time, linktype, data, wirelen in iter_records(path, problem, stdin_fd=fd):
        with lock:
            feed(frame, time, linktype, data)
        if writer is not None:
            interface = interfaces.get(linktype)
            if interface is None:
                interface = interfaces[linktype] = writer.add_interface(max(linktype, 0), "watch")
            writer.packet(interface, time, data, wirelen)


def _collect(stream, log: deque, echo: bool) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        log.append(line)
        if echo:
            print(f"trace-analyzer: {for_terminal(line)}", file=sys.stderr, flush=True)


def _stop(tool: subprocess.Popen) -> None:
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if tool.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            tool.send_signal(number)
        with contextlib.suppress(subprocess.TimeoutExpired):
            tool.wait(timeout=5)
