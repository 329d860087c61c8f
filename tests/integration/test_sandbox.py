"""Security claims, each proved by trying the attack from inside the sandbox, on both engines."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Isol8

pytestmark = pytest.mark.usefixtures("no_leftovers")


def test_runs_as_non_root_without_capabilities(isol8: Isol8) -> None:
    code = (
        "import os\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
        "print(os.getuid(), os.getgid(), status['CapEff'].strip(), status['CapBnd'].strip(),"
        " status['NoNewPrivs'].strip(), status['Seccomp'].strip())\n"
    )
    done = isol8("run", "-e", code)
    assert done.stdout.split() == ["1100", "1100", "0000000000000000", "0000000000000000", "1", "2"], done.stderr


def test_root_filesystem_is_read_only_and_tmpfs_are_writable(isol8: Isol8) -> None:
    done = isol8(
        "run",
        "--cmd",
        "for d in / /etc /usr/bin /var /root; do touch $d/isol8-probe 2>/dev/null && echo WROTE $d; done;"
        " touch /sandbox/ok /tmp/ok && echo tmpfs-ok",
    )
    assert (done.status, done.stdout) == (0, "tmpfs-ok\n"), done.stderr


def test_tmp_is_noexec_and_sandbox_is_exec(isol8: Isol8) -> None:
    done = isol8(
        "run",
        "--cmd",
        "cp /bin/true /tmp/t && cp /bin/true /sandbox/t;"
        " /tmp/t && echo tmp-exec; /sandbox/t && echo sandbox-exec; true",
    )
    assert done.stdout == "sandbox-exec\n"
    assert "Permission denied" in done.stderr


def test_sizes_of_sandbox_and_tmp_are_enforced(isol8: Isol8) -> None:
    done = isol8(
        "run",
        "--sandbox-size",
        "8m",
        "--tmp-size",
        "4m",
        "--cmd",
        "head -c 20M /dev/zero > /sandbox/f; head -c 20M /dev/zero > /tmp/f; du -m /sandbox/f /tmp/f | cut -f1",
    )
    assert done.stdout.split() == ["8", "4"]
    assert "No space left on device" in done.stderr


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP listener on the host's loopback: reachable with --net host, not with --net none."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"hello from host\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


CONNECT = (
    "import os, socket, sys\n"
    "print(sorted(os.listdir('/sys/class/net')))\n"
    "try:\n"
    "    s = socket.create_connection(('127.0.0.1', int(sys.argv[1]) if len(sys.argv) > 1 else {port}), timeout=3)\n"
    "    print(s.recv(100).decode().strip())\n"
    "except OSError as e:\n"
    "    print('blocked', type(e).__name__)\n"
    "try:\n"
    "    socket.getaddrinfo('example.com', 443)\n"
    "    print('dns works')\n"
    "except OSError:\n"
    "    print('no dns')\n"
)


def test_network_none_blocks_connections(isol8: Isol8, host_listener: int) -> None:
    done = isol8("run", "-e", CONNECT.format(port=host_listener))
    assert done.stdout.splitlines() == ["['lo']", "blocked ConnectionRefusedError", "no dns"], done.stderr


def test_network_host_is_an_explicit_loosening(isol8: Isol8, host_listener: int) -> None:
    done = isol8("run", "--net", "host", "-e", CONNECT.format(port=host_listener))
    assert "hello from host" in done.stdout.splitlines()


SYSCALLS = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17
attempts = {
    "unshare": (272, (CLONE_NEWUSER,)),
    "unshare_mount_ns": (272, (CLONE_NEWNS,)),
    "setns": (308, (os.open("/proc/self/ns/uts", os.O_RDONLY), 0)),
    "mount": (165, (b"none", b"/sandbox", b"tmpfs", 0, 0)),
    "umount2": (166, (b"/tmp", 0)),
    "ptrace": (101, (0, 0, 0, 0)),
    "bpf": (321, (0, 0, 0)),
    "perf_event_open": (298, (0, 0, -1, -1, 0)),
    "keyctl": (250, (0, 0, 0, 0, 0)),
    "add_key": (248, (b"user", b"k", b"v", 1, -2)),
    "userfaultfd": (323, (0,)),
    "io_uring_setup": (425, (4, ctypes.create_string_buffer(120))),
    "clone_newuser": (56, (CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)),
}
for name, (nr, args) in attempts.items():
    result = libc.syscall(nr, *args)
    if result == 0 and name == "clone_newuser":
        os._exit(0)
    print(name, "ALLOWED" if result >= 0 else "denied")
"""


