"""Protocol errors over a raw socket: each gets the documented reply
(src/smtp/reply_table.h) and, unless it must, does not end the session."""
import time

import pytest

from conftest import module_server, wait_for

SIZE_LIMIT = 64 * 1024
MAX_RCPTS = 5
MAX_ERRORS = 4


@pytest.fixture(scope="module")
def srv():
    yield from module_server(extra=["message-size-limit 64k",
                                    f"max-recipients {MAX_RCPTS}",
                                    f"max-errors {MAX_ERRORS}"])


def code_esc(reply):
    """'500 5.5.1' from (500, '500 5.5.1 Command unrecognized')."""
    return reply[1][:9]


def still_alive(c):
    assert c.cmd("NOOP")[0] == 250


def test_greeting(srv):
    with srv.connect() as c:
        assert c.greeting == (220, "220 mail.example.test ESMTP postern")


def test_unknown_command(srv):
    with srv.connect() as c:
        assert code_esc(c.cmd("FROB me")) == "500 5.5.1"
        assert code_esc(c.cmd("MAILX FROM:<a@b.example>")) == "500 5.5.1"
        assert code_esc(c.cmd("")) == "500 5.5.1"
        still_alive(c)


def test_mail_before_helo(srv):
    with srv.connect() as c:
        assert code_esc(c.cmd("MAIL FROM:<a@client.example>")) == "503 5.5.1"
        assert code_esc(c.cmd("RCPT TO:<hoge@example.test>")) == "503 5.5.1"
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250


def test_rcpt_before_mail(srv):
    with srv.connect() as c:
        c.ehlo()
        assert code_esc(c.cmd("RCPT TO:<hoge@example.test>")) == "503 5.5.1"


def test_data_before_rcpt(srv):
    with srv.connect() as c:
        c.ehlo()
        # no transaction at all
        assert code_esc(c.cmd("DATA")) == "503 5.5.1"
        # a transaction without (valid) recipients
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<x@remote.example>")[0] == 554
        code, text = c.cmd("DATA")
        assert code in (503, 554) and text[4:9] == "5.5.1", text
        # the session is still in the transaction, not in DATA
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
    assert srv.incoming() == []


def test_nested_mail(srv):
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert code_esc(c.cmd("MAIL FROM:<b@client.example>")) == "503 5.5.1"
        # EHLO resets the transaction (RFC 5321 4.1.4)
        c.ehlo()
        assert c.cmd("MAIL FROM:<b@client.example>")[0] == 250


@pytest.mark.parametrize("line,want", [
    ("MAIL FROM:a@client.example", "501 5.1.7"),
    ("MAIL FROM:<a b@client.example>", "501 5.1.7"),
    ("MAIL FROM:<a@client..example>", "501 5.1.7"),
    ("MAIL FROM:<a@>", "501 5.1.7"),
    ("MAIL FROM:<postmaster>", "501 5.1.7"),
    ("MAIL TO:<a@client.example>", "501 5.1.7"),
    ("MAIL FROM:<a@client.example", "501 5.1.7"),
    ("EHLO", "501 5.5.4"),
])
def test_bad_syntax(srv, line, want):
    with srv.connect() as c:
        c.ehlo()
        assert code_esc(c.cmd(line)) == want


@pytest.mark.parametrize("line,want", [
    ("RCPT TO:<>", "501 5.1.3"),
    ("RCPT TO:hoge@example.test", "501 5.1.3"),
    ("RCPT TO:<hoge@@example.test>", "501 5.1.3"),
    ("RCPT TO:<.hoge@example.test>", "501 5.1.3"),
])
def test_bad_rcpt_syntax(srv, line, want):
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert code_esc(c.cmd(line)) == want


def test_unsupported_parameter(srv):
    with srv.connect() as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<a@client.example> FROB=1")
        assert code_esc((code, text)) == "555 5.5.4", text
        assert "FROB" in text
        assert code_esc(c.cmd("MAIL FROM:<a@client.example> SMTPUTF8")) \
            == "555 5.5.4"
        assert c.cmd("MAIL FROM:<a@client.example> BODY=8BITMIME")[0] == 250
        assert code_esc(c.cmd("RCPT TO:<hoge@example.test> NOTIFY=NEVER")) \
            == "555 5.5.4"


def test_size_parameter_over_limit(srv):
    with srv.connect() as c:
        c.ehlo()
        assert code_esc(c.cmd(f"MAIL FROM:<a@client.example> "
                              f"SIZE={SIZE_LIMIT + 1}")) == "552 5.3.4"
        assert code_esc(c.cmd("MAIL FROM:<a@client.example> "
                              "SIZE=99999999999999999999999")) != "250 2.1.0"
        assert c.cmd(f"MAIL FROM:<a@client.example> "
                     f"SIZE={SIZE_LIMIT}")[0] == 250


