"""Ending a test rig's child process within a bound (Tansu, a Kerberos KDC)."""

from __future__ import annotations

import subprocess

GRACE_S = 10.0
"""How long a process may take to exit before it is killed (and then to be reaped)."""


def end_process(process: subprocess.Popen[bytes], *, graceful: bool = True) -> None:
    """SIGTERM (``graceful``) or SIGKILL, then reap it; one that ignores SIGTERM for
    ``GRACE_S`` is killed."""
    if graceful:
        process.terminate()
    else:
        process.kill()
    try:
        process.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=GRACE_S)
