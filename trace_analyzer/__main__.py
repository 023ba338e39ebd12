"""``trace-analyzer`` and ``python -m trace_analyzer``: the command line's process entry.

pydicom, on import, loads its optional pixel-data plugins (numpy, Pillow and
others) and requests, about 0.2 s per run, none of which the command line
uses: it reads command sets and identifiers, never pixel data, and downloads
nothing. A process that is ours from the start hides them while pydicom
loads; they stay importable afterwards (pandas and matplotlib still get
numpy), and pydicom merely believes it has no pixel plugins. Library users,
who import trace_analyzer into their own process, are not touched.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_PYDICOM_EXTRAS = ("numpy", "PIL", "requests", "pylibjpeg", "openjpeg", "libjpeg", "gdcm", "rle",
                   "jpeg_ls", "pyjpegls", "pydicom_data")


def load_pydicom_without_extras() -> None:
    """Import the parts of pydicom we use with its optional extras hidden (see above)."""
    if "pydicom" in sys.modules:
        return
    hidden = [name for name in _PYDICOM_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes "import name" fail fast
    try:
        import pydicom.dataset  # noqa: F401
        import pydicom.filereader  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def main(argv: Sequence[str] | None = None) -> int:
    load_pydicom_without_extras()
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
