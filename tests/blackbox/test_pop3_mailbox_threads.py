"""A POP3 login reads the whole Maildir (new/ into cur/, a stat per
message) and QUIT fsyncs it, and RETR reads a message the page cache
does not hold from the disk: that work runs on the worker's mailbox
threads, so a large mailbox or a slow disk does not stall the other
sessions of the worker; the client may leave, or the server stop, while
it runs."""
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import (NET_TIMEOUT, finish_checked, owned_server, umount,
                      wait_for)
from pop3_helpers import (PASSWORD, POP3Raw, _owner, greeted_while, make_box,
                          pop3_server, seed)

# Enough files that reading them takes a good part of a second (more
# under the sanitizers): the work the event loop must not wait for.
BIG = 30000
BODY = b"Subject: bulk\r\n\r\nbody\r\n"


def fill(srv, user, n):
    """n small messages in <user>/new/, as delivery leaves them."""
    owner = _owner()
    new = str(make_box(srv, user) / "new")
    for i in range(n):
        fd = os.open(f"{new}/1700000000.M{i}P1Q1.test",
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, BODY)
        if owner:
            os.fchown(fd, *owner)
        os.close(fd)


@pytest.fixture(scope="module")
def srv():
    # One worker: the SMTP session shares the POP3 session's event loop.
    s = pop3_server(users=("huge", "gone"), workers=1, start=False)
    fill(s, "huge", BIG)
    fill(s, "gone", BIG)
    yield from owned_server(s, start=True)


def pop3s(srv):
    return POP3Raw(srv.pop3s_port, tls=True)


def test_a_large_mailbox_does_not_stall_the_worker(srv):
    pop = pop3s(srv)
    assert pop.cmd("USER huge").startswith("+OK")
    got = {}

    def login():
        got["sent"] = time.monotonic()
        got["reply"] = pop.cmd(f"PASS {PASSWORD}")
        got["done"] = time.monotonic()

    greeted_while(srv, login, got, at_least=0.1)
    assert re.match(rf"^\+OK Logged in, {BIG} messages \(\d+ octets\)$",
                    got["reply"]), got["reply"]
    srv.wait_log(rf"pop3 login user=huge mech=USER messages={BIG} ")
    assert pop.cmd("DELE 1").startswith("+OK")
    assert pop.cmd("QUIT") == f"+OK Bye, {BIG - 1} messages left"
    assert len(os.listdir(srv.mail / "huge" / "cur")) == BIG - 1
    srv.wait_log(rf"pop3 quit user=huge deleted=1 kept={BIG - 1}")


def test_a_client_gone_during_the_open_leaves_the_mailbox_free(srv):
    pop = pop3s(srv)
    assert pop.cmd("USER gone").startswith("+OK")
    pop.send(f"PASS {PASSWORD}\r\n")
    # Gone once the password is checked, while the mailbox opens (a
    # client gone before that ends the login itself: test_auth_verify).
    srv.wait_log(r"authd: auth ok user=gone ")
    pop.sock.close()
    # Input waits while the thread reads the mailbox, the end of the
    # connection with it: the session sees it when the open is done ...
    login = srv.wait_log(r"([0-9a-f]{16}) pop3 login user=gone mech=USER "
                         rf"messages={BIG} ", timeout=60)
    srv.wait_log(rf"{login.group(1)} pop3 disconnect reason=\S+ user=gone ")
    # ... and the lock goes with the session.
    deadline = time.monotonic() + 10
    while True:
        again = pop3s(srv)
        reply = again.login("gone")
        if not reply.startswith("-ERR [IN-USE]") or \
                time.monotonic() > deadline:
            break
        again.sock.close()
        time.sleep(0.1)
    assert reply == (f"+OK Logged in, {BIG} messages "
                     f"({BIG * len(BODY)} octets)"), reply
    assert again.cmd("QUIT") == f"+OK Bye, {BIG} messages left"


def test_stopping_during_the_open_answers_then_closes():
    srv = pop3_server(users=("stopper",), workers=1, start=False)
    fill(srv, "stopper", BIG)
    srv.start()
    lines = []
    try:
        pop = pop3s(srv)
        assert pop.cmd("USER stopper").startswith("+OK")
        pop.send(f"PASS {PASSWORD}\r\n")
        # The password is checked by then; the mailbox is being read
        # (0.36 s in the first test) or was just read.  Either way the
        # login is answered before the session closes.
        time.sleep(0.3)
        assert srv.terminate() == 0, srv.log()
        try:
            while True:
                lines.append(pop.line())
        except (EOFError, OSError):
            pass
    finally:
        finish_checked(srv)
    # The thread finished the login, which is answered; then the session
    # says why it closes.
    assert len(lines) == 2, lines
    assert re.match(rf"^\+OK Logged in, {BIG} messages \(\d+ octets\)$",
                    lines[0]), lines
    assert lines[1] == ("-ERR [SYS/TEMP] Server shutting down, closing "
                        "connection"), lines


# ---------------------------------------------------------------------------
# RETR of a message that is not in the page cache, from a disk whose reads
# each take a quarter of a second.

READ_IOPS = 4
COLD_LINE = b".dotted " + b"c" * 120 + b"\r\n"
COLD = b"Subject: cold\r\n\r\n" + COLD_LINE * 8000      # about 1 MiB


