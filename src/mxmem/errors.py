"""mxmem's exceptions. ``cli.main`` turns them into a one-line message and an exit code."""

from __future__ import annotations


class MxmemError(Exception):
    """Root of mxmem's errors; the CLI prints ``str(err)`` and exits with ``exit_code``."""

    exit_code: int = 1


class UsageError(MxmemError):
    """A command was called wrongly; the message is printed as is (it may hold usage text)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SourceError(MxmemError):
    """A source could not be opened or read (bad world name, unreadable file...)."""

    exit_code = 2


class NoSuchTask(MxmemError):
    """A koid named on the command line is not in the snapshot."""


class KernelError(MxmemError):
    """A simulated kernel operation failed, with Magenta's status name (``ERR_NO_MEMORY``...)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
