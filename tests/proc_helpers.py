"""Shared helper of the tests that prove a throwaway cluster leaves nothing behind."""

from __future__ import annotations

from pathlib import Path


def processes_mentioning(path: Path) -> dict[int, str]:
    """Live (non-zombie) processes whose command line mentions ``path``: pid -> command line."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(path) in cmdline and state != "Z":
            found[int(proc.name)] = cmdline
    return found