class ReadThrottle:
    """A blkio cgroup (v1, or v2 with the io controller at its root)
    whose processes may read the device dev (MAJ:MIN) READ_IOPS times a
    second.  Processes started from inside joined() belong to it."""

    def __init__(self, dev):
        v1 = Path("/sys/fs/cgroup/blkio")
        v2 = self._v2_root()
        if (v1 / "blkio.throttle.read_iops_device").exists():
            self.root, limit = v1, "blkio.throttle.read_iops_device"
            value = f"{dev} {READ_IOPS}"
        elif v2 is not None:
            self.root, limit = v2, "io.max"
            value = f"{dev} riops={READ_IOPS}"
            (v2 / "cgroup.subtree_control").write_text("+io")
        else:
            pytest.skip("SKIP: no cgroup with block I/O throttling here "
                        "(neither v1 blkio nor v2 io at the root)")
        self.path = Path(tempfile.mkdtemp(prefix="postern-slow-",
                                          dir=self.root))
        (self.path / limit).write_text(value)

    @staticmethod
    def _v2_root():
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if fields[2] == "cgroup2":
                    root = Path(fields[1])
                    ctl = root / "cgroup.controllers"
                    if ctl.exists() and "io" in ctl.read_text().split():
                        return root
        return None

    @contextlib.contextmanager
    def joined(self):
        """This process in the cgroup for the block; back where it was
        after it (its children stay)."""
        with open("/proc/self/cgroup") as f:
            mine = [l.rstrip("\n").split(":", 2) for l in f]
        want = "blkio" if self.root.name == "blkio" else ""
        back = next(p for _, ctl, p in mine
                    if (want in ctl.split(",") if want else ctl == ""))
        (self.path / "cgroup.procs").write_text(str(os.getpid()))
        try:
            yield
        finally:
            (self.root / back.lstrip("/") / "cgroup.procs").write_text(
                str(os.getpid()))

    def remove(self):
        deadline = time.monotonic() + 10
        while True:
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture
def slow_mail():
    """A cold-mailbox server: one worker, its mailboxes on an ext4 image
    mounted through a loop device whose reads its processes make slowly
    (ReadThrottle), user cold with one message of about 1 MiB in cur/,
    logged in over 995.  Yields (server, POP3 client, message path)."""
    if os.geteuid() != 0:
        pytest.skip("SKIP: a loop mount and a cgroup need root")
    if not (shutil.which("mkfs.ext4") and shutil.which("findmnt")):
        pytest.skip("SKIP: mkfs.ext4 or findmnt is missing")
    srv = pop3_server(users=("cold",), workers=1, start=False)
    img = srv.dir / "mail.img"
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True,
                   timeout=60)
    srv.mail.mkdir()
    r = subprocess.run(["mount", "-o", "loop", str(img), str(srv.mail)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"SKIP: cannot mount a loop device here: "
                    f"{r.stderr.strip()}")
    throttle = None
    try:
        dev = subprocess.run(["findmnt", "-no", "MAJ:MIN", str(srv.mail)],
                             capture_output=True, text=True, check=True,
                             timeout=60).stdout.strip()
        throttle = ReadThrottle(dev)
        path = seed(srv, "cold", "1700003000.M1P1Q1.test:2,", COLD,
                    sub="cur")
        with throttle.joined():
            srv.start()
        try:
            pop = pop3s(srv)
            assert pop.login("cold").startswith("+OK Logged in, 1 message")
            # Written, synced, then dropped from the page cache: RETR
            # has to read it from the throttled disk.
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            yield srv, pop, path
        finally:
            finish_checked(srv)
    finally:
        if throttle is not None:
            throttle.remove()
        umount(srv.mail)


def test_a_message_on_a_slow_disk_does_not_stall_the_worker(slow_mail):
    srv, pop, path = slow_mail
    got = {}

    def retr():
        got["sent"] = time.monotonic()
        got["status"] = pop.cmd("RETR 1")
        got["lines"] = pop.multi()
        got["done"] = time.monotonic()

    # Some 1 MiB in readahead windows of at most a few hundred KiB, a
    # quarter of a second each: over half a second from the disk.
    greeted_while(srv, retr, got, at_least=0.5)
    assert got["status"] == f"+OK {len(COLD)} octets", got["status"]
    assert "".join(l + "\r\n" for l in got["lines"]).encode() == COLD
    srv.wait_log(rf"pop3 retr msg=1 uid=1700003000\.M1P1Q1\.test "
                 rf"octets={len(COLD)}")
    assert pop.cmd("QUIT") == "+OK Bye, 1 messages left"


def test_stopping_during_a_read_from_the_disk(slow_mail):
    srv, pop, path = slow_mail
    lines = []

    def read_all():
        try:
            while True:
                lines.append(pop.line())
        except (EOFError, OSError):
            pass

    assert pop.cmd("RETR 1") == f"+OK {len(COLD)} octets"
    t = threading.Thread(target=read_all)
    t.start()
    # The client keeps reading, so the session spends its time waiting
    # for the disk, on a thread: the worker stops it there.
    wait_for(lambda: len(lines) > 100, timeout=NET_TIMEOUT)
    assert srv.terminate() == 0, srv.log()
    t.join(NET_TIMEOUT)
    assert not t.is_alive()
    # Cut short, without the final "." and without a -ERR inside the
    # message: the client cannot take it for the whole message.
    assert 100 < len(lines) < COLD.count(b"\r\n"), len(lines)
    assert all(l == "..dotted " + "c" * 120 for l in lines[2:]), lines[-1]
    assert srv.wait_log(r"pop3 disconnect reason=shutdown user=cold retr=0 ")
