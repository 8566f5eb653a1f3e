"""Run a command in the foreground so that Ctrl-C stops it and every process it started.

``airflow standalone`` ignores SIGINT for over a minute, and its components' children
(api-server workers, executor workers, task processes in process groups of their own) outlive
it as zombies. Here the command runs in a process group of its own, which the terminal's
Ctrl-C does not reach; this process catches the signal instead (SIGINT, SIGTERM or SIGHUP)
and stops the whole tree: SIGTERM to the group and to every descendant, a bounded wait, then
SIGKILL to whatever is left. It is the tree's child subreaper (Linux): a process whose parent
exits is reparented here rather than to init, so it stays in sight, and is reaped here - no
zombie is left behind. A second Ctrl-C during the wait skips it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Sequence

import psutil

STOP_GRACE = 20.0  # seconds between SIGTERM and SIGKILL
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def become_subreaper() -> bool:
    """Have the orphans of this process's descendants reparented to it (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return False


def run(command: Sequence[str], *, grace: float = STOP_GRACE) -> int:
    """Run ``command`` until it exits, or until this process is asked to stop - then stop the
    whole tree (``stop_tree``). Returns the command's exit status, or 128 + the signal's
    number when it was stopped."""
    received: list[int] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    become_subreaper()
    leader = os.posix_spawnp(command[0], list(command), os.environ, setpgroup=0)
    status: int | None = None
    while status is None and not received:
        status = reap(leader)
        if status is None:
            time.sleep(0.2)
    if received:
        name = signal.Signals(received[0]).name
        print(f"\n{name}: stopping {command[0]} and every process it started ...", file=sys.stderr, flush=True)
        stop_tree(leader, grace, received)
        print("Stopped.", file=sys.stderr, flush=True)
        return 128 + received[0]
    stop_tree(leader, grace, received)  # it exited on its own: what it left running goes too
    return status if status is not None else 1


def stop_tree(group: int, grace: float, received: list[int] | None = None) -> None:
    """SIGTERM to process group ``group`` and every descendant of this process, up to
    ``grace`` seconds for them to exit (less if another stop signal comes in ``received``),
    then SIGKILL to the rest; every one of them reaped."""
    already = len(received or [])
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_all(group, sig)
        deadline = time.monotonic() + grace
        while _descendants() and time.monotonic() < deadline and len(received or []) == already:
            reap()
            time.sleep(0.1)
        reap()
        if not _descendants():
            return
    # After SIGKILL the kernel ends them at once; what is left is being torn down.
    deadline = time.monotonic() + 5
    while _descendants() and time.monotonic() < deadline:
        reap()
        time.sleep(0.1)


def reap(leader: int | None = None) -> int | None:
    """Reap every child that has exited (orphans reparented here included); the exit status
    of ``leader`` if it was among them."""
    status = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == leader:
            status = os.waitstatus_to_exitcode(wait_status)
            status = 128 - status if status < 0 else status  # killed by a signal: 128 + its number


def _descendants() -> list[psutil.Process]:
    """This process's descendants still running (a zombie has exited: reaping it is enough)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
    return alive


def _signal_all(group: int, sig: signal.Signals) -> None:
    """``sig`` to the group, then to each descendant: task processes make groups of their own."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
    for process in _descendants():
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} COMMAND [ARG...]")
    sys.exit(run(sys.argv[1:]))
