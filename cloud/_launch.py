"""Start a detached, supervised process with resource limits (run by path: stdlib only).

The local provider runs ``python cloud/_launch.py [options] [-- COMMAND ...]``
instead of using ``preexec_fn``, which is unsafe in a threaded parent (a
Celery worker). The launcher forks once: the parent writes the child's pid to
``--pidfile`` and exits at once (so the caller never holds a zombie). The
child, the supervisor, starts a new session (its own process group, for
``killpg``), sends stdout and stderr to ``--log``, and starts the command with
the CPU affinity and the address-space limit applied to it (not to itself).
It stays until the command ends, then:

- with ``--exit-code-file``, writes the command's return code there (jobs
  need it; the supervisor's parent is init, which reaps it without telling
  us);
- with ``--forward-port`` and ``--forward-socket``, it has meanwhile relayed
  TCP connections on ``127.0.0.1:PORT`` to the unix socket (a notebook server
  in a sandbox without network listens on one). The port is bound before the
  fork, so a port taken meanwhile fails the launch (exit code 98) instead of
  a server starting unreachable. The socket is opened without following
  symlinks and must be a socket: the folder is writable by the sandboxed
  user, who must not be able to point the supervisor at another socket.

With ``--command-stdin`` the command comes as JSON on stdin, ``{"command":
[...], "hidden_args": [...]}``: the hidden arguments reach the command through
a memory file given as ``--args FD`` after its program name (bubblewrap reads
its options so), so that secrets (a notebook's token, a job's variables)
appear in no command line. SIGTERM to the supervisor is passed on to the
command.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import resource
import signal
import socket
import stat
import sys
import threading


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


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _connect_unix(dir_fd: int, name: str) -> socket.socket:
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise OSError(errno.ENOTSOCK, f"{name} is not a socket")
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Through the descriptor: no path lookup, and no length limit.
            upstream.connect(f"/proc/self/fd/{fd}")
        except OSError:
            upstream.close()
            raise
        return upstream
    finally:
        os.close(fd)


def _relay(conn: socket.socket, dir_fd: int, name: str) -> None:
    with conn:
        try:
            upstream = _connect_unix(dir_fd, name)
        except OSError:
            return  # not listening yet: the client sees the connection close
        with upstream:
            back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
            back.start()
            _pipe(conn, upstream)
            back.join()


def _forward(listener: socket.socket, dir_fd: int, name: str) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_relay, args=(conn, dir_fd, name), daemon=True).start()


def _start(command: list[str], hidden: list[str] | None, cpus: str, mem_bytes: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _apply_limits(cpus, mem_bytes)
        if hidden is not None:
            fd = os.memfd_create("args", 0)
            os.write(fd, b"".join(a.encode() + b"\0" for a in hidden))
            os.lseek(fd, 0, os.SEEK_SET)
            command = [command[0], "--args", str(fd), *command[1:]]
        os.execvp(command[0], command)  # noqa: S606 - argv list, no shell
    except BaseException as exc:  # noqa: BLE001 - report anything, then leave
        print(f"launch failed: {exc!r}", file=sys.stderr, flush=True)
    os._exit(127)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--cpus", default="")
    parser.add_argument("--mem-bytes", type=int, default=0)
    parser.add_argument("--exit-code-file", default="")
    parser.add_argument("--forward-port", type=int, default=0)
    parser.add_argument("--forward-socket", default="")
    parser.add_argument("--command-stdin", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    hidden = None
    if args.command_stdin:
        payload = json.load(sys.stdin)
        command = list(payload["command"])
        hidden = payload.get("hidden_args")
    if not command:
        parser.error("no command")

    listener = None
    dir_fd = -1
    if args.forward_port:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", args.forward_port))
        except OSError as exc:
            print(f"cannot listen on port {args.forward_port}: {exc}", file=sys.stderr)
            return 98 if exc.errno == errno.EADDRINUSE else 1
        listener.listen(64)
        sock_dir, sock_name = os.path.split(args.forward_socket)
        dir_fd = os.open(sock_dir, os.O_PATH | os.O_DIRECTORY)

    pid = os.fork()
    if pid:
        _write_atomically(args.pidfile, f"{pid}\n")
        return 0

    # The detached supervisor.
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
        child = _start(command, hidden, args.cpus, args.mem_bytes)
        # Threads only after the fork above.

        def pass_on(*_: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

        signal.signal(signal.SIGTERM, pass_on)
        if listener is not None:
            threading.Thread(
                target=_forward, args=(listener, dir_fd, sock_name), daemon=True
            ).start()
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        if args.exit_code_file:
            _write_atomically(args.exit_code_file, f"{code}\n")
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - report anything, then leave
        print(f"launch failed: {exc!r}", file=sys.stderr, flush=True)
        os._exit(127)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
