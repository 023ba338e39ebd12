"""``trace-analyzer proxy``: a recording relay between DICOM peers (asyncio streams).

For each connection accepted on a listener, one is opened to its forward address and bytes are
relayed both ways unchanged, no more held than one read in flight per direction. What passes
is turned into the frames a capture between client and server would hold
(:mod:`.tcp_frames`); each frame goes to the same :class:`~trace_analyzer.analysis.CaptureAnalyzer`
a capture file feeds, and, with ``--write``, to a pcapng file (one interface per listener).
A close or reset on one side is mirrored to the other; a connection that fails or misbehaves
is ended alone, noted in the log and the problems table (and, in the pcapng, as a comment on
its last frame), and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from .analysis import CaptureAnalyzer
from .packets import LINKTYPE_ETHERNET
from .pcapng_writer import PcapngWriter
from .tcp_frames import TcpConversation

#: Bytes asked of a socket per read: what is in flight in one direction at most.
READ_SIZE = 256 * 1024
#: Lines of the proxy's log kept for the live view.
LOG_LINES = 200


class ProxyError(Exception):
    """A listener cannot be set up (the address is in use, or not an address)."""


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``PORT`` (on ``default_host``). Raises ValueError."""
    host, separator, port = text.rpartition(":")
    if not separator:
        host, port = default_host, text
    host = host.strip("[]") or default_host
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"port {port} out of range")
    return host, number


@dataclass(slots=True)
class Pair:
    listen: tuple[str, int]
    forward: tuple[str, int]
    interface: int = 0
    server: asyncio.AbstractServer | None = None


@dataclass(slots=True, eq=False)  # kept in a set, by identity
class _Link:
    """One relayed connection: the two sides' streams and how it ended."""

    conversation: TcpConversation
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    server: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    name: str
    ended: bool = False  # reset on one side (mirrored): the other pump stops without a FIN
    eof: set[str] = field(default_factory=set)


