"""A new connection the worker cannot watch (epoll_ctl refuses to add
it, as at fs.epoll.max_user_watches or out of memory): the session is
closed at once and logged, instead of being kept for ever without a
read event or a timeout; its TLS state and socket are freed once
(AddressSanitizer would see a second free); and the worker goes on
serving when the limit has passed."""
import re
import socket

from conftest import build_shim, finish_checked, free_port, wait_for
from test_auth import make_server, starttls, tls_context

WAIT = 5


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


def test_a_connection_that_cannot_be_watched_is_closed(tmp_path):
    shim = build_shim("failepoll", tmp_path)
    pop3_port = free_port()
    srv = make_server(extra=["workers 1",
                             f"listen pop3 on 127.0.0.1 port {pop3_port}"],
                      start=False)
    # The workers run as user postern: the flag must be where they can
    # look (tmp_path is root's alone).
    flag = srv.dir / "fail-epoll"
    srv.wrap = ["env", f"LD_PRELOAD={shim}", f"FAILEPOLL_FLAG={flag}",
                "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0"]
    srv.start()
    try:
        workers = set(srv.children())
        flag.touch()
        for port, tls in ((srv.smtp_port, False), (srv.ssl_port, True),
                          (pop3_port, False)):
            assert closed_without_a_session(port, tls), (port, srv.log())
        assert srv.log().count("cannot watch the connection from "
                               "127.0.0.1") == 3, srv.log()[-3000:]
        assert "disconnect reason=no-watch" in srv.log()
        # libevent's own line about it is in the log's format
        assert re.search(r"\]: libevent: Epoll ADD\(\d+\) on fd \d+ failed",
                         srv.log()), srv.log()[-3000:]
        flag.unlink()
        # The same worker serves again, in the clear and in TLS.
        assert set(srv.children()) == workers
        with srv.connect(srv.sub_port) as c:
            starttls(c)
            assert c.cmd("NOOP")[0] == 250
        with socket.create_connection(("127.0.0.1", srv.ssl_port),
                                      timeout=WAIT) as raw:
            with tls_context().wrap_socket(raw) as t:
                assert t.recv(512).startswith(b"220 ")
        with socket.create_connection(("127.0.0.1", pop3_port),
                                      timeout=WAIT) as raw:
            assert raw.recv(512).startswith(b"+OK")
    finally:
        if flag.exists():
            flag.unlink()
        finish_checked(srv)
