"""Expected failures of the host tools.

A SottoError is a failure caused by the input, the device or the environment,
not a bug: the CLI prints its message on one line and exits non-zero. Subclasses
also inherit the builtin that fits, so library callers can catch either.
"""

from __future__ import annotations


class SottoError(Exception):
    """Base for expected failures; `exit_code` is what the CLI returns."""

    exit_code = 1


class UsageError(SottoError, ValueError):
    """Bad arguments or input given by the user."""

    exit_code = 2
