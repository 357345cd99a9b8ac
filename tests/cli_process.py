"""massmap commands in real subprocesses, for the kill and concurrency tests: real signals, real files.

The child runs ``python -c "from massmap.cli import main; main()" ...`` with PYTHONPATH pointing at
this checkout (so it works from a plain clone and from the editable install of CI) and a compilation
cache shared by the test session (MASSMAP_CACHE_DIR), so only the first run of a program compiles it.
Its stderr is collected as it arrives, tqdm's carriage-return updates included, so a test can wait for
a point of the run (a progress count, a file) instead of sleeping.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]


def cli_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["MASSMAP_CACHE_DIR"] = str(cache_dir)
    env["JAX_PLATFORMS"] = "cpu"
    env["TQDM_MININTERVAL"] = "0"  # progress bars redraw at every step: the awaited points are exact
    env.pop("PYTHONWARNINGS", None)
    return env


class Run:
    """One massmap command running in a subprocess."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None = None):
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen([sys.executable, "-c", "from massmap.cli import main; main()", *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
        self._out, self._err = bytearray(), bytearray()
        self._readers = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _pump(stream, buf: bytearray) -> None:
        while chunk := os.read(stream.fileno(), 65536):
            buf.extend(chunk)

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    @property
    def stdout(self) -> str:
        return self._out.decode(errors="replace")

    def progress(self, desc: str) -> int:
        """The last count tqdm showed for the bar ``desc`` (0 before the first update)."""
        found = re.findall(re.escape(desc) + r"[^\r\n]*?\|\s*(\d+)/(\d+)", self.stderr)
        return int(found[-1][0]) if found else 0

    def wait_for(self, what: Callable[["Run"], bool], timeout: float = 120.0) -> None:
        """Poll ``what(self)`` every 10 ms; fail if the process ends or the time runs out first."""
        end = time.monotonic() + timeout
        while not what(self):
            if self.proc.poll() is not None:
                raise AssertionError(f"massmap {' '.join(self.args[:1])} ended (status {self.proc.returncode}) "
                                     f"before the awaited point:\n{self.stderr[-2000:]}")
            if time.monotonic() > end:
                self.kill()
                raise AssertionError(f"timed out waiting:\n{self.stderr[-2000:]}")
            time.sleep(0.01)

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 300.0) -> int:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        for t in self._readers:
            t.join(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def last_line(self) -> str:
        """The last non-empty piece of stderr (progress bars end in carriage returns, messages in newlines)."""
        pieces = [p.strip() for p in re.split(r"[\r\n]", self.stderr) if p.strip()]
        return pieces[-1] if pieces else ""


def run(args: list[str], env: dict[str, str], timeout: float = 300.0) -> Run:
    """Run a command to its end."""
    r = Run(args, env)
    r.finish(timeout)
    return r
