"""Child processes: the repository root they run in, the command line of a benchmark module,
and persistent workers answering JSON requests (for benchmarks that run each framework in its
own process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.timing import one_line

#: The repository root: benchmarks and their children run there, where ``python3 -m benchmarks.X``
#: and ``python3 -m avloc_cli.main`` find their packages.
ROOT = Path(__file__).resolve().parents[1]


def benchmark_command(name: str, *args: str) -> list[str]:
    """``python3 -m benchmarks.NAME ARGS``: a benchmark run as a child (started in ``ROOT``)."""
    return [sys.executable, "-m", f"benchmarks.{name}", *args]


class WorkerDied(RuntimeError):
    pass


class Worker:
    """A child process that answers one JSON line per JSON request (see :func:`serve`).

    Its stderr goes to a temporary file; when it dies, the error names its last lines.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        self.name = name
        self.log = tempfile.TemporaryFile(mode="w+", prefix="avloc-bench-")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.proc.wait()
            raise WorkerDied(
                f"{self.name} process died (exit {self.proc.returncode}): {self.tail()}"
            )
        return json.loads(line)

    def tail(self, lines: int = 3) -> str:
        self.log.seek(0)
        text = [t for t in self.log.read().splitlines() if t.strip()]
        return " | ".join(text[-lines:]) or "no output"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The child side of :class:`Worker`: answer requests from stdin until ``{"cmd": "quit"}``.

    The replies go to the original stdout; anything else written to stdout (framework chatter)
    is sent to stderr so that it cannot break the protocol.
    """
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("cmd") == "quit":
            break
        try:
            reply = handle(message)
        except Exception as exc:  # sent back to the parent
            reply = {"error": one_line(exc)}
        channel.write(json.dumps(reply, default=str) + "\n")
        channel.flush()
