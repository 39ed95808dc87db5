"""The auth process verifies passwords on threads of its own: a login
whose hash is being computed holds nobody else's, a client that leaves
meanwhile costs nothing more, and the verdict is for the account as it
is when the hash is done.  The slow users here have SHA-512 crypt hashes
with millions of rounds (about a second each) instead of yescrypt's few
milliseconds, so that "meanwhile" is long enough to act in."""
import os
import threading
import time
import warnings

import pytest

from conftest import NET_TIMEOUT, _finish_all, wait_for
from pop3_helpers import POP3Raw, pop3_server
from test_auth import PASSWORD, make_server, plain_ir, postern_user, starttls

ROUNDS = 3_000_000


def slow_hash(password):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            pytest.skip("SKIP: Python's crypt module (SHA-512 crypt "
                        "hashes with many rounds) is not available")
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512,
                                              rounds=ROUNDS))


def slow_down(srv, names):
    """Give the users `names` of a server not yet started slow hashes of
    PASSWORD."""
    lines = []
    for line in srv.users_path.read_text().splitlines():
        f = line.split(":")
        if f[0] in names:
            f[1] = slow_hash(PASSWORD)
        lines.append(":".join(f))
    srv.users_path.write_text("\n".join(lines) + "\n")


def server_with_slow_users(names):
    """A server whose users `names` have slow hashes of PASSWORD; hoge
    keeps its yescrypt hash and its CRAM-MD5 secret."""
    srv = make_server(extra=["auth-mechanisms PLAIN LOGIN CRAM-MD5"],
                      users=[("hoge", ["hoge@example.test"])]
                      + [(n, [f"{n}@example.test"]) for n in names],
                      start=False)
    slow_down(srv, names)
    return srv.start()


class Login(threading.Thread):
    """AUTH PLAIN on its own session: `sent` once the command is out,
    then (code, text) and the monotonic time of the answer."""

    def __init__(self, srv, user, password=PASSWORD, leave=False):
        super().__init__(daemon=True)
        self.srv, self.user, self.password = srv, user, password
        self.leave = leave
        self.sent = threading.Event()
        self.reply = self.at = self.error = None

    def run(self):
        try:
            with starttls(self.srv.connect(self.srv.sub_port)) as c:
                c.ehlo()
                c.send(f"AUTH PLAIN {plain_ir(self.user, self.password)}"
                       "\r\n")
                self.sent.set()
                if self.leave:
                    return      # gone before the answer
                self.reply = c.reply()
                self.at = time.monotonic()
        except Exception as e:      # reported by the test
            self.error = e
            self.sent.set()


def started(srv, *logins):
    for l in logins:
        l.start()
    for l in logins:
        assert l.sent.wait(NET_TIMEOUT) and l.error is None, l.error
    # The worker relays each AUTH to the auth process at once; give the
    # relay a moment so that the hashes are under way.
    time.sleep(0.2)


def test_a_slow_hash_does_not_hold_other_logins():
    srv = server_with_slow_users(["slow1", "slow2"])
    try:
        t0 = time.monotonic()
        slow = [Login(srv, "slow1"), Login(srv, "slow2")]
        started(srv, *slow)
        # CRAM-MD5 needs no hash: answered while both hashes run.
        import smtplib
        from test_auth import tls_context
        with smtplib.SMTP("127.0.0.1", srv.sub_port,
                          timeout=NET_TIMEOUT) as s:
            s.starttls(context=tls_context())
            s.ehlo()
            assert "CRAM-MD5" in s.esmtp_features["auth"]
            code, _ = s.login("hoge", PASSWORD)   # smtplib prefers CRAM-MD5
            assert code == 235
            fast_at = time.monotonic()
        for l in slow:
            l.join(NET_TIMEOUT)
            assert l.error is None, l.error
            assert l.reply[0] == 235, (l.user, l.reply)
        log = srv.log()
        assert "auth ok user=hoge address=127.0.0.1 mech=CRAM-MD5" in log
        first_slow = min(l.at for l in slow)
        assert fast_at < first_slow, (
            f"CRAM-MD5 answered {fast_at - t0:.2f} s in, the first slow "
            f"PLAIN {first_slow - t0:.2f} s in: it waited for a hash")
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_a_client_that_leaves_during_its_check():
    """Every thread busy with a login that stays, then one that leaves
    while its check waits for a thread: the check is skipped, the others
    are answered, and a stop with checks under way is a clean one."""
    most = min(os.cpu_count() or 1, 8)
    names = [f"slow{i}" for i in range(most + 1)]
    srv = server_with_slow_users(names)
    try:
        n = int(srv.wait_log(r"authd: verifying passwords on (\d+) "
                             r"threads").group(1))
        assert 1 <= n <= most, n
        busy = [Login(srv, name) for name in names[:n]]
        started(srv, *busy)
        gone = Login(srv, names[n], leave=True)
        started(srv, gone)
        gone.join(NET_TIMEOUT)
        for l in busy:
            l.join(NET_TIMEOUT)
            assert l.error is None and l.reply[0] == 235, (l.error, l.reply)
        srv.wait_log(rf"authd: auth abandoned user={names[n]} "
                     r"address=127\.0\.0\.1 mech=PLAIN hash=skipped")
        assert f"auth ok user={names[n]} " not in srv.log()
        # The worker saw the client leave while it waited.
        srv.wait_log(r"smtp disconnect reason=eof messages=0 "
                     r"commands=ehlo=2,starttls=1,auth=1")
        # Stopping with a check under way: a clean exit, and no answer.
        stay = Login(srv, names[n])
        started(srv, stay)
        assert srv.terminate() == 0, srv.log()[-2000:]
        assert f"auth ok user={names[n]} " not in srv.log()
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_a_pop3_client_that_leaves_during_its_check():
    """POP3 waits for the auth process the same way: a client gone
    before the answer ends the exchange, and nobody is logged in."""
    srv = pop3_server(users=("slow",), start=False)
    slow_down(srv, ["slow"])
    srv.start()
    try:
        with POP3Raw(srv.pop3s_port, tls=True) as c:
            assert c.cmd("USER slow").startswith("+OK")
            c.send(f"PASS {PASSWORD}\r\n")
            time.sleep(0.2)
        srv.wait_log(r"authd: auth abandoned user=slow address=127\.0\.0\.1 "
                     r"mech=\S+ hash=(done|skipped)")
        srv.wait_log(r"pop3 disconnect reason=(eof|tls-error) user=- ")
        assert "auth ok user=slow " not in srv.log()
        assert "pop3 login user=slow" not in srv.log()
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_an_account_locked_during_its_check_is_refused():
    srv = server_with_slow_users(["slow1"])
    try:
        l = Login(srv, "slow1")
        started(srv, l)
        r = postern_user(srv, "lock", "slow1")
        assert r.returncode == 0, r.stderr
        locked_at = time.monotonic()
        l.join(NET_TIMEOUT)
        assert l.error is None, l.error
        assert locked_at < l.at, "the hash ended before the lock; " \
            "the test could not check anything"
        code, text = l.reply
        assert code == 535 and "5.7.8" in text, text
        srv.wait_log(r"authd: auth failed user=slow1 address=127\.0\.0\.1 "
                     r"mech=PLAIN failures=1")
    finally:
        problems = _finish_all([srv])
        assert not problems, problems
