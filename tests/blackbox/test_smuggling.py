"""SMTP smuggling: an end of data that is not exactly CRLF "." CRLF must
not end the message, and must not let a second message in either.
postern answers 521 5.5.2 and closes; nothing reaches the spool."""
import time

import pytest

ENDINGS = {
    "lf-dot-lf": b"\n.\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-crcrlf": b"\r\n.\r\r\n",
}

SMUGGLED = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.test>\r\n"
            b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\n")


def open_data(c):
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354


def check_nothing_stored(srv):
    assert srv.queue_ids() == []
    assert srv.incoming() == []


@pytest.mark.parametrize("name", sorted(ENDINGS))
@pytest.mark.parametrize("split", [False, True], ids=["one-write", "bytewise"])
def test_smuggling_rejected(postern, name, split):
    srv = postern()
    data = (b"Subject: cover\r\n\r\ninnocent body" + ENDINGS[name]
            + SMUGGLED + b"QUIT\r\n")
    with srv.connect() as c:
        open_data(c)
        if split:
            # the dangerous octets arrive in separate reads
            head, tail = data.split(ENDINGS[name], 1)
            c.send(head)
            for b in ENDINGS[name]:
                c.send(bytes([b]))
                time.sleep(0.01)
            try:
                c.send(tail)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            c.send(data)
        code, text = c.reply()
        assert text.startswith("521 5.5.2 "), text
        # and nothing after it: no 250 for a smuggled transaction
        assert c.closed()
    check_nothing_stored(srv)
    srv.wait_log(r"smtp disconnect reason=bare-lf")
    assert " smtp queued " not in srv.log()


def test_bare_lf_in_body(server):
    with server.connect() as c:
        open_data(c)
        c.send(b"Subject: x\r\n\r\nline one\nline two\r\n.\r\n")
        assert c.reply()[1].startswith("521 5.5.2")
        assert c.closed()
    check_nothing_stored(server)


def test_real_end_after_lookalikes(server):
    """Lines that start with a dot but are not the end ("..", "...",
    ". .") are message text: the first dot is removed (RFC 5321 4.5.2),
    the rest kept, and the real end still works."""
    msg = b"Subject: ok\r\n\r\n..\r\n...\r\n. .\r\nend\r\n"
    with server.connect() as c:
        open_data(c)
        c.send(msg + b".\r\n")
        code, text = c.reply()
        assert code == 250, text
        qid = text.split()[-1]
    assert server.read_queued(qid)[1] == \
        b"Subject: ok\r\n\r\n.\r\n..\r\n .\r\nend\r\n"