class Recording:
    """Frames of every relayed conversation, in the order they were made: numbered, fed to the
    analyzer and written to the pcapng. ``lock`` is held while the analyzer is fed, so that a
    live view can read it from another thread.

    The relay only queues what it saw (:meth:`submit`); a thread of the recording's own makes
    the frames, writes and analyses them, in the order queued, so that the relay forwards the
    next bytes while the last ones are analysed. The queue is bounded (``QUEUED`` reads): a relay
    faster than the analysis waits for it rather than hold more."""

    QUEUED = 64

    def __init__(self, analyzer: CaptureAnalyzer, handle: BinaryIO | None = None) -> None:
        self.analyzer = analyzer
        self.writer = PcapngWriter(handle) if handle is not None else None
        self.frames = 0
        self.bytes = 0
        self.lock = threading.Lock()
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.on_log: Callable[[str], None] | None = None
        self.analysis_failed: str | None = None
        self._queue: queue.Queue = queue.Queue(self.QUEUED)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="recording", daemon=True)
        self._thread.start()

    def submit(self, function: Callable, *args) -> None:
        """Run ``function(*args)`` on the recording's thread, after everything queued before."""
        if self._thread is None:
            function(*args)
        else:
            self._queue.put((function, args))  # blocks (backpressure) only when the queue is full

    def stop(self) -> None:
        """Everything queued done, the thread ended."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            function, args = item
            try:
                function(*args)
            except Exception as exc:  # noqa: BLE001 - the recording goes on with the next event
                self.note(f"recording failed on one event: {exc!r}")

    def add_interface(self, name: str) -> int:
        return self.writer.add_interface(LINKTYPE_ETHERNET, name) if self.writer is not None else 0

    def frame(self, interface: int, time_: float, data: bytes, comments: list[str] = ()) -> None:
        # To the microsecond, as the pcapng holds it and its reader gives it back: the live
        # analysis and the recording's then agree to the last bit.
        seconds, micro = divmod(round(time_ * 1_000_000), 1_000_000)
        time_ = seconds + micro / 1_000_000
        self.frames += 1
        self.bytes += len(data)
        if self.writer is not None:
            self.writer.packet(interface, time_, data, comments=comments)
        if self.analysis_failed is not None:
            return
        with self.lock:
            try:
                self.analyzer.feed_frame(self.frames, time_, LINKTYPE_ETHERNET, data)
            except Exception as exc:  # noqa: BLE001 - the relay goes on; the failure is reported
                self.analysis_failed = f"analysis stopped at frame {self.frames}: {exc!r}"
                self.note(self.analysis_failed)

    def note(self, text: str, problem: str | None = None) -> None:
        """A line in the log; with ``problem`` (a code), a row in the problems table too."""
        line = f"{time.strftime('%H:%M:%S')} {text}"
        self.log.append(line)
        if self.on_log is not None:
            self.on_log(line)
        if problem is not None:
            with self.lock:
                self.analyzer.problem(self.frames, time.time(), problem, text)


class Proxy:
    """Relays every listener's connections to its forward address, recording them."""

    def __init__(self, pairs: list[tuple[tuple[str, int], tuple[str, int]]], recording: Recording) -> None:
        self.pairs = [Pair(listen, forward) for listen, forward in pairs]
        self.recording = recording
        self.links: set[_Link] = set()
        self.connections = 0
        self._tasks: set[asyncio.Task] = set()
        self.started = asyncio.Event()

    async def start(self) -> None:
        for pair in self.pairs:
            pair.interface = self.recording.add_interface(
                f"proxy {_show(pair.listen)} -> {_show(pair.forward)}")
            try:
                pair.server = await asyncio.start_server(
                    lambda r, w, pair=pair: self._accepted(pair, r, w), pair.listen[0], pair.listen[1],
                    reuse_address=True)
            except OSError as exc:
                await self.close()
                raise ProxyError(f"cannot listen on {_show(pair.listen)}: {exc.strerror or exc}") from None
            self.recording.note(f"listening on {_show(pair.listen)}, relaying to {_show(pair.forward)}")
        self.started.set()

    async def close(self) -> None:
        """Stop listening; reset the connections still open (both sides, and in the recording)."""
        for pair in self.pairs:
            if pair.server is not None:
                pair.server.close()
        for link in list(self.links):
            self._reset(link, "client", "the proxy was stopped", mirror_only=False)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for pair in self.pairs:
            if pair.server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pair.server.wait_closed(), 2)

    async def _accepted(self, pair: Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await self._serve(pair, reader, writer)
        except Exception as exc:  # noqa: BLE001 - one connection's failure is its own
            self.recording.note(f"connection from {writer.get_extra_info('peername')} failed: {exc!r}")
            _abort(writer)

    async def _serve(self, pair: Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        client = writer.get_extra_info("peername")[:2]
        interface = pair.interface

        def emit(when: float, data: bytes, comments: list[str]) -> None:
            self.recording.frame(interface, when, data, comments)

        conversation = TcpConversation(client, pair.forward, emit,
                                       checksums=self.recording.writer is not None)
        name = f"{_show(client)} -> {_show(pair.forward)}"
        try:
            server = await asyncio.wait_for(asyncio.open_connection(*pair.forward), 10)
        except (TimeoutError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            text = f"{name}: the server refused or did not answer ({reason}): client reset"
            self.recording.submit(conversation.refused, time.time(), [f"proxy: {text}"])
            self.recording.submit(self.recording.note, text, "PROXY-CONNECT-FAILED")
            _abort(writer)
            return
        _set_nodelay(server[1])
        _set_nodelay(writer)
        link = _Link(conversation, (reader, writer), server, name)
        self.links.add(link)
        self.recording.submit(conversation.handshake, time.time())
        self.recording.submit(self.recording.note, f"{name}: connected")
        try:
            await asyncio.gather(self._pump(link, "client"), self._pump(link, "server"))
        except Exception as exc:  # noqa: BLE001 - this connection ends; the others go on
            self._reset(link, "client", f"relay failed ({exc!r})", mirror_only=False)
        finally:
            self.links.discard(link)
            for _, side_writer in (link.client, link.server):
                side_writer.close()

    async def _pump(self, link: _Link, side: str) -> None:
        """Bytes from ``side`` to the other, until that side closes or resets."""
        reader = (link.client if side == "client" else link.server)[0]
        writer = (link.server if side == "client" else link.client)[1]
        other = TcpConversation.other(side)
        while True:
            try:
                data = await reader.read(READ_SIZE)
            except OSError as exc:  # a reset (ECONNRESET), or the socket failed
                if not link.ended:
                    self._reset(link, side, f"the {side} reset the connection ({exc.strerror or exc})")
                return
            if link.ended:
                return
            if not data:
                self.recording.submit(link.conversation.fin, side, time.time())
                link.eof.add(side)
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                if link.eof == {"client", "server"}:
                    self.recording.submit(self.recording.note, f"{link.name}: closed")
                return
            try:
                writer.write(data)
                self.recording.submit(link.conversation.data, side, data, time.time())
                await writer.drain()
            except OSError as exc:  # the other side is gone: its own read says how
                if not link.ended:
                    self._reset(link, other, f"the {other} reset the connection ({exc.strerror or exc})")
                return

    def _reset(self, link: _Link, side: str, why: str, mirror_only: bool = True) -> None:
        """``side`` reset (or the proxy ends the link): recorded, and mirrored as a reset to the
        other side (both when the proxy itself ends it)."""
        if link.ended:
            return
        link.ended = True
        text = f"{link.name}: {why}" + ("; reset mirrored to the " + TcpConversation.other(side)
                                        if mirror_only else "")
        self.recording.submit(link.conversation.reset, side, time.time(), [f"proxy: {text}"])
        self.recording.submit(self.recording.note, text, "PROXY-RESET")
        for _, writer in (link.client, link.server):
            _abort(writer)


def _show(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0), not a FIN: what the other side did, mirrored."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def run(proxy: Proxy, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then close everything (what is queued is recorded)."""
    proxy.recording.start()
    try:
        await proxy.start()
        try:
            await stop.wait()
        finally:
            await proxy.close()
    finally:
        proxy.recording.stop()


# -- the command ------------------------------------------------------------------------------


def run_proxy(args) -> int:
    """``trace-analyzer proxy``: relay and analyse until Ctrl-C (or SIGTERM), then report."""
    import os
    import signal
    import sys
    import tempfile

    from .cli import UsageError
    from .live_view import LiveView, finish, live_console, settings
    from .output_files import open_output

    if len(args.listen) != len(args.forward):
        raise UsageError(f"{len(args.listen)} --listen but {len(args.forward)} --forward: give them in pairs")
    try:
        pairs = [(parse_address(listen), parse_address(forward))
                 for listen, forward in zip(args.listen, args.forward, strict=True)]
    except ValueError as exc:
        raise UsageError(f"--listen/--forward: {exc} (HOST:PORT, [IPv6]:PORT or PORT)") from None
    levels, limits = settings(args)
    # The relay waits for the GIL whenever the recording thread holds it: handed over more often,
    # the relay's turn (a few microseconds of work between two socket calls) comes sooner.
    sys.setswitchinterval(0.0005)
    name = args.write or "proxy"
    spool = None
    if args.annotate and not args.write:  # annotating needs the frames again: kept beside the output
        fd, spool = tempfile.mkstemp(suffix=".pcapng", prefix=".trace-analyzer-proxy-",
                                     dir=os.path.dirname(os.path.abspath(args.annotate)))
        os.close(fd)
    # The servers' ports are decoded as DICOM whatever arrives: garbage there is reported.
    analyzer = CaptureAnalyzer(name, [forward[1] for _, forward in pairs], rule_levels=levels,
                               fast_lane=False, limits=limits)
    console = None if args.quiet else live_console()
    try:
        with contextlib.ExitStack() as stack:
            handle = None
            if args.write:
                handle = stack.enter_context(open_output(args.write, binary=True))
            elif spool:
                handle = stack.enter_context(open(spool, "wb"))  # noqa: SIM115 (closed by the stack)
            recording = Recording(analyzer, handle)
            if console is None:
                recording.on_log = lambda line: print(f"trace-analyzer: proxy: {line}", file=sys.stderr,
                                                      flush=True)
            proxy = Proxy(pairs, recording)

            async def main() -> None:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for number in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(number, stop.set)
                await run(proxy, stop)

            if console is not None:
                from rich.live import Live

                view = LiveView(analyzer, recording.lock, "proxy",
                                lambda: f"connections {proxy.connections} open {len(proxy.links)}",
                                recording.log)
                with Live(view, console=console, refresh_per_second=4, transient=False):
                    asyncio.run(main())
            else:
                asyncio.run(main())
            if handle is not None:
                handle.flush()
        recorded = [(args.write or spool, name)] if (args.write or spool) else None
        return finish(analyzer, args, recorded)
    except ProxyError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if spool:
            with contextlib.suppress(OSError):
                os.remove(spool)
