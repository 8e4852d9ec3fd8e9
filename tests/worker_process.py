"""A worker OS process driven by JSON lines: the multi-process tests' side of the pipe.

The worker is a test module run as ``python -m <module> <config JSON>``; it reads one JSON
command per line on stdin and answers one JSON object per line on stdout (its stderr goes to
``log``, shown when it dies).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """One worker OS process and its command pipe."""

    def __init__(self, module: str, config: dict[str, Any], log: Path) -> None:
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=ROOT,
                env=env,
            )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def recv(self, timeout: float = 30) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"worker {self.process.pid}: no answer in {timeout} s") from None
        if line is None:
            self.process.wait(5)
            raise AssertionError(
                f"worker {self.process.pid} exited ({self.process.returncode}):\n"
                + self.log.read_text()[-3000:]
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send(cmd="exit")
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(5)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
