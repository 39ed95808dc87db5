"""POP before SMTP (issue 6, DESIGN.md): a POP3 login opens relay on the
smtp listener for the client's address for `pop-before-smtp DURATION`;
never on submission, never after a failed login, and the grant outlives
a restart.  Relay by a grant is on the account of the user who logged
in: that user's envelope addresses, rate limits and lock apply, as for
SMTP AUTH.  Each test uses its own 127.0.0.x so that grants do not
mix."""
import os
import time

import pytest

from conftest import finish_checked, owned_server
from conftest import wait_for
from pop3_helpers import (PASSWORD, POP3Raw, _owner, greeted_while,
                          postern_user, pop3_server)


def server(duration, extra=(), **kw):
    # cleartext-auth loopback: the raw client logs in without TLS, from
    # whichever 127.0.0.x it binds.
    return pop3_server(extra=[f"pop-before-smtp {duration}", *extra],
                       users=("hoge",), pop3_opts="cleartext-auth loopback",
                       **kw)


def relay_rcpt(srv, source, port=None, sender="hoge@example.test"):
    with srv.connect(port=port, source=source) as c:
        c.ehlo()
        code, text = c.cmd(f"MAIL FROM:<{sender}>")
        if code != 250:
            return code, text
        return c.cmd("RCPT TO:<someone@remote.example>")


def pop_login(srv, source, password=PASSWORD):
    with POP3Raw(srv.pop3_port, source=source) as c:
        r = c.login("hoge", password)
        c.cmd("QUIT")
        return r


@pytest.fixture
def short():
    s = server("2s")
    yield from owned_server(s)


def test_grant_opens_relay_then_expires(short):
    src = "127.0.0.5"
    code, text = relay_rcpt(short, src)
    assert (code, text[:9]) == (554, "554 5.7.1"), text
    assert pop_login(short, src).startswith("+OK")
    t0 = time.monotonic()
    short.wait_log(r"pop3 grant address=127\.0\.0\.5 until=(\S+)")
    assert (short.spool / "grants" / "127.0.0.5").exists()
    code, text = relay_rcpt(short, src)
    assert code == 250, text
    # Another address gains nothing from it.
    assert relay_rcpt(short, "127.0.0.9")[0] == 554
    # Submission still wants AUTH: a grant is no substitute.
    code, text = relay_rcpt(short, src, port=short.sub_port)
    assert code == 530, text
    # After the duration it is over, and the sweep... is not needed for
    # that: the check reads the expiry itself.
    time.sleep(max(0.0, 2.2 - (time.monotonic() - t0)))
    code, text = relay_rcpt(short, src)
    assert (code, text[:9]) == (554, "554 5.7.1"), text


def test_failed_login_grants_nothing(short):
    src = "127.0.0.6"
    r = pop_login(short, src, password="wrong")
    assert r == "-ERR [AUTH] Authentication failed"
    assert relay_rcpt(short, src)[0] == 554
    assert not (short.spool / "grants" / "127.0.0.6").exists()
    assert "grant address=127.0.0.6" not in short.log()


def test_grant_survives_restart():
    srv = server("10m")
    try:
        src = "127.0.0.7"
        assert pop_login(srv, src).startswith("+OK")
        srv.wait_log(r"pop3 grant address=127\.0\.0\.7 until=")
        assert srv.terminate() == 0
        srv.logf.close()
        srv.start()
        code, text = relay_rcpt(srv, src)
        assert code == 250, text
        assert relay_rcpt(srv, "127.0.0.8")[0] == 554
    finally:
        finish_checked(srv)


def test_expired_grant_is_swept_at_start():
    srv = server("10m")
    srv.terminate()
    srv.logf.close()
    try:
        grants = srv.spool / "grants"
        (grants / "127.0.0.11").write_text("until 1000\n")
        srv.start()
        srv.wait_log(r"popbsmtp: grant address=127\.0\.0\.11 expired at "
                     r"1970-01-01T00:16:40Z")
        assert not (grants / "127.0.0.11").exists()
        assert relay_rcpt(srv, "127.0.0.11")[0] == 554
    finally:
        finish_checked(srv)


# Enough grants that reading them all takes a good part of a second.
MANY_GRANTS = 100000


