"""Atomic file output: write to a temporary name beside the target, then rename.

An interrupted run therefore never leaves a file that looks complete. Every writer in
wrpn-rtl (model files, Verilog, manifests, reports) goes through :func:`atomic_write`.
"""
import contextlib
import os
import signal
import tempfile
import threading
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
    made = []
    try:
        fd = _temporary_beside(path, made.append)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(made[0], path)
    except BaseException:
        for temporary in made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        raise


def _temporary_beside(path, made):
    """Create ``.NAME.*.partial`` beside ``path`` (its folder too, if needed), readable as a
    file the user wrote (mkstemp's 0600 is not what a user expects); returns its descriptor.

    ``made(name)`` is called with the file's name before any interrupt can land, so the
    caller's clean-up always knows what to remove: an interrupt arriving meanwhile is held
    until the name is recorded (a Ctrl-C between ``mkstemp`` and the caller's clean-up once
    left a ``.partial`` file behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = None
    try:
        with _interrupts_held():
            fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                             dir=path.parent)
            made(temporary)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    return fd


class FileGroup:
    """Files written together (see :func:`atomic_files`)."""

    def __init__(self):
        self._staged = []

    def write(self, path, data):
        """Stage ``data`` (bytes or str) for ``path``; it replaces ``path`` on commit, after
        the files staged before it."""
        path = Path(path)
        fd = _temporary_beside(path, lambda temporary: self._staged.append((temporary, path)))
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
    its end and then take effect, so a Ctrl-C leaves either the files as they were or all the
    new ones; on an exception in the block every staged file is removed.

    Interrupts are held by Python handlers that only record them, not by a signal mask: a
    mask holds a signal back from the calling thread only, and the kernel then hands it to
    any other thread of the process (a BLAS worker, say), whose C handler still makes the
    main thread raise ``KeyboardInterrupt`` between two renames.

    Yields
    ------
    FileGroup
    """
    group = FileGroup()
    try:
        yield group
    except BaseException:
        group._discard()
        raise
    with _interrupts_held():
        try:
            if before_commit is not None:
                before_commit()
            for temporary, path in group._staged:
                os.replace(temporary, path)
        except BaseException:
            group._discard()
            raise


@contextlib.contextmanager
def _interrupts_held(signals=(signal.SIGINT, signal.SIGTERM)):
    """Within the block SIGINT and SIGTERM are only recorded; at its end the handlers in
    place before are given back and the first interrupt recorded is raised again, so it
    takes effect as it would have (``KeyboardInterrupt``, or the process ends). Outside the
    main thread (where Python cannot set handlers) the block runs unprotected."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    recorded, previous = [], {}

    def record(signum, frame):
        recorded.append(signum)

    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, record)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if recorded:
            signal.raise_signal(recorded[0])
