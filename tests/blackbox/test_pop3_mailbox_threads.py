"""A POP3 login reads the whole Maildir (new/ into cur/, a stat per
message) and QUIT fsyncs it: that work runs on the worker's mailbox
threads, so a large mailbox does not stall the other sessions of the
worker; the client may leave, or the server stop, while it runs."""
import os
import re
import threading
import time

import pytest

from conftest import NET_TIMEOUT, SMTPClient, finish_checked, owned_server
from pop3_helpers import PASSWORD, POP3Raw, _owner, make_box, pop3_server

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

    t = threading.Thread(target=login)
    t.start()
    answered = []
    deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < deadline:
        # A new SMTP connection's greeting: the loop accepted and wrote.
        smtp = SMTPClient(srv.smtp_port)
        assert smtp.greeting[0] == 220, smtp.greeting
        answered.append(time.monotonic())
        smtp.sock.close()
        time.sleep(0.005)
    t.join(NET_TIMEOUT)
    assert not t.is_alive()
    assert re.match(rf"^\+OK Logged in, {BIG} messages \(\d+ octets\)$",
                    got["reply"]), got["reply"]
    took = got["done"] - got["sent"]
    assert took > 0.1, f"the login took {took:.3f} s: too little to tell"
    during = [a for a in answered if got["sent"] <= a <= got["done"]]
    times = [got["sent"]] + during + [got["done"]]
    longest = max(b - a for a, b in zip(times, times[1:]))
    # On the loop, the open would hold every greeting for all of it.
    assert len(during) >= 5 and longest < took / 3, \
        (f"login {took:.3f} s; {len(during)} greetings meanwhile, "
         f"longest wait {longest:.3f} s")
    srv.wait_log(rf"pop3 login user=huge mech=USER messages={BIG} ")
    assert pop.cmd("DELE 1").startswith("+OK")
    assert pop.cmd("QUIT") == f"+OK Bye, {BIG - 1} messages left"
    assert len(os.listdir(srv.mail / "huge" / "cur")) == BIG - 1
    srv.wait_log(rf"pop3 quit user=huge deleted=1 kept={BIG - 1}")


def test_a_client_gone_during_the_open_leaves_the_mailbox_free(srv):
    pop = pop3s(srv)
    assert pop.cmd("USER gone").startswith("+OK")
    pop.send(f"PASS {PASSWORD}\r\n")
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
