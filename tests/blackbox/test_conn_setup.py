"""A connection the worker cannot watch (epoll_ctl refuses to add it,
as at fs.epoll.max_user_watches or out of memory) is closed and logged,
instead of being kept for ever without a read event or a timeout: a new
one at once, one already open when reading is to resume.  Its TLS state
and socket are freed once (AddressSanitizer would see a second free),
and the worker goes on serving when the limit has passed."""
import re
import socket

import pytest

from conftest import build_shim, finish_checked, free_port
from test_auth import make_server, starttls, tls_context

WAIT = 5


@pytest.fixture
def unwatchable(tmp_path):
    """A server whose epoll_ctl(EPOLL_CTL_ADD) fails while srv.flag
    exists."""
    shim = build_shim("failepoll", tmp_path)
    pop3_port = free_port()
    srv = make_server(extra=["workers 1",
                             f"listen pop3 on 127.0.0.1 port {pop3_port}"],
                      start=False)
    srv.pop3_port = pop3_port
    # The workers run as user postern: the flag must be where they can
    # look (tmp_path is root's alone).
    srv.flag = srv.dir / "fail-epoll"
    srv.wrap = ["env", f"LD_PRELOAD={shim}", f"FAILEPOLL_FLAG={srv.flag}",
                "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0"]
    srv.start()
    try:
        yield srv
    finally:
        if srv.flag.exists():
            srv.flag.unlink()
        finish_checked(srv)


def closed_without_a_session(port, tls):
    """True if the server closes the connection within WAIT seconds
    without a greeting (a TLS handshake ends in EOF or a reset)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        try:
            if tls:
                with tls_context().wrap_socket(raw) as t:
                    return t.recv(512) == b""
            return raw.recv(512) == b""
        except socket.timeout:
            return False
        except (ConnectionError, OSError):   # ssl.SSLError included
            return True


def test_a_new_connection_that_cannot_be_watched_is_closed(unwatchable):
    srv = unwatchable
    workers = set(srv.children())
    srv.flag.touch()
    for port, tls in ((srv.smtp_port, False), (srv.ssl_port, True),
                      (srv.pop3_port, False)):
        assert closed_without_a_session(port, tls), (port, srv.log())
    log = srv.log()
    assert log.count("cannot watch the connection from 127.0.0.1") == 3, \
        log[-3000:]
    assert "disconnect reason=no-watch" in log
    # libevent's own line about it is in the log's format.
    assert re.search(r"\]: libevent: Epoll ADD\(\d+\) on fd \d+ failed",
                     log), log[-3000:]
    srv.flag.unlink()
    # The same worker serves again, in the clear and in TLS.
    assert set(srv.children()) == workers
    with srv.connect(srv.sub_port) as c:
        starttls(c)
        assert c.cmd("NOOP")[0] == 250
    with socket.create_connection(("127.0.0.1", srv.ssl_port),
                                  timeout=WAIT) as raw:
        with tls_context().wrap_socket(raw) as t:
            assert t.recv(512).startswith(b"220 ")
    with socket.create_connection(("127.0.0.1", srv.pop3_port),
                                  timeout=WAIT) as raw:
        assert raw.recv(512).startswith(b"+OK")


def test_a_session_that_can_no_longer_be_watched_is_closed(unwatchable):
    """Reading stops while a message is stored and resumes after its
    250; if the connection cannot be watched again by then, the 250
    still goes out and the session ends."""
    srv = unwatchable
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<someone@example.org>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        srv.flag.touch()
        code, text = c.cmd("Subject: unwatched\r\n\r\nbody\r\n.")
        assert code == 250, text
        assert c.closed(WAIT), srv.log()[-3000:]
    assert re.search(r"[0-9a-f]{16} smtp cannot watch the connection\n",
                     srv.log()), srv.log()[-3000:]
    assert len(srv.queue_ids()) == 1
