"""Writing output files without following links someone else planted.

Layer: presentation (the writers' file side). Users run the tool in folders other people
delivered, unpacked from archives that restore symbolic links: ``trace-analyzer-csv/peers.csv``
may point at ``~/.bashrc``. So no output is opened where it stands: each file is written to a
new temporary file in the target folder (created with ``O_EXCL | O_NOFOLLOW``, so nothing
already there is opened) and moved into place with :func:`os.replace`, which replaces a link at
the target instead of following it. A file is either the whole new output or what was there
before, never half written; the files of one folder (the CSV or Parquet tables) are all written
first and moved into place only when every one of them succeeded.

An output folder that is itself a link, that is not a folder, or that belongs to another user
is refused with :class:`OutputError` (one line for the command line).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from typing import IO, Any

from .safe_text import display_path


class OutputError(Exception):
    """An output that cannot be written safely; the message is one line."""


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _check_folder(folder: str, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"{display_path(folder)}: the output folder is a symbolic link; refusing to write "
                          "through it (give a real folder with --output)")
    if not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{display_path(folder)}: exists and is not a folder")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise OutputError(f"{display_path(folder)}: the output folder belongs to another user (uid "
                          f"{info.st_uid}); refusing to write into it")


def output_folder(folder: str) -> str:
    """Make sure ``folder`` is a real folder of ours, creating it (mode 0o777 less umask) if
    absent. Raises OutputError if it is a link, not a folder, or someone else's."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        try:
            parent = os.path.dirname(os.path.normpath(folder))
            if parent:
                os.makedirs(parent, exist_ok=True)
            os.mkdir(folder)
        except FileExistsError:  # appeared meanwhile: judge it as found
            pass
        except OSError as exc:
            raise OutputError(f"{display_path(folder)}: cannot create the output folder: "
                              f"{exc.strerror or exc}") from None
        info = os.lstat(folder)
    _check_folder(folder, info)
    return folder


class _Staged:
    """One output file being written under a temporary name in its folder."""

    def __init__(self, path: str, binary: bool) -> None:
        self.path = path
        folder, name = os.path.split(path)
        self.folder = folder or "."
        if not name:
            raise OutputError(f"{display_path(path)}: not a file name")
        self.temp = os.path.join(self.folder, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(self.temp, _FLAGS, 0o666)
        except OSError as exc:
            raise OutputError(f"{display_path(path)}: cannot write: {exc.strerror or exc}") from None
        self.handle: IO[Any] = (os.fdopen(fd, "wb") if binary
                                else os.fdopen(fd, "w", encoding="utf-8", newline=""))

    def check_target(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            raise OutputError(f"{display_path(self.path)}: is a folder, not a file")

    def commit(self) -> None:
        target = self.path
        self.check_target()
        try:
            os.replace(self.temp, target)  # a link at target is replaced, never followed
        except OSError as exc:
            raise OutputError(f"{display_path(target)}: cannot write: {exc.strerror or exc}") from None

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


@contextlib.contextmanager
def open_output(path: str, binary: bool = False) -> Iterator[IO[Any]]:
    """A file to write ``path`` through: UTF-8 text (``newline=""``: pass ``\\n`` yourself) or
    bytes. The file appears at ``path`` only when the block ends without an exception."""
    staged = _Staged(path, binary)
    try:
        yield staged.handle
        staged.handle.close()
        staged.commit()
    except BaseException:
        staged.discard()
        raise


def write_text(path: str, text: str) -> None:
    with open_output(path) as handle:
        handle.write(text)


def write_folder(folder: str, files: dict[str, Callable[[IO[Any]], None]], binary: bool = False) -> None:
    """Write every file of ``files`` (name -> a function writing its content) into ``folder``:
    each to a temporary file first; only when all are written are they moved into place, so
    a failure leaves the folder as it was (no half-written table, no mix of old and new)."""
    output_folder(folder)
    staged: list[_Staged] = []
    try:
        for name, write in files.items():
            one = _Staged(os.path.join(folder, name), binary)
            staged.append(one)
            write(one.handle)
            one.handle.close()
        for one in staged:  # every target checked before any is replaced
            one.check_target()
        for one in staged:
            one.commit()
    finally:
        for one in staged:
            if os.path.lexists(one.temp):
                one.discard()


__all__ = ["OutputError", "open_output", "output_folder", "write_folder", "write_text"]