def test_attack_surface_syscalls_fail(isol8: Isol8) -> None:
    done = isol8("run", "-e", SYSCALLS)
    assert done.status == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 13
    assert [line for line in lines if not line.endswith(" denied")] == []


def test_user_namespace_tools_fail(isol8: Isol8) -> None:
    done = isol8("run", "--cmd", "unshare -r true && echo ESCAPED; unshare -m true && echo ESCAPED; true")
    assert "ESCAPED" not in done.stdout
    assert done.stderr.count("unshare failed") == 2


def test_fork_bomb_is_contained_by_the_pids_limit(isol8: Isol8) -> None:
    code = (
        "import os, time\n"
        "children = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        children += 1\n"
        "except OSError as e:\n"
        "    print('fork failed after', children, 'children:', e.strerror, flush=True)\n"
        "while True: pass\n"
    )
    done = isol8("run", "--pids-limit", "32", "--timeout", "3s", "-e", code)
    assert done.status == 124
    words = done.stdout.split()
    assert words[:3] == ["fork", "failed", "after"] and int(words[3]) < 32, done.stdout
    assert done.seconds < 8


def test_bash_fork_bomb_ends(isol8: Isol8) -> None:
    done = isol8("run", "--timeout", "3s", "--cmd", ":(){ :|:& };: ; sleep 10")
    assert done.status in (124, 0, 1, 2, 137)
    assert done.seconds < 8


def test_zombies_are_reaped_by_init(isol8: Isol8) -> None:
    code = (
        "import glob, os, subprocess, time\n"
        "for _ in range(20):\n"
        "    subprocess.run(['sh', '-c', 'sleep 0.2 & exit 0'])  # the sleeps are orphaned to PID 1\n"
        "time.sleep(1.5)\n"
        "states = [open(p).read().rsplit(')', 1)[1].split()[0] for p in glob.glob('/proc/[0-9]*/stat')]\n"
        "print('zombies:', states.count('Z'), 'init:', open('/proc/1/comm').read().strip())\n"
    )
    done = isol8("run", "-e", code)
    words = done.stdout.split()
    assert words[:2] == ["zombies:", "0"], done.stdout + done.stderr
    assert words[3] in ("docker-init", "podman-init", "catatonit", "tini")


def test_custom_stricter_seccomp_profile_from_config(isol8: Isol8, tmp_path: Path) -> None:
    import json

    from isol8.core.sandbox import default_seccomp_profile

    profile = json.loads(Path(default_seccomp_profile()).read_text())
    profile["syscalls"].append({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1})
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW":
            rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat")]
    (tmp_path / "strict.json").write_text(json.dumps(profile))
    config = tmp_path / "isol8.config.yaml"
    config.write_text(f"security:\n  seccompProfile: {tmp_path / 'strict.json'}\n")
    done = isol8("--config", str(config), "run", "--cmd", "mkdir /sandbox/d && echo made")
    assert "made" not in done.stdout
    assert "Operation not permitted" in done.stderr


SOCKETS = r"""
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
AF_VSOCK, AF_ALG, AF_RDS, AF_TIPC = 40, 38, 21, 30
for name, domain in [("vsock", AF_VSOCK), ("vsock-high-bits", (1 << 32) | AF_VSOCK), ("alg", AF_ALG),
                     ("rds", AF_RDS), ("tipc", AF_TIPC), ("inet-high-bits", (1 << 32) | 2)]:
    fd = libc.syscall(41, ctypes.c_long(domain), 1 if domain == AF_ALG else 2, 0)  # socket(2)
    print(name, "created" if fd >= 0 else "refused", errno.errorcode.get(ctypes.get_errno()))
import socket
socket.socket(socket.AF_INET).close(); socket.socket(socket.AF_INET6).close(); socket.socket(socket.AF_UNIX).close()
socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()
print("ordinary sockets work")
"""


