"""What every step of the main job shares: the user-facing error, quiet progress, JSON output.

Each step raises :class:`StepError` with a message meant for the user and returns a JSON-ready
dict; the CLI prints.
"""
import json

__all__ = ["StepError", "quiet", "write_json", "write_report"]


class StepError(Exception):
    """A step failed for a reason the user can act on; the message says which and why."""


def quiet(message):
    """The default progress callback: says nothing."""


def write_json(path, data):
    """``data`` as JSON at ``path``, atomically."""
    from wrpn_rtl.golden.atomic import atomic_write
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=1, default=str)


def write_report(out_dir, name, data, markdown):
    """A report as ``out_dir/<name>.json`` (``data``) and ``out_dir/<name>.md``
    (``markdown``), each written atomically."""
    from pathlib import Path
    from wrpn_rtl.golden.atomic import atomic_write
    write_json(Path(out_dir) / f"{name}.json", data)
    with atomic_write(Path(out_dir) / f"{name}.md", "w") as handle:
        handle.write(markdown)
