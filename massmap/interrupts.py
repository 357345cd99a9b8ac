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


# Methods that C code calls through a type slot or a protocol (hash(), ==, np.dtype(), len(), ...).
# Some C callers mishandle an exception raised there: they swallow it (the stop is lost) or wrap it
# (numpy's dtype lookup on a JAX scalar type has ended as "SystemError: ... returned a result with an
# exception set"). A stop signal that arrives in one is delivered again a moment later instead.
SLOT_METHODS = frozenset({
    "__hash__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__",
    "__index__", "__int__", "__float__", "__complex__", "__array__", "__array_interface__",
    "__array_priority__", "__numpy_dtype__", "__dlpack__", "__repr__", "__str__", "__format__",
    "__instancecheck__", "__subclasscheck__", "__getattr__", "__getattribute__", "__get__",
    "__del__", "__contains__"})
_SLOT_DEPTH = 8  # innermost frames looked at: a slot method and the helpers it calls
_MAX_DEFERRALS = 200  # 2 s of 10 ms deferrals at most, then the signal is raised wherever it lands
_DEFER_S = 0.01


def in_slot_method(frame) -> bool:
    """Whether one of the innermost frames from ``frame`` outwards runs a method of SLOT_METHODS."""
    for _ in range(_SLOT_DEPTH):
        if frame is None:
            return False
        if frame.f_code.co_name in SLOT_METHODS:
            return True
        frame = frame.f_back
    return False


def caused_by_stop(err: BaseException) -> bool:
    """Whether ``err`` was raised because a noted stop signal's KeyboardInterrupt went through C code
    that turned it into another exception (its ``__cause__`` / ``__context__`` chain holds it)."""
    if last_signal() is None:
        return False
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


@contextlib.contextmanager
def unwrapped() -> Iterator[None]:
    """Inside the block, an exception that a stop signal's KeyboardInterrupt turned into (see
    :func:`caused_by_stop`) is raised as the KeyboardInterrupt it was, so that the code around the
    block keeps what is finished exactly as it does for a plain Ctrl-C."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except Exception as err:
        if caused_by_stop(err):
            raise KeyboardInterrupt from err
        raise


@contextlib.contextmanager
def stop_signals_as_interrupts() -> Iterator[None]:
    """Inside the block, SIGTERM raises KeyboardInterrupt once (like Ctrl-C), so that every cleanup and
    keep-what-is-finished path written for Ctrl-C also runs on pre-emption; further SIGTERMs during
    that cleanup are noted but ignored (a scheduler follows up with SIGKILL anyway). SIGINT keeps
    Python's behaviour (a KeyboardInterrupt each time) and is noted too. Handlers are restored after.

    Two places where a raised KeyboardInterrupt would be lost or disguised are avoided by delivering
    the signal again from another thread 10 ms later, so that it is raised at the next point of
    ordinary code: a signal arriving inside a method C code calls (:data:`SLOT_METHODS`), and a
    KeyboardInterrupt raised while Python runs a finaliser or a weakref callback, which the
    interpreter swallows ("Exception ignored in ...": the unraisable hook installed here catches it).
    """
    _noted.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = {"redeliver": False, "deferrals": 0}

    def deliver_again(signum: int) -> None:
        state["redeliver"] = True
        timer = threading.Timer(_DEFER_S, os.kill, (os.getpid(), signum))
        timer.daemon = True  # a process that ends first is not signalled on its way out
        timer.start()

    def deferred(signum, frame) -> bool:
        if state["deferrals"] < _MAX_DEFERRALS and in_slot_method(frame):
            state["deferrals"] += 1
            deliver_again(signum)
            return True
        return False

    def on_term(signum, frame):
        first = last_signal() != signal.SIGTERM or state["redeliver"]
        if first and deferred(signum, frame):
            return
        state["redeliver"] = False
        note(signum)
        if first:
            raise KeyboardInterrupt

    def on_int(signum, frame):
        if deferred(signum, frame):
            return
        state["redeliver"] = False
        note(signum)
        raise KeyboardInterrupt

    previous_hook = sys.unraisablehook

    def unraisable(info):
        if isinstance(info.exc_value, KeyboardInterrupt) and last_signal() is not None:
            deliver_again(last_signal())  # handled in ordinary code a moment later, not in here
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
