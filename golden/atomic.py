"""Atomic file output: write to a temporary name beside the target, then rename.

An interrupted run therefore never leaves a file that looks complete. Every writer in
wrpn-rtl (model files, Verilog, manifests, reports) goes through :func:`atomic_write`.
"""
import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "atomic_files", "FileGroup"]


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success rename it to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The final name. Its folder is created if needed.
    mode : str
        ``"wb"`` or ``"w"`` (text, UTF-8).

    Yields
    ------
    file object
        On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)      # mkstemp's 0600 is not what a user expects
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class FileGroup:
    """Files written together (see :func:`atomic_files`)."""

    def __init__(self):
        self._staged = []

    def write(self, path, data):
        """Stage ``data`` (bytes or str) for ``path``; it replaces ``path`` on commit, after
        the files staged before it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                         dir=path.parent)
        self._staged.append((temporary, path))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())

    def _discard(self):
        for temporary, _ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


@contextlib.contextmanager
def atomic_files(before_commit=None):
    """Write several files as one change: ``group.write(path, data)`` stages each beside its
    final name; when the block ends without an exception, ``before_commit()`` runs (e.g. to
    remove files the new ones make stale) and every staged file is renamed into place in the
    order staged. Interrupts (SIGINT, SIGTERM) are held back from the start of the commit to
    its end, so a Ctrl-C leaves either the files as they were or all the new ones; on an
    exception in the block every staged file is removed.

    Yields
    ------
    FileGroup
    """
    import signal
    import threading
    group = FileGroup()
    try:
        yield group
    except BaseException:
        group._discard()
        raise
    held = {signal.SIGINT, signal.SIGTERM}
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held) if main_thread else None
    try:
        if before_commit is not None:
            before_commit()
        for temporary, path in group._staged:
            os.replace(temporary, path)
    except BaseException:
        group._discard()
        raise
    finally:
        if main_thread:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
