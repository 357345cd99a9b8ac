"""The errors massmap raises on purpose, and what the command line does with each.

- :class:`InputError`: bad user input (a file, column, value or header); the message is one line that
  names the culprit. The CLI prints ``massmap: error: <message>`` and exits with status 2.
- :class:`ConfigError`: a configuration problem; one line naming the config key. Exit status 2.
- :class:`SamplingError`: the input was fine but a computation failed numerically (every posterior
  chain produced NaN/inf even after its restarts, the MAP ascent diverged). Not bad input: one line,
  exit status 3.

Stopping early (Ctrl-C, SIGTERM) is not an error: a pipeline that keeps something raises a
KeyboardInterrupt subclass whose message says what it kept; the CLI prints it and exits with
128 + the signal number (massmap.interrupts). An OSError on a file (disk full, permission denied)
is reported like bad input: one line, exit status 2.

Numerical code (``ops``, ``infer``, ``prior``, ``sim``, ``sphere``) raises ``ValueError`` for
arguments it cannot use, naming the argument, never a config key: the layers that read config
(``config``, ``pipeline``) translate.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input (file, column, value); the message is one line naming the culprit."""


class ConfigError(ValueError):
    """A configuration problem; the message is one line naming the key."""


class SamplingError(RuntimeError):
    """A computation failed numerically (NaN/inf) on valid input, e.g. every chain even after restarts."""


EXIT_INPUT = 2  # InputError, ConfigError, a missing file
EXIT_RUN_FAILED = 3  # SamplingError
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT (128 + 2)
EXIT_TERMINATED = 143  # SIGTERM (128 + 15), e.g. a batch scheduler's pre-emption