def test_message_over_limit(srv):
    before = set(srv.queue_ids())
    with srv.connect() as c:
        c.ehlo()
        # the client claims a small size, then sends more
        assert c.cmd("MAIL FROM:<a@client.example> SIZE=1000")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        line = b"z" * 998 + b"\r\n"
        c.send(b"Subject: big\r\n\r\n" + line * (SIZE_LIMIT // 1000 + 10)
               + b".\r\n")
        assert code_esc(c.reply()) == "552 5.3.4"
        # the transaction is over, the session is not
        assert code_esc(c.cmd("RCPT TO:<hoge@example.test>")) == "503 5.5.1"
        still_alive(c)
    assert set(srv.queue_ids()) == before
    assert srv.incoming() == []


def test_message_at_limit_is_accepted(srv):
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        head = b"Subject: exactly\r\n\r\n"
        body = b"a" * (SIZE_LIMIT - len(head) - 2) + b"\r\n"
        c.send(head + body + b".\r\n")
        code, text = c.reply()
        assert code == 250, text
        qid = text.split()[-1]
    assert srv.read_queued(qid)[1] == head + body


def test_too_many_recipients(srv):
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        for i in range(MAX_RCPTS):
            assert c.cmd(f"RCPT TO:<u{i}@example.test>")[0] == 250
        assert code_esc(c.cmd("RCPT TO:<extra@example.test>")) == "452 4.5.3"
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: five\r\n\r\nhi\r\n.\r\n")
        code, text = c.reply()
        assert code == 250
        qid = text.split()[-1]
    env = srv.read_queued(qid)[0]
    assert env["rcpt"] == [f"u{i}@example.test" for i in range(MAX_RCPTS)]


def test_line_too_long(srv):
    with srv.connect() as c:
        # the limit is 4096 octets including CRLF
        assert c.cmd("NOOP " + "x" * (4096 - 7))[0] == 250
        assert code_esc(c.cmd("NOOP " + "x" * (4096 - 6))) == "500 5.5.2"
        still_alive(c)
        # a long line in pieces gets one reply, and its tail is not taken
        # as a command
        c.send("NOOP " + "y" * 3000)
        time.sleep(0.2)
        c.send("z" * 3000)
        time.sleep(0.2)
        c.send("QUIT\r\n")
        assert code_esc(c.reply()) == "500 5.5.2"
        still_alive(c)
        # a huge line (far over any buffer) is survived as well
        c.send(b"RCPT TO:<" + b"a" * 200000 + b"@example.test>\r\n")
        assert code_esc(c.reply()) == "500 5.5.2"
        c.ehlo()


def test_nul_byte_in_command(srv):
    with srv.connect() as c:
        c.ehlo()
        assert code_esc(c.cmd("NOOP\0")) == "500 5.5.2"
        assert code_esc(c.cmd("MAIL FROM:<a@client.example>\0<b@evil.example>")) \
            == "500 5.5.2"
        # nothing was started by the line with the NUL
        assert code_esc(c.cmd("RCPT TO:<hoge@example.test>")) == "503 5.5.1"


def test_too_many_errors(srv):
    with srv.connect() as c:
        c.ehlo()
        for _ in range(MAX_ERRORS):
            assert c.cmd("FROB")[0] == 500
        code, text = c.reply()
        assert code_esc((code, text)) == "421 4.7.0", text
        assert c.closed()
    srv.wait_log(r"smtp disconnect reason=too-many-errors")


def test_too_many_errors_pipelined(srv):
    # errors arriving in one write: the server stops at the limit and
    # does not run the commands after it
    with srv.connect() as c:
        c.ehlo()
        c.send("FROB\r\n" * MAX_ERRORS + "MAIL FROM:<a@client.example>\r\n")
        for _ in range(MAX_ERRORS):
            assert c.reply()[0] == 500
        assert code_esc(c.reply()) == "421 4.7.0"
        assert c.closed()


def test_junk_command_limit(srv):
    """NOOP, VRFY, HELP... are answered, but not forever (100 of them)."""
    with srv.connect() as c:
        c.ehlo()
        c.send("NOOP\r\n" * 60 + "VRFY someone\r\n" * 40 + "NOOP\r\n")
        assert [c.reply()[0] for _ in range(100)] == [250] * 60 + [252] * 40
        assert code_esc(c.reply()) == "421 4.7.0"
        assert c.closed()


@pytest.mark.parametrize("line", ["RSET", "EHLO client.example",
                                  "HELO client.example"])
def test_junk_limit_counts_rset_and_repeated_greetings(srv, line):
    """Each would restart the idle timer forever: a session sending only
    RSET, or greeting again and again, ends like a NOOP flood."""
    with srv.connect() as c:
        c.ehlo()
        c.send(f"{line}\r\n" * 101)
        assert [c.reply()[0] for _ in range(100)] == [250] * 100
        assert code_esc(c.reply()) == "421 4.7.0"
        assert c.closed()
    srv.wait_log(r"smtp disconnect reason=junk-commands")


def test_rset_and_ehlo_between_messages_are_not_junk(srv):
    """A client that sends RSET and EHLO before each message, more often
    than the limit in all, is served: each message starts the count
    again."""
    with srv.connect() as c:
        c.ehlo()
        for i in range(60):
            c.send("RSET\r\nEHLO client.example\r\n"
                   "MAIL FROM:<a@client.example>\r\n"
                   "RCPT TO:<hoge@example.test>\r\nDATA\r\n")
            assert [c.reply()[0] for _ in range(5)] == \
                [250, 250, 250, 250, 354]
            c.send(f"Subject: {i}\r\n\r\nhi\r\n.\r\n")
            assert c.reply()[0] == 250
        still_alive(c)


def test_idle_timeout(postern):
    srv = postern(extra=["smtp-timeout 2s"])
    with srv.connect() as c:
        c.ehlo()
        t0 = time.monotonic()
        c.sock.settimeout(10)
        code, text = c.reply()
        elapsed = time.monotonic() - t0
        assert code_esc((code, text)) == "421 4.4.2", text
        assert 1.5 <= elapsed <= 6, elapsed
        assert c.closed(5)
    srv.wait_log(r"smtp disconnect reason=timeout")


def test_idle_timeout_in_data(postern):
    srv = postern(extra=["smtp-timeout 2s"])
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: slow\r\n\r\nstarted but never finished\r\n")
        code, text = c.reply()
        assert code_esc((code, text)) == "421 4.4.2", text
        assert c.closed(5)
    assert wait_for(lambda: srv.incoming() == [], 5), srv.incoming()
    assert srv.queue_ids() == []
