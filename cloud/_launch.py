"""Start a detached process with resource limits (run by path: stdlib only).

The local provider runs ``python cloud/_launch.py [options] -- COMMAND ...``
instead of using ``preexec_fn``, which is unsafe in a threaded parent (a
Celery worker). The launcher forks once: the parent writes the child's pid to
``--pidfile`` and exits at once (so the caller never holds a zombie); the child
starts a new session (its own process group, for ``killpg``), applies the CPU
affinity and the address-space limit, sends stdout and stderr to ``--log`` and
execs the command. With ``--exit-code-file`` the child instead supervises the
command and writes its return code there when it ends (jobs need it; the pid's
parent is init, which reaps it without telling us).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _apply_limits(cpus: str, mem_bytes: int) -> None:
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    if mem_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--cpus", default="")
    parser.add_argument("--mem-bytes", type=int, default=0)
    parser.add_argument("--exit-code-file", default="")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")

    pid = os.fork()
    if pid:
        _write_atomically(args.pidfile, f"{pid}\n")
        return 0

    # The detached child.
    try:
        os.setsid()
        os.chdir(args.cwd)
        log_fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(null_fd)
        os.close(log_fd)
        _apply_limits(args.cpus, args.mem_bytes)
        if not args.exit_code_file:
            os.execvp(command[0], command)  # noqa: S606 - argv list, no shell
        child = os.fork()
        if child == 0:
            os.execvp(command[0], command)  # noqa: S606 - argv list, no shell
        _, status = os.waitpid(child, 0)
        _write_atomically(args.exit_code_file, f"{os.waitstatus_to_exitcode(status)}\n")
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - report anything, then leave
        print(f"launch failed: {exc!r}", file=sys.stderr, flush=True)
        os._exit(127)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
