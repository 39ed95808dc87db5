"""Two postern nodes sharing one PostgreSQL (users) and one Redis (grants,
rate counters, authentication failures): issue 11, docs/scaling.md.

The test starts its own PostgreSQL and Redis on loopback ports in a
temporary directory (PostgreSQL as an unprivileged user: it refuses
root), stops them by PID, and skips with the reason when either is not
installed (`make check` installs both through scripts/deps.sh).  Every
client binds its own 127.0.0.x so that per-address counters do not mix
between the tests, and each test can run on its own (-k)."""
import base64
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, Server, _finish_all, free_port, wait_for
from fakeserver import FakeServer
from pop3_helpers import POP3Raw

PASSWORD = "shared secret 11"
USERS_CACHE = 2          # seconds: users-cache on both nodes
GRANT = 5                # seconds: pop-before-smtp
STATE_RETRY = 3          # seconds Redis stays "down" after a failure
                         # (src/state/state_async.c)


# ----------------------------------------------------------------------
# the shared servers

def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _unprivileged():
    """(argv prefix, uid, gid) to run PostgreSQL as someone not root."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if shutil.which("setpriv"):
            return (["setpriv", f"--reuid={pw.pw_uid}",
                     f"--regid={pw.pw_gid}", "--clear-groups", "--"],
                    pw.pw_uid, pw.pw_gid)
    return None, None, None


class Postgres:
    def __init__(self, base):
        self.bin = _pg_bin()
        self.prefix, uid, gid = _unprivileged()
        self.dir = base / "pg"
        self.dir.mkdir()
        if uid is not None:
            os.chown(self.dir, uid, gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc = None
        subprocess.run(self.prefix + [
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
            "-U", "postgres", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=60, cwd=self.dir)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self):
        self.log = open(self.dir / "postgres.log", "ab")
        self.proc = subprocess.Popen(self.prefix + [
            str(self.bin / "postgres"), "-D", str(self.data),
            "-p", str(self.port), "-k", str(self.dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
            cwd=self.dir)
        ok = wait_for(lambda: self.proc.poll() is None and subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
             str(self.port)], timeout=10).returncode == 0, 30, 0.1)
        assert ok, (self.dir / "postgres.log").read_text()

    def stop(self):
        """Fast shutdown (SIGINT): the nodes' connections do not hold it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
        if self.proc:
            self.log.close()
        self.proc = None


class Redis:
    def __init__(self, base):
        self.dir = base / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.proc = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen([
            shutil.which("redis-server"), "--port", str(self.port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir)], stdout=self.log, stderr=self.log,
            stdin=subprocess.DEVNULL)
        assert wait_for(self._pong, 20, 0.05), \
            (self.dir / "redis.log").read_text()

    def _pong(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, line):
        """One inline command; the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=5) as s:
            s.sendall(line.encode() + b"\r\n")
            return s.recv(4096)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        if self.proc:
            self.log.close()
        self.proc = None


# ----------------------------------------------------------------------
# the nodes

def node(pg, redis, mail):
    srv = Server(extra=[], users=None)
    srv.pop3_port = free_port()
    sub = f"listen submission on 127.0.0.1 port {srv.sub_port}"
    text = srv.conf.read_text().replace(sub, sub + " cleartext-auth loopback")
    text += "\n".join([
        f"listen pop3 on 127.0.0.1 port {srv.pop3_port} "
        "cleartext-auth loopback",
        f"users {pg.url}",
        f"users-cache {USERS_CACHE}s",
        f"state {redis.url}",
        f"mailboxes {mail}",
        f"pop-before-smtp {GRANT}s",
        "user-rate-limit 3 100",
        "auth-throttle 3 60s",
    ]) + "\n"
    srv.conf.write_text(text)
    return srv


@pytest.fixture(scope="module")
def cluster():
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL is not installed (scripts/deps.sh test)")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (scripts/deps.sh test)")
    prefix, _, _ = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv or an unprivileged "
                    "user for PostgreSQL")
    base = Path(tempfile.mkdtemp(prefix="postern-cluster-"))
    os.chmod(base, 0o755)
    pg = redis = None
    nodes = []
    try:
        pg = Postgres(base)
        pg.start()
        redis = Redis(base)
        redis.start()
        mail = base / "mail"     # one Maildir tree, as over NFS
        mail.mkdir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postern")
            os.chown(mail, pw.pw_uid, pw.pw_gid)
        nodes = [node(pg, redis, mail), node(pg, redis, mail)]
        for n in nodes:
            n.start()
        yield pg, redis, nodes[0], nodes[1]
    finally:
        problems = _finish_all(nodes)
        if redis:
            redis.stop()
        if pg:
            pg.stop()
        if not os.environ.get("POSTERN_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


# ----------------------------------------------------------------------
# clients

def user_cmd(srv, *args, password=None):
    r = subprocess.run([BIN, "user", "-c", str(srv.conf), *args],
                       input=password, capture_output=True, text=True,
                       timeout=60)
    return r


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def smtp_auth(srv, source, user="alice", password=PASSWORD):
    """(code, text) of AUTH PLAIN on the node's submission port."""
    with srv.connect(port=srv.sub_port, source=source) as c:
        c.ehlo()
        return c.cmd(f"AUTH PLAIN {plain(user, password)}")


