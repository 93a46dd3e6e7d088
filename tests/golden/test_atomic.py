"""Atomic output: a file group lands whole or not at all, also under Ctrl-C."""
import os
import signal
import threading

import pytest

from golden import atomic
from golden.atomic import atomic_files, atomic_write


def _write_pair(folder, text, before_commit=None):
    with atomic_files(before_commit) as group:
        group.write(folder / "design.v", text)
        group.write(folder / "manifest.json", text)


def test_a_group_lands_in_order_and_an_exception_leaves_the_old_files(tmp_path):
    _write_pair(tmp_path, "old")
    with pytest.raises(ValueError):
        with atomic_files() as group:
            group.write(tmp_path / "design.v", "new")
            raise ValueError("stop")
    assert (tmp_path / "design.v").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["design.v", "manifest.json"]
    _write_pair(tmp_path, "new")
    assert {p.read_text() for p in tmp_path.iterdir()} == {"new"}


def test_atomic_write_keeps_the_old_file_on_an_exception(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"half")
            raise RuntimeError
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_the_renames_waits_until_all_have_landed(signum, tmp_path,
                                                                     monkeypatch):
    """The interrupt is delivered while the renames run, and to another thread of the
    process (as the kernel does when the main thread blocks the signal and, say, a BLAS
    worker thread does not): the group still lands whole, then the interrupt takes effect."""
    _write_pair(tmp_path, "old")
    previous = signal.signal(signum, signal.default_int_handler)
    go = threading.Event()

    def other_thread():
        go.wait(10)
        os.kill(os.getpid(), signum)

    sender = threading.Thread(target=other_thread)
    sender.start()                          # before the commit: it does not block signals
    real_replace, renames = os.replace, []

    def replace_then_interrupt(source, destination):
        real_replace(source, destination)
        renames.append(destination)
        if len(renames) == 1:
            go.set()
            sender.join(10)

    monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            _write_pair(tmp_path, "new")
    finally:
        signal.signal(signum, previous)
    assert len(renames) == 2
    assert {p.read_text() for p in tmp_path.iterdir()} == {"new"}
    assert signal.getsignal(signum) is previous        # the handler is given back


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_files"])
def test_a_ctrl_c_just_after_the_temporary_file_is_made_leaves_nothing(writer, tmp_path,
                                                                       monkeypatch):
    """Ctrl-C lands the moment ``mkstemp`` has made the ``.partial`` file, before the writer
    has its name: it still takes effect, and neither a ``.partial`` file nor a new
    ``model.npz`` remains (a generate interrupted there once left one beside the design)."""
    real_mkstemp = atomic.tempfile.mkstemp

    def mkstemp_then_ctrl_c(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return made

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp_then_ctrl_c)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            if writer == "atomic_write":
                with atomic_write(tmp_path / "model.npz") as handle:
                    handle.write(b"new")
            else:
                with atomic_files() as group:
                    group.write(tmp_path / "model.npz", b"new")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert os.listdir(tmp_path) == []
