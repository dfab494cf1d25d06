"""Files that survive a crash, shared by every layer: atomic writes (temp file, fsync, os.replace), one writer
per folder (a lock file), append-and-flush CSV logs, and the user's gazeneg cache folder."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path via a temp file in the same folder and os.replace: never half-written."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:   # name the file being written, not the temp name (ENAMETOOLONG on a long name)
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; a written file gets the user's usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_figure(fig, path: Path, *, dpi: int = 110) -> str:
    """A matplotlib figure written atomically as PNG (tight layout), then closed; returns the file name."""
    import matplotlib.pyplot as plt  # matplotlib only for the writers of figures

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path).name


def lock_folder(folder: Path, what: str, error=ValueError) -> FileLock:
    """Take the exclusive lock folder/.<what>.lock (one writer per folder: two writers appending to one file
    would duplicate rows) and return it, held; the caller releases it. Raises error(message) naming the
    folder when another process holds it."""
    path = Path(folder) / f".{what}.lock"
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise error(f"{folder} is in use by another {what} (it holds {path}); wait for it to finish or choose "
                    "another --out") from None
    return lock


def append_csv_rows(path: Path, fieldnames, rows, *, ignore_extra: bool = False) -> None:
    """Append rows to a CSV log (the header first when the file is new) in one write, flushed to disk: a
    crash leaves every row either wholly in the file or not at all (a cut-off last line at worst, which
    the readers drop). ignore_extra: leave out keys that are not fieldnames instead of refusing them."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore" if ignore_extra else "raise")
    if not path.exists():
        w.writeheader()
    w.writerows(rows)
    with open(path, "a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def cache_root() -> Path:
    """The gazeneg cache folder (models/, media/, data/ below it), created on demand by the writers."""
    env = os.environ.get("GAZENEG_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "gazeneg"
