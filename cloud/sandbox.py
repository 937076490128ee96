"""A sandbox for user code on this machine: bubblewrap with fresh namespaces.

Everything the local provider runs on a user's behalf (notebook servers and
their kernels and terminals, jobs, and next scoring servers) goes through
:func:`wrap`, which turns a command into a ``bwrap`` command line that runs it:

- in new PID, network, IPC and UTS namespaces: it sees only its own processes
  (``/proc`` is fresh), and its network has only its own loopback interface,
  so neither the portal's database, broker or web process nor anything else
  on the network is reachable;
- in a new mount namespace whose root is an empty tmpfs with, read-only, only
  what an interpreter needs (``/usr``, the ``/bin``/``/lib`` links, a few
  files of ``/etc``, the virtualenv and its base Python), the folders handed
  in read-only (dataset snapshots), and, writable, the resource's own private
  folders. The portal's repository, ``var/`` (keys, database, broker files,
  object store), other workspaces and jobs do not exist in there;
- with an environment built from scratch (``--clearenv``), passed to bwrap
  through a file descriptor (``--args``) so that no token appears in a command
  line;
- without privileges: where the portal runs as an ordinary user, bwrap maps it
  to an ordinary uid inside a new user namespace and forbids nested ones.
  Where the portal runs as root, a user namespace would map the sandbox onto
  root itself, so bwrap keeps the host's user namespace (to mount what root
  may read) and the command first drops to a dedicated unprivileged uid
  (``setpriv``, with no capabilities left and ``no_new_privs``);
- ``--die-with-parent`` and ``--new-session``: nothing outlives its
  supervisor, and nothing can push keystrokes into a terminal outside;
- with resource limits set in the sandboxed process before the user's
  command starts (``setrlimit``, inherited by everything it starts): at most
  ``max_processes`` processes and threads (``RLIMIT_NPROC``; a fork bomb
  stops there, not at the machine's limit), no file larger than
  ``max_file_bytes`` (``RLIMIT_FSIZE``), and no core dumps;
- under a seccomp filter (:func:`seccomp_filter`, loaded by the sandboxed
  process itself with ``no_new_privs`` before the user's command) that answers ``EPERM`` to system calls user code has no use
  for and that widen what a kernel bug exposes: ``ptrace``, ``mount`` and the
  new mount API, ``kexec_*``, ``bpf``, the kernel keyring (``keyctl``,
  ``add_key``, ``request_key``), module loading, ``reboot``, ``swapon``,
  ``perf_event_open``, ``userfaultfd``, ``process_vm_*``, ``setns``,
  ``unshare`` and the like, and every x32 system call on x86-64.

:func:`isolation_status` says whether this works on this machine (bwrap
installed and a trial sandbox runs); the local provider refuses to start user
code without it unless the caller explicitly allows running unsandboxed.

Only the standard library: a sandbox can be built and probed without Django.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud.base import ProviderError

SETPRIV = "/usr/bin/setpriv"
# The user code's uid inside the sandbox when the portal runs unprivileged
# (the portal's own uid outside).
INNER_UID = 1000
# Where the portal runs as root, the uid a trial sandbox drops to.
PROBE_UID = 65534
# The system folders bound (or linked, as on merged-/usr systems) read-only.
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What of /etc an interpreter, a shell and common libraries need; nothing else
# (no host passwd, no credentials, no host names).
ETC_FILES = (
    "alternatives",
    "bash.bashrc",
    "fonts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
)
# Run inside the sandbox with the real command in SG_EXEC (hidden from the
# command line, like the environment): the command appears once in the process
# list, as itself, and not again in bwrap's arguments.
# First it sets the resource limits (SG_LIMITS) and loads the seccomp program
# (SG_SECCOMP, hex) with no_new_privs; a filter that does not load stops it.
EXEC_STUB = """\
import ctypes, json, os, resource
argv = json.loads(os.environ.pop("SG_EXEC"))
for name, value in json.loads(os.environ.pop("SG_LIMITS")).items():
    resource.setrlimit(getattr(resource, name), (value, value))
