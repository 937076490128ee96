"""Inside a sandbox: the tracking server on 127.0.0.1, then the user's command.

Copied into the resource's run folder and run by the sandbox's interpreter
before the user's command (standard library only: nothing of the portal is
visible in there). It listens on ``127.0.0.1:PORT`` in the sandbox's own
network namespace, forks a process that pipes each connection to the relay's
unix socket (``cloud/relay.py``, outside, which lets through only the
project's tracking server), and becomes the user's command, so that the
command's exit code is the sandbox's.

    python -I tracking_forwarder.py PORT SOCKET -- COMMAND ...
"""

import contextlib
import os
import socket
import sys
import threading


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def relay(conn: socket.socket, path: str) -> None:
    with conn:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            upstream.close()
            return  # the relay is not there: the client sees the connection close
        with upstream:
            back = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
            back.start()
            pipe(conn, upstream)
            back.join()


def serve(listener: socket.socket, path: str) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=relay, args=(conn, path), daemon=True).start()


def main(argv: list[str]) -> None:
    port, path, sep, *command = argv
    if sep != "--" or not command:
        raise SystemExit("usage: tracking_forwarder.py PORT SOCKET -- COMMAND ...")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen(64)
    if os.fork() == 0:
        # The forwarder: ends with the sandbox (its PID namespace goes with
        # the command).
        os.setsid()
        serve(listener, path)
        os._exit(0)
    listener.close()
    os.execvp(command[0], command)  # noqa: S606 - an argv list, no shell


if __name__ == "__main__":
    main(sys.argv[1:])