def pop_login(srv, source, user="alice", password=PASSWORD):
    with POP3Raw(srv.pop3_port, source=source) as c:
        r = c.login(user, password)
        if r.startswith("+OK"):
            c.cmd("QUIT")
        return r


def relay_rcpt(srv, source, sender="alice@example.test"):
    # Relay by a grant is on the account of alice, whose login made it:
    # one of her addresses is the sender.
    with srv.connect(source=source) as c:
        c.ehlo()
        code, text = c.cmd(f"MAIL FROM:<{sender}>")
        assert code == 250, text
        return c.cmd("RCPT TO:<friend@elsewhere.example>")


def local_mail(srv, source):
    """Unauthenticated mail for a local user on port 25: the queue id."""
    with srv.connect(source=source) as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<someone@remote.example>")
        assert code == 250, text
        code, text = c.cmd("RCPT TO:<alice@example.test>")
        assert code == 250, text
        code, text = c.cmd("DATA")
        assert code == 354, text
        code, text = c.cmd("Subject: hi\r\n\r\nhello\r\n.")
        assert code == 250, text
        return text


def add_alice(srv):
    return user_cmd(srv, "add", "alice", "--password-stdin", "--address",
                    "alice@example.test", password=PASSWORD + "\n")


def in_view(n):
    """Whether node n's workers know alice, not locked (the auth
    process's view: name:hash:expires:flags:...)."""
    view = n.spool / "private" / "users.view"
    if not view.exists():
        return False
    for line in view.read_text().splitlines():
        if line.startswith("alice:"):
            return "locked" not in line.split(":")[3].split(",")
    return False


def forget_rates(redis, key):
    """Drop the shared hourly counters of key (such as user:alice), so
    that a test starts from none whatever ran before it: messages relayed
    by a grant count toward the user's rate too."""
    reply = redis.command(f"KEYS postern:rate:*:{key}:*")
    for name in re.findall(rb"\r\n(postern:rate:[^\r]+)\r\n", reply):
        redis.command("DEL " + name.decode())


@pytest.fixture
def alice(cluster):
    """The cluster with alice known on both nodes, her sending counters
    at none.  The first test adds her itself and measures it; this adds
    her when that test did not run (a subset chosen with -k), so that
    every test can run on its own."""
    pg, redis, a, b = cluster
    if redis.proc is not None:
        forget_rates(redis, "user:alice")
    if user_cmd(a, "show", "alice").returncode != 0:
        r = add_alice(a)
        assert r.returncode == 0, r.stderr
    for n in (a, b):
        assert wait_for(lambda: in_view(n), USERS_CACHE + 5, 0.05), n.log()
        # The workers read the view once a second: a lock just lifted
        # (test_lock_on_a_...) would still refuse her relay by grant.
        view = n.spool / "private" / "users.view"
        time.sleep(max(0.0, 1.1 - (time.time() - view.stat().st_mtime)))
        assert wait_for(lambda: takes_mail_for_alice(n), 5, 0.1), n.log()
    return cluster


def takes_mail_for_alice(srv):
    with srv.connect(source="127.0.0.40") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<someone@remote.example>")[0] == 250
        return c.cmd("RCPT TO:<alice@example.test>")[0] == 250


# ----------------------------------------------------------------------
# one cluster for all: each test leaves it as it found it, apart from
# the user the first one adds and the addresses each one uses

