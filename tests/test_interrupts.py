"""massmap.interrupts with real signals sent to this process: a stop signal that lands inside a method C
code calls is not lost or disguised, and a disguised one is still recognised as a stop.

The C caller is numpy itself: ``np.dtype(T)`` hashes the class ``T`` (its metaclass's ``__hash__``) and
mishandles an exception raised there: a KeyboardInterrupt raised in that ``__hash__`` never comes out
of ``np.dtype`` (checked first below, so that the tests show the harm they guard against). A JAX scalar type did the same in CI ("SystemError: ... returned a result
with an exception set" out of ``jnp.asarray(x, jnp.float32)`` while summarize was sent SIGTERM).
"""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from massmap import interrupts


def dtype_class(on_hash):
    """A class numpy takes as float32 through the __numpy_dtype__ protocol; ``on_hash`` runs in its hash."""
    class Meta(type):
        def __hash__(cls):
            on_hash()
            return 1

        @property
        def __numpy_dtype__(cls):
            return np.dtype(np.float32)

    return Meta("Float32Like", (), {})


def wait_for_interrupt(seconds: float = 5.0) -> float:
    """Run ordinary Python code until a KeyboardInterrupt arrives; the seconds it took."""
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        while time.monotonic() - t0 < seconds:
            time.sleep(0.001)
    return time.monotonic() - t0


def raise_once():
    raise KeyboardInterrupt


def test_numpy_loses_an_interrupt_raised_in_a_hash():
    # the harm: without massmap's handler the KeyboardInterrupt never comes out of np.dtype (numpy 2.4
    # swallows it and returns; other C callers turn it into another error), so the stop is lost
    escaped = []
    try:
        np.dtype(dtype_class(raise_once))
    except KeyboardInterrupt:
        escaped.append(True)
    except Exception:  # disguised as another error: lost just the same
        pass
    assert not escaped


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_inside_a_slot_method_is_raised_after_it(signum):
    # the signal arrives while numpy runs __hash__: np.dtype completes normally, and the stop is
    # raised in ordinary code within a few deferrals of 10 ms (0.5 s leaves room for a loaded machine)
    sent = []

    def send_once():
        if not sent:
            sent.append(signum)
            signal.raise_signal(signum)  # the handler runs in this frame, called from numpy's C code

    with interrupts.stop_signals_as_interrupts():
        assert np.dtype(dtype_class(send_once)) == np.float32
        assert sent == [signum]
        assert wait_for_interrupt() < 0.5
        assert interrupts.last_signal() == signum
        assert interrupts.exit_status() == 128 + signum


def test_second_sigterm_is_ignored_after_the_first_raised():
    # a scheduler's repeated SIGTERM must not interrupt the cleanup the first one started
    with interrupts.stop_signals_as_interrupts():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # noted, not raised
        time.sleep(0.05)
        assert interrupts.last_signal() == signal.SIGTERM


def disguised() -> None:
    """What C code that wraps an exception raised in a callback produces."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as err:
        raise SystemError("<function __numpy_dtype__> returned a result with an exception set") from err


def test_unwrapped_raises_a_disguised_stop_as_keyboard_interrupt():
    with interrupts.stop_signals_as_interrupts():
        interrupts.note(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt) as info:
            with interrupts.unwrapped():
                disguised()
        assert isinstance(info.value.__cause__, SystemError)
        # the same chain through __context__ only (raised inside the except block, no `from`)
        with pytest.raises(KeyboardInterrupt):
            with interrupts.unwrapped():
                try:
                    raise KeyboardInterrupt
                except KeyboardInterrupt:
                    raise SystemError("wrapped")


def test_unwrapped_leaves_other_errors_alone():
    with interrupts.stop_signals_as_interrupts():
        # no stop signal noted: a KeyboardInterrupt raised by code in the chain is not a stop
        with pytest.raises(SystemError):
            with interrupts.unwrapped():
                disguised()
        interrupts.note(signal.SIGTERM)
        with pytest.raises(ValueError):  # an error of its own, with no interrupt in its chain
            with interrupts.unwrapped():
                raise ValueError("bad value")
