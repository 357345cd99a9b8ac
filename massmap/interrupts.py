"""How a run stops early: SIGINT (Ctrl-C) and SIGTERM (a scheduler's pre-emption) both end as a
KeyboardInterrupt in the main thread, and the signal is remembered so that the command line exits
with the conventional status 128 + signal number (130 for SIGINT, 143 for SIGTERM).

A pipeline that keeps something when it is stopped (finished maps, a checkpoint, finished posterior
samples) raises a KeyboardInterrupt subclass whose message says what was kept; a bare
KeyboardInterrupt means nothing was kept. Code that installs its own handlers (train-prior turns the
first signal into a stop request at the next step) calls :func:`note` so the exit status stays right.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

_noted: list[int] = []


def note(signum: int) -> None:
    """Remember that ``signum`` asked this process to stop."""
    _noted.append(int(signum))


def last_signal() -> int | None:
    """The last stop signal noted in this process (None: none, e.g. a KeyboardInterrupt raised by code)."""
    return _noted[-1] if _noted else None


def exit_status() -> int:
    """128 + the stop signal (SIGINT when none was noted)."""
    return 128 + (last_signal() or signal.SIGINT)


def signal_name() -> str:
    return signal.Signals(last_signal() or signal.SIGINT).name


@contextlib.contextmanager
def stop_signals_as_interrupts() -> Iterator[None]:
    """Inside the block, SIGTERM raises KeyboardInterrupt once (like Ctrl-C), so that every cleanup and
    keep-what-is-finished path written for Ctrl-C also runs on pre-emption; further SIGTERMs during
    that cleanup are noted but ignored (a scheduler follows up with SIGKILL anyway). SIGINT keeps
    Python's behaviour (a KeyboardInterrupt each time) and is noted too. Handlers are restored after.

    A KeyboardInterrupt raised while Python runs a finaliser or a weakref callback is swallowed by the
    interpreter ("Exception ignored in ...") and the stop would be lost: the unraisable hook installed
    here delivers the signal again instead, so it is raised at the next point of ordinary code.
    """
    _noted.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    swallowed = {"again": False}

    def on_term(signum, frame):
        first = last_signal() != signal.SIGTERM or swallowed["again"]
        swallowed["again"] = False
        note(signum)
        if first:
            raise KeyboardInterrupt

    def on_int(signum, frame):
        swallowed["again"] = False
        note(signum)
        raise KeyboardInterrupt

    previous_hook = sys.unraisablehook

    def unraisable(info):
        if isinstance(info.exc_value, KeyboardInterrupt) and last_signal() is not None:
            swallowed["again"] = True
            # delivered again from another thread a moment later: handled in ordinary code, not in here
            threading.Timer(0.01, os.kill, (os.getpid(), last_signal())).start()
            return
        previous_hook(info)

    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term),
           signal.SIGINT: signal.signal(signal.SIGINT, on_int)}
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for s, h in old.items():
            signal.signal(s, h)
