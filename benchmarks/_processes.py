"""The benchmark servers run in processes of their own (pinned to their own CPU when asked)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["server_process"]


@contextmanager
def server_process(module: str, *args: str, cpu: int | None = None) -> Iterator[int]:
    """Run ``python -m module args`` (which prints ``PORT n`` once it listens); yield the port."""
    command = [sys.executable, "-m", module, *args]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{module} did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        server.terminate()
        server.wait(10)