program = bytes.fromhex(os.environ.pop("SG_SECCOMP", ""))
if program:
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    code = ctypes.create_string_buffer(program, len(program))
    prog = Prog(len(program) // 8, ctypes.addressof(code))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):
        raise SystemExit("seccomp filter not loaded: " + os.strerror(ctypes.get_errno()))
os.execvp(argv[0], argv)
"""
# Default limits: processes and threads of one sandbox (a notebook server, its
# kernels and their thread pools stay far below), and the largest file it may
# write.
MAX_PROCESSES = 1024
MAX_FILE_BYTES = 64 * 1024**3

# --- seccomp --------------------------------------------------------------
# System calls refused with EPERM, by name; numbers per architecture below.
SECCOMP_DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "perf_event_open",
    "userfaultfd",
    "setns",
    "unshare",
    "open_by_handle_at",
    "name_to_handle_at",
    "syslog",
    "quotactl",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "lookup_dcookie",
)
_SYSCALLS = {
    # (AUDIT_ARCH_*, {name: number}); a name missing on an architecture is skipped.
    "x86_64": (
        0xC000003E,
        {
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "bpf": 321,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "reboot": 169,
            "swapon": 167,
            "swapoff": 168,
            "acct": 163,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "setns": 308,
            "unshare": 272,
            "open_by_handle_at": 304,
            "name_to_handle_at": 303,
            "syslog": 103,
            "quotactl": 179,
            "settimeofday": 164,
            "clock_settime": 227,
            "clock_adjtime": 305,
            "adjtimex": 159,
            "iopl": 172,
            "ioperm": 173,
            "lookup_dcookie": 212,
        },
    ),  # fmt: skip
    "aarch64": (
        0xC00000B7,
        {
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "bpf": 280,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "reboot": 142,
            "swapon": 224,
            "swapoff": 225,
            "acct": 89,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "setns": 268,
            "unshare": 97,
            "open_by_handle_at": 265,
            "name_to_handle_at": 264,
            "syslog": 116,
            "quotactl": 60,
            "settimeofday": 170,
            "clock_settime": 112,
            "clock_adjtime": 266,
            "adjtimex": 171,
            "lookup_dcookie": 18,
        },
    ),  # fmt: skip
}
_X32_SYSCALL_BIT = 0x40000000
# Classic BPF, as seccomp runs it.
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_SECCOMP_RET_KILL_PROCESS, _SECCOMP_RET_ERRNO, _SECCOMP_RET_ALLOW = 0x80000000, 0x50000, 0x7FFF0000
_EPERM = 1


class SandboxUnavailableError(ProviderError):
    """User code would run without isolation, and the caller did not allow that."""


def default_bwrap() -> str:
    return shutil.which("bwrap") or "/usr/bin/bwrap"


@dataclass(frozen=True)
class Sandbox:
    """What one sandboxed process tree may see and use.

    ``writable`` and ``readonly`` are host folders bound at the same path
    inside (so paths in commands and links stay valid), except where a
    ``writable`` entry gives another path inside as ``(host, inside)``.
    """

    workdir: str  # the working directory; must be among the writable folders
    env: Mapping[str, str]
    etc_dir: str  # a host folder private to the provider, for generated /etc files
    writable: Sequence[str | tuple[str, str]] = ()
    readonly: Sequence[str] = ()
    python: str = sys.executable
    # Where the portal runs as root: the dedicated uid (and gid) to run as.
    host_uid: int | None = None
    tmp_bytes: int = 0  # size of the private /tmp (0: the kernel's default)
    max_processes: int = MAX_PROCESSES  # RLIMIT_NPROC, threads included
    max_file_bytes: int = MAX_FILE_BYTES  # RLIMIT_FSIZE
    seccomp: bool = True  # the filter of seccomp_filter(), where the machine has one


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def seccomp_filter(machine: str | None = None) -> bytes | None:
    """The compiled seccomp program (classic BPF) ``bwrap --seccomp`` loads:
    ``EPERM`` for the system calls of ``SECCOMP_DENIED``, every other one
    allowed; a process of another architecture (a 32-bit binary) is killed,
    as are x32 calls on x86-64. None on an architecture not known here."""
    known = _SYSCALLS.get(machine or platform.machine())
    if known is None:
        return None
    arch, numbers = known
    denied = sorted({numbers[name] for name in SECCOMP_DENIED if name in numbers})
    program = [
        _bpf(_LD_W_ABS, 4),  # seccomp_data.arch
        _bpf(_JEQ_K, arch, jt=1),
        _bpf(_RET_K, _SECCOMP_RET_KILL_PROCESS),
        _bpf(_LD_W_ABS, 0),  # seccomp_data.nr
    ]
    if arch == _SYSCALLS["x86_64"][0]:
        program.append(_bpf(_JGE_K, _X32_SYSCALL_BIT, jt=len(denied) + 1))
    # Each comparison jumps over the rest and the ALLOW to the EPERM return.
    for i, number in enumerate(denied):
        program.append(_bpf(_JEQ_K, number, jt=len(denied) - i))
    program.append(_bpf(_RET_K, _SECCOMP_RET_ALLOW))
    program.append(_bpf(_RET_K, _SECCOMP_RET_ERRNO | _EPERM))
    return b"".join(program)


def python_paths(python: str) -> tuple[str, list[str]]:
    """The interpreter's path inside the sandbox and the folders it needs.

    A virtualenv is bound at its real path (its scripts name it in their
    shebangs) with its base installation; the symlinks leading to it (a
    worktree's ``.venv`` link) are resolved, the interpreter's own link is not
    (Python finds its virtualenv from it).
    """
    exe = Path(python)
    venv = exe.parent.parent
    config = venv / "pyvenv.cfg"
    if config.exists():
        real = venv.resolve()
        parser = configparser.ConfigParser()
        parser.read_string("[venv]\n" + config.read_text())
        home = parser.get("venv", "home", fallback="")
        dirs = [str(real)]
        if home:
            dirs.append(str(Path(home).resolve().parent))
        return str(real / "bin" / exe.name), dirs
    real_exe = exe.resolve()
    return str(real_exe), [str(real_exe.parent.parent)]


def _inside(path: str, parents: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def _write_etc(box: Sandbox, uid: int) -> dict[str, str]:
    etc = Path(box.etc_dir)
    etc.mkdir(parents=True, exist_ok=True)
    files = {
        "passwd": (
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"sandbox:x:{uid}:{uid}:sandbox:{box.env.get('HOME', box.workdir)}:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        "group": f"root:x:0:\nsandbox:x:{uid}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    }
    paths = {}
    for name, text in files.items():
        path = etc / name
        if not path.exists() or path.read_text() != text:
            tmp = etc / f".{name}.tmp"
            tmp.write_text(text)
            tmp.chmod(0o644)
            os.replace(tmp, path)
        paths[f"/etc/{name}"] = str(path)
    return paths


def wrap(
    box: Sandbox, argv: Sequence[str], *, bwrap: str | None = None
) -> tuple[list[str], list[str]]:
    """The command line that runs ``argv`` in ``box``, and bwrap's hidden arguments.

    The hidden arguments (the environment, the command itself) must reach
    bwrap through a file descriptor: ``bwrap --args FD`` right after the
    program name (``cloud/_launch.py`` does that with ``--command-stdin``).
    """
    as_root = os.geteuid() == 0
    if as_root and box.host_uid is None:
        raise ProviderError("The portal runs as root: a sandbox needs a dedicated uid")
    uid = box.host_uid if as_root and box.host_uid is not None else INNER_UID
    args: list[str] = []
    if as_root:
        # No user namespace: its only mapping would be root itself. The
        # command drops to its own uid first thing (below).
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-all", "--unshare-user", "--disable-userns"]
        args += ["--uid", str(INNER_UID), "--gid", str(INNER_UID)]
    args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]

    bound = ["/usr"]
    args += ["--ro-bind", "/usr", "/usr"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
            bound.append(d)
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for inside, host in _write_etc(box, uid).items():
        args += ["--ro-bind", host, inside]
    args += ["--proc", "/proc", "--dev", "/dev"]
    # Private, empty, writable to the user (multiprocessing needs /dev/shm).
    for tmp in ("/tmp", "/dev/shm"):  # noqa: S108 - inside the sandbox
        if box.tmp_bytes:
            args += ["--size", str(box.tmp_bytes)]
        args += ["--perms", "1777", "--tmpfs", tmp]

    python, python_dirs = python_paths(box.python)
    mounts: list[tuple[str, str, bool]] = []  # (host, inside, writable)
    for path in [*python_dirs, *box.readonly]:
        mounts.append((path, path, False))
    for entry in box.writable:
        host, inside = (entry, entry) if isinstance(entry, str) else entry
        mounts.append((host, inside, True))
    made: set[str] = set()
    for host, inside, writable in sorted(mounts, key=lambda m: m[1].count("/")):
        if _inside(inside, bound):
            continue  # already there (a system Python under /usr)
        parents = Path(inside).parents
        for parent in reversed(parents):
            p = str(parent)
            if p == "/" or p in made or _inside(p, bound):
                continue
            # Made explicitly: bwrap would make them 0700 as root, which
            # the unprivileged uid could not pass through.
            args += ["--perms", "0755", "--dir", p]
            made.add(p)
        args += ["--bind" if writable else "--ro-bind", host, inside]
        bound.append(inside)
        made.add(inside)
    # The root itself (the folders made above) read-only: nothing written
    # anywhere but the writable folders, /tmp and /dev/shm.
    args += ["--remount-ro", "/", "--chdir", box.workdir]

    hidden = ["--clearenv"]
    limits = {"RLIMIT_NPROC": box.max_processes, "RLIMIT_FSIZE": box.max_file_bytes}
    limits = {name: value for name, value in limits.items() if value > 0}
    limits["RLIMIT_CORE"] = 0
    stub_env = {"SG_EXEC": json.dumps(list(argv)), "SG_LIMITS": json.dumps(limits)}
    program = seccomp_filter() if box.seccomp else None
    if program:
        stub_env["SG_SECCOMP"] = program.hex()
    for key, value in {**box.env, **stub_env}.items():
        hidden += ["--setenv", key, value]

    command = [bwrap or default_bwrap(), *args, "--"]
    if as_root:
        command += [
            SETPRIV,
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--no-new-privs",
            "--",
        ]
    command += [python, "-I", "-c", EXEC_STUB]
    return command, hidden


def hidden_args_fd(hidden: Sequence[str]) -> int:
    """A file descriptor with ``hidden`` NUL-separated, for ``bwrap --args``."""
    fd = os.memfd_create("bwrap-args", 0)  # not close-on-exec: bwrap reads it
    os.write(fd, b"".join(a.encode() + b"\0" for a in hidden))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def with_args_fd(command: Sequence[str], fd: int) -> list[str]:
    return [command[0], "--args", str(fd), *command[1:]]


def run(
    box: Sandbox, argv: Sequence[str], *, bwrap: str | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` in ``box`` to completion (for short commands and probes)."""
    command, hidden = wrap(box, argv, bwrap=bwrap)
    fd = hidden_args_fd(hidden)
    try:
        return subprocess.run(  # noqa: S603 - an argv list, no shell
            with_args_fd(command, fd),
            env={"PATH": "/usr/bin:/bin"},
            pass_fds=(fd,),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    finally:
        os.close(fd)


_status: dict[str, tuple[bool, str]] = {}
_status_lock = threading.Lock()


def isolation_status(*, bwrap: str | None = None, refresh: bool = False) -> tuple[bool, str]:
    """Whether user code can be sandboxed here, and a sentence saying why (not).

    Checks that bwrap (and, as root, setpriv) is installed and that a trial
    sandbox with the real configuration runs the interpreter. The answer is
    cached per process; ``refresh=True`` checks again.
    """
    path = bwrap or default_bwrap()
    with _status_lock:
        if not refresh and path in _status:
            return _status[path]
        _status[path] = _check(path)
        return _status[path]


def _check(bwrap: str) -> tuple[bool, str]:
    if not (os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)):
        return False, (
            f"bubblewrap is not installed ({bwrap} not found): "
            "install the Debian package 'bubblewrap'"
        )
    as_root = os.geteuid() == 0
    if as_root and not os.access(SETPRIV, os.X_OK):
        return False, f"{SETPRIV} not found: install the Debian package 'util-linux'"
    with tempfile.TemporaryDirectory(prefix="sg-sandbox-probe-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        if as_root:
            os.chown(work, PROBE_UID, PROBE_UID)
        box = Sandbox(
            workdir=str(work),
            env={"PATH": "/usr/bin:/bin", "HOME": str(work)},
            etc_dir=str(Path(tmp) / "etc"),
            writable=(str(work),),
            host_uid=PROBE_UID if as_root else None,
        )
        # Inside: its own PID namespace, no network but loopback, not root.
        probe = (
            "import os, socket; assert os.getpid() < 10, os.getpid(); "
            "assert os.getuid() != 0; "
            "assert [n for _, n in socket.if_nameindex()] == ['lo'], socket.if_nameindex(); "
            "open('ok', 'w').write('ok')"
        )
        try:
            python = python_paths(sys.executable)[0]
            done = run(box, [python, "-I", "-c", probe], bwrap=bwrap, timeout=30)
        except (OSError, subprocess.SubprocessError, ProviderError) as exc:
            return False, f"a trial sandbox could not start: {exc}"
        if done.returncode != 0 or not (work / "ok").exists():
            output = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            return False, f"a trial sandbox failed (exit {done.returncode}): {output[-400:]}"
    mode = (
        "as root, with a dedicated uid per workspace and job"
        if as_root
        else "in an unprivileged user namespace"
    )
    return True, f"bubblewrap sandbox available ({mode})"


def give_to(uid: int, path: Path) -> None:
    """Make ``path`` and what is below it owned by ``uid`` (root only; never
    follows a symlink). Called while nothing runs in the folder."""
    os.chown(path, uid, uid, follow_symlinks=False)
    for top, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(top, name), uid, uid, follow_symlinks=False)