def test_the_sweep_of_many_grants_does_not_stall_the_worker():
    """Worker 0 reads every grant once a minute to remove the expired
    ones: on a thread, while the worker goes on greeting."""
    srv = server("1h", workers=1, start=False)
    srv.start()         # makes grants/ for the workers' user
    srv.terminate()
    srv.logf.close()
    grants = srv.spool / "grants"
    owner = _owner()
    far = int(time.time()) + 7200
    for i in range(MANY_GRANTS):
        name = f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"
        fd = os.open(grants / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        os.write(fd, b"until %d\n" % far)
        if owner:
            os.fchown(fd, *owner)
        os.close(fd)
    # Valid at start (the master's sweep keeps it), expired by the
    # worker's first sweep a minute later: its line shows that sweep.
    soon = int(time.time()) + 15
    (grants / "127.0.0.12").write_text(f"until {soon}\n")
    if owner:
        os.chown(grants / "127.0.0.12", *owner)
    try:
        srv.start()
        started = time.monotonic()
        time.sleep(50)
        got = {}

        def sweep():
            got["sent"] = time.monotonic()
            srv.wait_log(r"popbsmtp: grant address=127\.0\.0\.12 expired "
                         r"at ", timeout=60)
            got["swept"] = time.monotonic()
            time.sleep(2)       # the rest of the sweep, after that file
            got["done"] = time.monotonic()

        greeted_while(srv, sweep, got, at_least=2, longest_allowed=0.2)
        assert got["swept"] - started > 55, "swept before the minute"
        assert not (grants / "127.0.0.12").exists()
        assert len(os.listdir(grants)) == MANY_GRANTS
    finally:
        finish_checked(srv)


def test_relay_by_grant_needs_the_users_own_sender(short):
    """A grant relays for the user who logged in, as AUTH would: with
    someone else's envelope sender it is refused with the sender-check
    reply; mail for local users from that address is not affected."""
    src = "127.0.0.13"
    assert pop_login(short, src).startswith("+OK")
    code, text = relay_rcpt(short, src, sender="ceo@bank.example")
    assert (code, text) == (553, "553 5.7.1 Sender address rejected: not "
                            "owned by user hoge"), text
    assert relay_rcpt(short, src, sender="")[0] == 553
    with short.connect(source=src) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<ceo@bank.example>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
    code, text = relay_rcpt(short, src)
    assert code == 250, text
    short.wait_log(r"pop3 grant address=127\.0\.0\.13 until=\S+ user=hoge")


def test_relay_by_grant_counts_toward_the_users_rate():
    srv = server("10m", extra=["user-rate-limit 100 3"])
    try:
        src = "127.0.0.14"
        assert pop_login(srv, src).startswith("+OK")
        with srv.connect(source=src) as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<hoge@example.test>")[0] == 250
            replies = [c.cmd(f"RCPT TO:<friend{i}@remote.example>")
                       for i in range(4)]
        assert [code for code, _ in replies] == [250, 250, 250, 450], \
            replies
        # The reply an authenticated user gets (test_hostile.py).
        assert replies[3][1] == ("450 4.7.1 Sending rate limit exceeded, "
                                 "try again later"), replies
        srv.wait_log(r"smtp rate-limit user:hoge kind=recipients "
                     r"limit=3/h")
        # The next session from that address is still on the account.
        code, text = relay_rcpt(srv, src)
        assert code == 450, text
    finally:
        finish_checked(srv)


def test_messages_relayed_by_grant_count_toward_the_users_rate():
    """As for AUTH, each message counts once toward the user's messages
    per hour, at its first relayed recipient; mail for local users in
    the same session does not."""
    srv = server("10m", extra=["user-rate-limit 2 100"])
    try:
        src = "127.0.0.17"
        assert pop_login(srv, src).startswith("+OK")
        codes = []
        with srv.connect(source=src) as c:
            c.ehlo()
            for k in range(3):
                assert c.cmd("MAIL FROM:<hoge@example.test>")[0] == 250
                assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
                codes.append([c.cmd(f"RCPT TO:<f{k}{i}@remote.example>")[0]
                              for i in range(2)])
                assert c.cmd("RSET")[0] == 250
        assert codes == [[250, 250], [250, 250], [450, 450]], codes
        srv.wait_log(r"smtp rate-limit user:hoge kind=messages limit=2/h")
    finally:
        finish_checked(srv)


def test_locking_the_user_ends_relay_by_a_live_grant():
    srv = server("10m")
    try:
        src = "127.0.0.15"
        assert pop_login(srv, src).startswith("+OK")
        assert relay_rcpt(srv, src)[0] == 250
        r = postern_user(srv, "lock", "hoge")
        assert r.returncode == 0, r.stderr
        t0 = time.monotonic()
        assert wait_for(lambda: relay_rcpt(srv, src)[0] == 554, 10, 0.1), \
            "still relaying for a locked user"
        took = time.monotonic() - t0
        srv.wait_log(r"smtp grant refused user=hoge reason=locked")
        assert (srv.spool / "grants" / src).exists()    # still live
        assert postern_user(srv, "unlock", "hoge").returncode == 0
        assert wait_for(lambda: relay_rcpt(srv, src)[0] == 250, 10, 0.1)
        print(f"\nfigure: relay refused {took:.2f}s after the lock")
    finally:
        finish_checked(srv)


def test_a_grant_that_names_no_user_relays_nothing(short):
    """Grants written before they named their user: no grant."""
    src = "127.0.0.16"
    path = short.spool / "grants" / src
    path.write_text(f"until {int(time.time()) + 600}\n")
    owner = _owner()
    if owner:
        os.chown(path, *owner)
    code, text = relay_rcpt(short, src)
    assert (code, text[:9]) == (554, "554 5.7.1"), text
