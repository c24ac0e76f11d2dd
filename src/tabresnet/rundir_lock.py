"""One writer per run directory, and staging folders that clean up after a kill.

``fit`` builds a run directory under a hidden staging name beside ``--out`` and
renames it into place when it is complete. This module makes that safe when
several processes are involved::

    lock, staging = open_run(out, check=lambda: check_out(out))
    try:
        ...                          # write the run into ``staging``, rename it to ``out``
    finally:
        lock.release()

- :class:`RunDirLock` holds an advisory lock on ``.<name>.lock`` beside
  ``out`` (``flock``: the kernel drops it when the process dies, so a killed
  run never leaves a lock behind). A second process that wants to write the
  same ``out`` gets a one-line :class:`~tabresnet.errors.ConfigError`
  instead of silently replacing the first one's run.
- :func:`make_staging` creates the staging folder with ``os.mkdir`` (so it
  follows the user's umask, like every other file of a run) under a name that
  carries the host and the process id, and first removes the staging folders
  that processes of this host which are no longer alive left behind.

>>> import pathlib, tempfile
>>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> with RunDirLock(out):
...     RunDirLock(out).acquire()
Traceback (most recent call last):
...
tabresnet.errors.ConfigError: ...run is being written by another tabresnet process...
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError

try:  # POSIX; elsewhere the lock degrades to an exclusive create (see _try_lock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunDirLock", "make_staging", "open_run", "probe", "remove_stale_staging"]


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (when unsure: yes)."""
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) is not a probe there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to someone else
        return True
    return True


def _worker_rank() -> bool:
    """A distributed-training worker other than rank 0 (Lightning, torchrun)?

    Those processes run the same ``fit(out=...)`` as rank 0, which holds the
    lock and alone writes the run; they must not compete for it.
    """
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        value = os.environ.get(key, "0").strip()
        if value.isdigit() and int(value) > 0:
            return True
    return False


def lock_path(out: Path) -> Path:
    """The lock file of run directory ``out``: ``.<name>.lock`` beside it."""
    return out.parent / f".{out.name}.lock"


class RunDirLock:
    """An exclusive, non-blocking lock on writing run directory ``out``.

    Parameters
    ----------
    out : Path
        The run directory (it need not exist; its parent is created).

    Raises
    ------
    ConfigError
        From :meth:`acquire`, when another process holds the lock.
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.path = lock_path(self.out)
        self._fd: int | None = None

    def acquire(self) -> RunDirLock:
        """Take the lock or raise :class:`ConfigError` naming the holder."""
        blocker = next((p for p in [self.out.parent, *self.out.parent.parents]
                        if p.exists() and not p.is_dir()), None)
        if blocker is not None:  # mkdir would say "File exists", which explains nothing
            raise ConfigError(f"cannot write {self.out}: {blocker} is a file, not a directory; "
                              "choose another --out")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ConfigError(
                f"cannot write beside {self.out}: {exc.strerror or exc}; choose another --out"
            ) from None
        while True:
            if not _try_lock(fd):
                holder = _read_holder(fd)
                os.close(fd)
                raise ConfigError(
                    f"{self.out} is being written by another tabresnet process{holder} "
                    f"(lock file {self.path}); wait for it to finish or choose another --out"
                )
            # A holder that was releasing may have unlinked the file we opened:
            # then the lock is on a name nobody else will open; take a fresh one.
            try:
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {_host()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock and remove its file (safe to call twice)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover - Windows: msvcrt locks the first byte
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        return ""
    return f" (pid {text[0]} on {text[1]})" if len(text) >= 2 else ""


def _staging_pattern(out: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(out.name)}\.staging-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]+")


def remove_stale_staging(out: str | Path) -> list[Path]:
    """Remove staging folders of ``out`` left by dead processes of this host.

    A staging folder is named ``.<name>.staging-<host>-<pid>-<random>``; one
    whose process still runs, or that another host made, is kept.

    Returns
    -------
    list of Path
        The folders removed.
    """
    out = Path(out)
    pattern, host, removed = _staging_pattern(out), _host(), []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if (
            match
            and match["host"] == host
            and int(match["pid"]) != os.getpid()
            and not _alive(int(match["pid"]))
            and entry.is_dir()
            and not entry.is_symlink()
        ):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def make_staging(out: str | Path) -> Path:
    """A fresh staging folder beside ``out`` (mode per the umask), after removing stale ones."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    while True:
        path = out.parent / f".{out.name}.staging-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o777)  # the umask applies, as for any folder the user makes
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        return path


def probe(out: str | Path) -> None:
    """Raise :class:`ConfigError` now if another process is writing ``out``.

    Creates nothing that outlives the call (no folder: a lock in a folder
    that does not exist yet cannot be held).
    """
    if not _worker_rank() and Path(out).parent.is_dir():
        RunDirLock(out).acquire().release()


def open_run(out: str | Path, check: Callable[[], None] | None = None) -> tuple[RunDirLock, Path]:
    """Lock ``out``, run ``check`` under the lock, and make a staging folder.

    ``check`` (e.g. "``out`` is empty unless overwriting") runs again under
    the lock because another process may have written ``out`` since the
    caller last looked. On any failure the lock is released.

    Returns
    -------
    (RunDirLock, Path)
        The held lock (release it when the run is in place) and the staging
        folder. A distributed worker of rank > 0 gets an unheld lock: rank 0
        holds it and alone writes the run.
    """
    lock = RunDirLock(out)
    if not _worker_rank():
        lock.acquire()
    try:
        if check is not None:
            check()
        return lock, make_staging(out)
    except BaseException:
        lock.release()
        raise