def test_only_ordinary_socket_families_can_be_created(isol8: Isol8) -> None:
    """AF_VSOCK reaches the host of a VM (this machine is one), even with --net none."""
    done = isol8("run", "-e", SOCKETS)
    assert done.status == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "ordinary sockets work"
    assert [line for line in lines[:-1] if " refused " not in line] == []


def test_kernel_information_and_message_queues_are_out_of_reach(isol8: Isol8) -> None:
    done = isol8(
        "run",
        "--cmd",
        "cat /sys/kernel/vmcoreinfo /sys/kernel/notes /sys/kernel/boot_params/data 2>/dev/null | wc -c;"
        " ls -A /sys/kernel | wc -l; : > /dev/mqueue/q 2>/dev/null && echo QUEUE;"
        " touch /sys/kernel/x 2>/dev/null && echo WROTE; true",
    )
    assert (done.status, done.stdout.split()) == (0, ["0", "0"]), done.stderr


def test_dev_shm_is_sized_by_shm_size_and_shared_memory_works(isol8: Isol8) -> None:
    done = isol8("run", "-e", "import multiprocessing as m; m.Lock(); print('ok')")
    assert (done.status, done.stdout) == (0, "ok\n"), done.stderr
    done = isol8(
        "run",
        "--shm-size",
        "2m",
        "--cmd",
        "head -c 8M /dev/zero > /dev/shm/f; du -k /dev/shm/f | cut -f1",
    )
    assert done.stdout.split() == ["2048"], done.stdout + done.stderr
    assert "No space left on device" in done.stderr


def test_no_run_can_hold_the_hosts_inotify_instances(isol8: Isol8) -> None:
    """fs.inotify.max_user_instances counts uid 1100 across the host: one run holding them all made
    inotify fail in every other run, so a sandbox gets none (file watchers report EPERM)."""
    code = (
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "held = 0\n"
        "while held < 1000 and libc.inotify_init1(0) >= 0:\n"
        "    held += 1\n"
        "print(held, errno.errorcode.get(ctypes.get_errno()))\n"
    )
    done = isol8("run", "-e", code)
    assert (done.status, done.stdout) == (0, "0 EPERM\n"), done.stderr


def _i386_vsock_program() -> bytes:
    """A static 32-bit x86 program: socketcall(SYS_SOCKET, [AF_VSOCK, SOCK_STREAM, 0]), exit(result)."""
    import struct

    code = bytes.fromhex(
        "6a00" "6a01" "6a28"  # push 0 (protocol), 1 (SOCK_STREAM), 40 (AF_VSOCK)
        "89e1"  # mov ecx, esp: the call's arguments
        "bb01000000" "b866000000" "cd80"  # socketcall(SYS_SOCKET, ecx)
        "89c3" "b801000000" "cd80"  # exit(eax): 3 when a socket was made
        "0f0b"  # ud2, should exit fail
    )  # fmt: skip
    base, size = 0x08048000, 52 + 32 + len(code)
    header = b"\x7fELF\x01\x01\x01" + bytes(9)
    header += struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, base + 84, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    segment = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)
    return header + segment + code


def test_32_bit_code_cannot_reach_refused_socket_families(isol8: Isol8, tmp_path: Path) -> None:
    """libseccomp turns socket rules into socketcall rules for 32-bit x86 that let any family
    through: a 32-bit program made an AF_VSOCK socket on docker. No compat syscalls are allowed."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "s32").write_bytes(_i386_vsock_program())
    (files / "s32").chmod(0o755)
    done = isol8("run", "--files", str(files), "--cmd", "/sandbox/s32 2>/dev/null; echo $?")
    assert done.stdout.strip() not in ("", "3"), done.stdout + done.stderr
    assert int(done.stdout.split()[-1]) >= 128, done.stdout  # killed for its first 32-bit syscall
