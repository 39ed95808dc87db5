"""A plain client (smtplib) against postern: what it sends is what the
spool holds, byte for byte, and the log tells the story of the session."""
import re
import smtplib
import time

import pytest

from conftest import HOSTNAME, NET_TIMEOUT, module_server, queued_id, wait_for

SIZE_LIMIT = 10 * 1024 * 1024


def send(srv, msg, frm="sender@client.example", to=("hoge@example.test",),
         mail_options=(), helo=None):
    """One transaction with smtplib; returns (qid, the client's port)."""
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=NET_TIMEOUT) as s:
        if helo:
            code, _ = s.helo(helo)
        else:
            code, _ = s.ehlo("client.example")
        assert code == 250
        port = s.sock.getsockname()[1]
        code, text = s.mail(frm, list(mail_options))
        assert code == 250, text
        for rcpt in to:
            code, text = s.rcpt(rcpt)
            assert code == 250, text
        code, text = s.data(msg)
        assert code == 250, text
        return queued_id(text.decode()), port


@pytest.fixture(scope="module")
def srv():
    yield from module_server(
        extra=[f"message-size-limit {SIZE_LIMIT // (1024 * 1024)}M"])


MESSAGES = {
    "simple": b"From: a@client.example\r\nTo: hoge@example.test\r\n"
              b"Subject: hello\r\n\r\nHello, world.\r\n",
    "dots": b"Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n"
            b"..two dots\r\nmiddle . dot\r\n. \r\n.\r\nend\r\n",
    "long-line": b"Subject: long\r\n\r\n" + b"x" * 5000 + b"\r\n"
                 + b"." + b"y" * 4999 + b"\r\n",
    "empty-body": b"Subject: nothing\r\n\r\n",
    "blank-lines": b"Subject: blanks\r\n\r\n\r\n\r\nafter blanks\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_body_is_stored_byte_for_byte(srv, name):
    msg = MESSAGES[name]
    qid, _ = send(srv, msg)
    env, body, received = srv.read_queued(qid)
    assert body == msg
    assert env["qid"] == qid
    assert env["from"] == "sender@client.example"
    assert env["rcpt"] == ["hoge@example.test"]
    assert env["protocol"] == "ESMTP"
    assert env["listener"] == "smtp"
    assert env["body"] == "7BIT"


def test_received_header(srv):
    qid, port = send(srv, MESSAGES["simple"])
    env, _, received = srv.read_queued(qid)
    text = received.decode()
    assert text.startswith("Received: from client.example ([127.0.0.1])")
    assert f"by {HOSTNAME} (postern) with ESMTP id {qid}" in text
    assert "for <hoge@example.test>" in text
    assert env["client"] == f"127.0.0.1 {port}"
    assert env["helo"] == "client.example"


def test_8bitmime_body(srv):
    msg = ("Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; "
           "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "café, naïve, Grüße, 日本語\r\n").encode() + \
        bytes(range(0x80, 0x100)) + b"\r\n"
    qid, _ = send(srv, msg, mail_options=["BODY=8BITMIME"])
    env, body, _ = srv.read_queued(qid)
    assert body == msg
    assert env["body"] == "8BITMIME"


def test_missing_final_crlf(srv):
    # smtplib ends the data with CRLF before the final dot; postern must
    # keep exactly that.
    msg = b"Subject: no newline\r\n\r\nlast line without CRLF"
    qid, _ = send(srv, msg)
    _, body, _ = srv.read_queued(qid)
    assert body == msg + b"\r\n"


def test_several_recipients_and_null_sender(srv):
    rcpts = ["a@example.test", "b@example.test", "postmaster@example.test"]
    qid, _ = send(srv, MESSAGES["simple"], frm="", to=rcpts)
    env, body, received = srv.read_queued(qid)
    assert env["from"] == ""
    assert env["rcpt"] == rcpts
    assert b"for <" not in received	# only with a single recipient
    assert body == MESSAGES["simple"]


def test_ehlo_keywords(srv):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=NET_TIMEOUT) as s:
        code, text = s.ehlo("client.example")
        assert code == 250
        lines = text.decode().split("\n")
        assert lines[0] == HOSTNAME
        assert s.has_extn("pipelining")
        assert s.has_extn("8bitmime")
        assert s.has_extn("enhancedstatuscodes")
        assert s.esmtp_features["size"] == str(SIZE_LIMIT)
        # Nothing that is not implemented is advertised.
        for ext in ("chunking", "smtputf8", "dsn", "etrn"):
            assert not s.has_extn(ext), ext


def test_helo(srv):
    msg = b"Subject: helo\r\n\r\nsent after HELO\r\n"
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=NET_TIMEOUT) as s:
        code, text = s.helo("old.client.example")
        assert code == 250
        assert text.decode() == HOSTNAME
        # no ESMTP parameters after HELO (smtplib would drop them itself)
        code, text = s.docmd("MAIL", "FROM:<a@client.example> BODY=8BITMIME")
        assert code == 555, text
        code, _ = s.mail("a@client.example")
        assert code == 250
        assert s.rcpt("hoge@example.test")[0] == 250
        code, text = s.data(msg)
        assert code == 250
        qid = queued_id(text.decode())
    env, body, received = srv.read_queued(qid)
    assert body == msg
    assert env["protocol"] == "SMTP"
    assert env["helo"] == "old.client.example"
    assert b" with SMTP id " in received