def test_user_added_on_a_logs_in_on_b(cluster):
    pg, redis, a, b = cluster
    r = add_alice(a)
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()

    # B's auth process reads the database within users-cache and
    # publishes the hash-free view for its workers.  (Polling with
    # logins would count failures against the address.)
    assert wait_for(lambda: in_view(b), USERS_CACHE + 5, 0.05), b.log()
    took = time.monotonic() - t0
    assert took < USERS_CACHE + 1, took
    code, text = smtp_auth(b, "127.0.0.2")
    assert code == 235, text
    print(f"\nfigure: user added on A known on B after {took:.2f}s")
    assert wait_for(lambda: in_view(a), USERS_CACHE + 5, 0.05)
    assert "x" == (b.spool / "private" / "users.view").read_text() \
        .split("alice:")[1].split(":")[0], "no hash in the workers' view"
    # The same row seen by `postern user` on the other node.
    r = user_cmd(b, "show", "alice")
    assert r.returncode == 0 and "alice@example.test" in r.stdout, r
    r = user_cmd(b, "list")
    assert r.returncode == 0 and r.stdout.startswith("alice\tactive"), r
    # The schema is versioned.
    assert "applied schema migration 001_users.sql" in a.log() + b.log()


def test_lock_on_a_refuses_b_within_cache_lifetime(alice):
    pg, redis, a, b = alice
    assert smtp_auth(b, "127.0.0.3")[0] == 235
    r = user_cmd(a, "lock", "alice")
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    # The refusal itself takes a second (the failure delay).
    assert wait_for(lambda: smtp_auth(b, "127.0.0.3")[0] == 535,
                    USERS_CACHE + 6, 0.2)
    took = time.monotonic() - t0
    print(f"\nfigure: lock on A refused on B after {took:.2f}s "
          f"(users-cache {USERS_CACHE}s, incl. 1s failure delay)")
    assert took < USERS_CACHE + 3, took
    assert "locked" in user_cmd(b, "show", "alice").stdout
    r = user_cmd(b, "unlock", "alice")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: smtp_auth(a, "127.0.0.4")[0] == 235,
                    USERS_CACHE + 5, 0.2)


