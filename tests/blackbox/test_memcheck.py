"""A representative path through the server, small enough to run under
valgrind memcheck in `make check` (`make memcheck`: POSTERN_VALGRIND=1
against a build without sanitizers): a plain delivery, AUTH inside
STARTTLS and on 465, a smuggling attempt, protocol errors and a
shutdown.  conftest.py fails the test on any memcheck error, definite
leaks included.  Without POSTERN_VALGRIND the same tests run against the
ASan/UBSan build like the rest of the suite."""
import smtplib

import pytest

from conftest import owned_server
from test_auth import PASSWORD, make_server, plain_ir, starttls, tls_context

pytestmark = pytest.mark.memcheck


@pytest.fixture(scope="module")
def srv():
    s = make_server(extra=["auth-mechanisms PLAIN LOGIN CRAM-MD5 "
                           "SCRAM-SHA-256", "workers 1"])
    yield from owned_server(s)


def test_plain_delivery(srv):
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example> SIZE=100")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: memcheck\r\n\r\n..dot\r\nbody\r\n.\r\n")
        code, text = c.reply()
        assert code == 250, text
        assert c.cmd("QUIT")[0] == 221
    _, body, _ = srv.read_queued(text.split()[-1])
    assert body == b"Subject: memcheck\r\n\r\n.dot\r\nbody\r\n"


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5",
                                  "SCRAM-SHA-256"])
def test_auth_over_starttls(srv, mech):
    with srv.connect(srv.sub_port) as c:
        starttls(c)
        c.ehlo()
        if mech == "PLAIN":
            code, text = c.cmd("AUTH PLAIN " + plain_ir("hoge", PASSWORD))
            assert code == 235, text
            return
        # a challenge, a cancel, then a wrong password: the failure
        # paths through the auth process
        assert c.cmd("AUTH " + mech)[0] == 334
        assert c.cmd("*")[0] == 501
        code, text = c.cmd("AUTH PLAIN " + plain_ir("hoge", "wrong"))
        assert code == 535, text


def test_smtplib_on_465(srv):
    with smtplib.SMTP_SSL("127.0.0.1", srv.ssl_port, timeout=30,
                          context=tls_context()) as s:
        s.login("hoge", PASSWORD)
        s.sendmail("hoge@example.test", ["x@remote.example"],
                   "Subject: via 465\r\n\r\nhi\r\n")


def test_smuggling_and_errors(srv):
    with srv.connect() as c:
        c.ehlo()
        c.send(b"FROB\r\nMAIL FROM:<a@b\x00c>\r\n" + b"x" * 5000 + b"\r\n")
        assert [c.reply()[0] for _ in range(3)] == [500, 500, 500]
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\n.\r\n")
        assert c.reply()[1].startswith("521 5.5.2")
        assert c.closed()