def test_other_commands(srv):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=NET_TIMEOUT) as s:
        assert s.noop()[0] == 250		# before EHLO too
        s.ehlo("client.example")
        assert s.noop() == (250, b"2.0.0 Ok")
        code, text = s.verify("hoge@example.test")
        assert code == 252 and text.startswith(b"2.5.0"), text
        code, text = s.docmd("VRFY")
        assert code == 501, text
        code, text = s.docmd("HELP")
        assert code == 214 and b"EHLO" in text
        assert s.mail("a@client.example")[0] == 250
        assert s.rset()[0] == 250
        # the transaction is gone: RCPT needs a new MAIL
        assert s.rcpt("hoge@example.test")[0] == 503
        assert s.mail("a@client.example")[0] == 250
        assert s.docmd("EXPN", "staff")[0] == 502
        code, text = s.docmd("QUIT")
        assert (code, text) == (221, b"2.0.0 Bye")
        s.close()


def test_log_lines(srv):
    qid, port = send(srv, MESSAGES["simple"],
                     to=("hoge@example.test", "fuga@example.test"))
    queued = srv.wait_log(rf"\w{{16}} smtp queued qid={qid} .*$").group(0)
    m = re.search(r"([0-9a-f]{16}) smtp queued qid=(\w+) from=<(.*?)> "
                  r"to=(\S*) nrcpt=(\d+) size=(\d+)", queued)
    assert m, queued
    sid = m.group(1)
    assert m.group(3) == "sender@client.example"
    assert m.group(4) == "<hoge@example.test>,<fuga@example.test>"
    assert m.group(5) == "2"
    # the size counts the message as received, not our Received: header
    assert int(m.group(6)) == len(MESSAGES["simple"])
    # the spool file is named after the same qid
    assert qid in srv.queue_ids()

    connect = [e for e in srv.events("connect", sid)]
    assert len(connect) == 1
    assert f"address=127.0.0.1 port={port} " in connect[0][2] + " "
    assert "listener=smtp 127.0.0.1:" in connect[0][2]

    # smtplib's context manager sent QUIT
    assert wait_for(lambda: srv.events("disconnect", sid), 10), srv.log()
    disc = srv.events("disconnect", sid)[0][2]
    assert "reason=quit" in disc
    assert "messages=1" in disc
    assert re.search(r"commands=\S*ehlo=1", disc)
    assert re.search(r"commands=\S*rcpt=2", disc)
    assert re.search(r"commands=\S*data=1", disc)


def test_failed_command_is_logged(srv):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=NET_TIMEOUT) as s:
        s.ehlo("client.example")
        s.mail("a@client.example")
        code, _ = s.rcpt("someone@remote.example")
        assert code == 554
    # smtplib sends its verbs in lower case
    srv.wait_log(r'smtp failed-command command="rcpt TO:<someone@remote\.'
                 r'example>" result="554 5\.7\.1 Relay access denied"')


def raw_transaction(srv, chunks, delay=0.0):
    """Send the DATA part as the given chunks; returns the stored body."""
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        for chunk in chunks:
            c.send(chunk)
            if delay:
                time.sleep(delay)
        code, text = c.reply()
        assert code == 250, text
        return srv.read_queued(text.split()[-1])[1]


def test_empty_message(srv):
    assert raw_transaction(srv, [b".\r\n"]) == b""


def test_dot_stuffing_across_reads(srv):
    """The end-of-data and dot-stuffing state survives any split of the
    input into reads."""
    msg = MESSAGES["dots"]
    wire = re.sub(rb"(?m)^\.", b"..", msg) + b".\r\n"
    for size in (1, 2, 3, 5):
        chunks = [wire[k:k + size] for k in range(0, len(wire), size)]
        assert raw_transaction(srv, chunks, delay=0.001) == msg, size