def _together(*runs):
    """Start `postern user` runs at once; their results, in order."""
    procs = [subprocess.Popen([BIN, "user", "-c", str(srv.conf), *args],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for srv, args in runs]
    return [(p.wait(60), *p.communicate()) for p in procs]


def test_edits_on_two_nodes_at_once_both_take_effect(cluster):
    """Each `postern user` is a read-modify-write of the user's row: two
    at once on different nodes must take turns, or one writes back what
    it read before the other's change and undoes it."""
    pg, redis, a, b = cluster
    r = user_cmd(a, "add", "carol", "--password-stdin",
                 password=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    try:
        for day in range(1, 9):
            date = f"2031-01-{day:02d}"
            results = _together((a, ["lock", "carol"]),
                                (b, ["expire", "carol", date]))
            assert all(rc == 0 for rc, _, _ in results), results
            shown = user_cmd(a, "show", "carol").stdout
            assert "status:      locked" in shown and date in shown, \
                f"round {day}: one change lost:\n{shown}"
            assert user_cmd(b, "unlock", "carol").returncode == 0
        # A deletion racing an edit: the edit either comes first or finds
        # no user; it never brings the row back.
        results = _together((a, ["del", "carol"]),
                            (b, ["expire", "carol", "never"]))
        assert results[0][0] == 0, results
        assert results[1][0] in (0, 67), results      # EX_NOUSER
        assert user_cmd(a, "show", "carol").returncode == 67, \
            "the deleted user came back"
    finally:
        user_cmd(a, "del", "carol")


def test_pop_login_on_a_opens_relay_on_b_then_expires(alice):
    pg, redis, a, b = alice
    src = "127.0.0.10"
    assert relay_rcpt(b, src)[0] == 554
    assert pop_login(a, src).startswith("+OK")
    t0 = time.monotonic()
    code, text = relay_rcpt(b, src)
    assert code == 250, text
    assert relay_rcpt(a, src)[0] == 250
    assert relay_rcpt(b, "127.0.0.11")[0] == 554    # another address
    # The grant names alice, on B too: her addresses only.
    assert redis.command("GET postern:grant:127.0.0.10") == \
        b"$10\r\nuser:alice\r\n"
    code, text = relay_rcpt(b, src, sender="someone@remote.example")
    assert code == 553 and "not owned by user alice" in text, text
    a.wait_log(r"pop3 grant address=127\.0\.0\.10 for=5s store=redis "
               r"user=alice")
    time.sleep(max(0.0, GRANT + 0.3 - (time.monotonic() - t0)))
    assert relay_rcpt(a, src)[0] == 554
    assert relay_rcpt(b, src)[0] == 554


def test_user_rate_limit_counts_across_nodes(alice):
    pg, redis, a, b = alice
    results = []
    for n in (a, b, a, b):
        with n.connect(port=n.sub_port, source="127.0.0.12") as c:
            c.ehlo()
            code, text = c.cmd(f"AUTH PLAIN {plain('alice', PASSWORD)}")
            assert code == 235, text
            results.append(c.cmd("MAIL FROM:<alice@example.test>")[0])
    assert results == [250, 250, 250, 450], results
    assert "rate-limit user:alice kind=messages limit=3/h" in b.log()


def test_brute_force_across_nodes_is_blocked(alice):
    pg, redis, a, b = alice
    src = "127.0.0.13"
    out = []

    def attempt(n):
        out.append(smtp_auth(n, src, password="wrong")[0])

    threads = [threading.Thread(target=attempt, args=(n,))
               for n in (a, b, a)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(out) == [535, 535, 535], out
    # Three failures spread over both nodes: the address is blocked on
    # both, even with the right password.
    for n in (b, a):
        code, text = smtp_auth(n, src)
        assert code == 421 and "4.7.0" in text, text
    assert smtp_auth(a, "127.0.0.14")[0] == 235   # others are not


def test_redis_outage_fails_closed_and_recovers(alice):
    pg, redis, a, b = alice
    src = "127.0.0.20"
    assert pop_login(a, src).startswith("+OK")
    assert relay_rcpt(b, src)[0] == 250
    redis.stop()
    t0 = time.monotonic()
    # The grant cannot be read: relay refused (fail closed).
    assert relay_rcpt(b, src)[0] == 554
    assert relay_rcpt(a, src)[0] == 554
    # Mail for local users is still taken, on both nodes.
    for n in (a, b, a, b):
        assert "queued as" in local_mail(n, "127.0.0.21")
    # Authentication answers a temporary error rather than guessing.
    code, text = smtp_auth(b, "127.0.0.22")
    assert code == 454 and "4.7.0" in text, text
    assert pop_login(a, "127.0.0.22").startswith("-ERR [SYS/TEMP]")
    assert time.monotonic() - t0 < GRANT, "the grant would have expired"
    for n in (a, b):
        down = n.log().count("state: redis down")
        # Once per process (two workers and the auth process), not once
        # per session.
        assert 1 <= down <= 3, n.log()
        assert n.proc.poll() is None
    redis.start()
    t1 = time.monotonic()
    assert wait_for(lambda: pop_login(a, src).startswith("+OK"),
                    STATE_RETRY + 5, 0.3)
    assert wait_for(lambda: relay_rcpt(b, src)[0] == 250,
                    STATE_RETRY + 5, 0.3)
    print(f"\nfigure: redis back, relay by grant on B again after "
          f"{time.monotonic() - t1:.2f}s")
    # Both auth processes met the outage (the 454 and the -ERR above),
    # and say when it is over at their next call.
    code, text = smtp_auth(b, "127.0.0.23")
    assert code == 235, text
    a.wait_log(r"postern/authd\[\d+\]: state: redis back")
    b.wait_log(r"postern/authd\[\d+\]: state: redis back")


def test_postgresql_outage_tempfails_auth_and_recovers(alice):
    pg, redis, a, b = alice
    assert smtp_auth(b, "127.0.0.30")[0] == 235
    pg.stop()
    t0 = time.monotonic()
    assert wait_for(lambda: smtp_auth(b, "127.0.0.30")[0] == 454,
                    USERS_CACHE + 5, 0.2), b.log()
    print(f"\nfigure: postgresql stopped, B answers 454 after "
          f"{time.monotonic() - t0:.2f}s")
    assert pop_login(a, "127.0.0.30").startswith("-ERR [SYS/TEMP]") or \
        wait_for(lambda: pop_login(a, "127.0.0.30")
                 .startswith("-ERR [SYS/TEMP]"), USERS_CACHE + 3, 0.2)
    # The workers still know the local users: mail for them is taken.
    assert "queued as" in local_mail(b, "127.0.0.31")
    assert "queued as" in local_mail(a, "127.0.0.31")
    for n in (a, b):
        assert n.log().count("users: postgresql down") == 1, n.log()
    pg.start()
    t1 = time.monotonic()
    assert wait_for(lambda: smtp_auth(b, "127.0.0.30")[0] == 235,
                    2 * USERS_CACHE + 5, 0.3), b.log()
    print(f"\nfigure: postgresql back, B authenticates again after "
          f"{time.monotonic() - t1:.2f}s")
    assert "users: postgresql back" in b.log()


class FreezingRelay(FakeServer):
    """A TCP relay in front of PostgreSQL that can hold the server's
    bytes: a database that took the connection and then stopped
    answering (a stuck server, a path that drops packets).  Held bytes
    go on when it thaws, so the question in flight then completes."""

    def __init__(self, target_port):
        self.target = target_port
        self.frozen = threading.Event()
        self.held = 0    # server replies held while frozen
        super().__init__()

    def accepted(self, client):
        server = socket.create_connection(("127.0.0.1", self.target), 5)
        self.conns.append(server)
        self.spawn(self._pipe, client, server, False)
        self.spawn(self._pipe, server, client, True)

    def _pipe(self, src, dst, held):
        src.settimeout(0.2)
        while not self.stopping:
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if held and self.frozen.is_set():
                self.held += 1
            while held and self.frozen.is_set() and not self.stopping:
                time.sleep(0.02)
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def timed_auth(srv, source):
    t = time.monotonic()
    code = smtp_auth(srv, source)[0]
    return code, time.monotonic() - t


def test_a_database_that_stops_answering_does_not_hold_logins(alice):
    """The auth process asks PostgreSQL on a thread: while a question
    hangs, logins are answered from its copy, for 5 s at most past the
    question, and then refused with 454 until an answer comes."""
    pg, redis, a, b = alice
    relay = FreezingRelay(pg.port)
    mail = Path([line.split()[1] for line in a.conf.read_text().splitlines()
                 if line.startswith("mailboxes ")][-1])
    c = node(type("PG", (), {"url": f"postgresql://postgres@127.0.0.1:"
                                    f"{relay.port}/postgres"}), redis, mail)
    try:
        c.start()
        assert wait_for(lambda: smtp_auth(c, "127.0.0.50")[0] == 235,
                        USERS_CACHE + 5, 0.2), c.log()

        relay.frozen.set()
        t0 = time.monotonic()
        answers = []
        while time.monotonic() - t0 < USERS_CACHE + 10:
            code, took = timed_auth(c, "127.0.0.50")
            answers.append((round(time.monotonic() - t0, 2), code,
                            round(took, 3)))
            if code == 454:
                break
            time.sleep(0.2)
        print(f"\nfigure: (seconds since the freeze, reply, seconds it "
              f"took): {answers}")
        assert all(took < 1.0 for _, _, took in answers), answers
        assert answers[-1][1] == 454, answers
        assert all(code == 235 for _, code, _ in answers[:-1]), answers
        # The question goes out within users-cache (plus the auth
        # process's half-second tick), the copy serves 5 s past it.
        assert answers[-1][0] >= 4.5, answers
        assert "users: postgresql down (no answer in 5s)" in c.log()

        relay.frozen.clear()
        t1 = time.monotonic()
        assert wait_for(lambda: smtp_auth(c, "127.0.0.50")[0] == 235,
                        USERS_CACHE + 5, 0.2), c.log()
        print(f"figure: thawed, 235 again after "
              f"{time.monotonic() - t1:.2f}s")
        assert "users: postgresql back" in c.log()

        # Stopping while a question hangs: its socket is shut, the
        # server exits at once and cleanly.
        relay.frozen.set()
        relay.held = 0
        t2 = time.monotonic()
        while time.monotonic() - t2 < USERS_CACHE + 1.5:
            assert timed_auth(c, "127.0.0.50")[1] < 1.0
            time.sleep(0.2)
        assert relay.held > 0    # the answer to a question out
        t3 = time.monotonic()
        assert c.terminate(timeout=10) == 0, c.log()
        print(f"figure: stopped with a question out in "
              f"{time.monotonic() - t3:.2f}s")
    finally:
        relay.frozen.clear()
        problems = _finish_all([c])
        relay.close()
    assert not problems, "\n\n".join(problems)


def test_a_grant_that_names_no_user_relays_nothing(alice):
    """The "1" of grants made before they named their user."""
    pg, redis, a, b = alice
    assert redis.command("SET postern:grant:127.0.0.16 1 EX 60") == \
        b"+OK\r\n"
    assert relay_rcpt(b, "127.0.0.16")[0] == 554
