"""PIPELINING (RFC 2920): commands sent in one write are answered in
order, one reply each, and the messages in between are all queued."""
import re
import socket

MSG1 = b"Subject: first\r\n\r\nfirst body\r\n.dot-stuffed\r\n"
MSG2 = b"Subject: second\r\n\r\nsecond body\r\n"
RCPTS1 = ["a@example.test", "b@example.test", "c@example.test"]


def stuff(msg):
    return re.sub(rb"(?m)^\.", b"..", msg)


def transaction(frm, rcpts):
    out = f"MAIL FROM:<{frm}>\r\n"
    out += "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts)
    return (out + "DATA\r\n").encode()


def expect(c, want):
    """Read one reply per entry of want (a code, or (code, regex))."""
    got = []
    for w in want:
        code, text = c.reply()
        got.append(text)
        wcode, rx = w if isinstance(w, tuple) else (w, None)
        assert code == wcode, f"reply {len(got)}: {text!r}; so far {got}"
        if rx:
            assert re.search(rx, text), text
    return got


QUEUED = (250, r"^250 2\.0\.0 Ok: queued as [0-9A-F]{16}$")


def check_queued(srv, texts, msgs_rcpts):
    qids = [t.split()[-1] for t in texts]
    assert len(set(qids)) == len(qids)
    for qid, (msg, rcpts) in zip(qids, msgs_rcpts):
        env, body, _ = srv.read_queued(qid)
        assert body == msg
        assert env["rcpt"] == rcpts
        assert env["from"] == "sender@client.example"


def test_everything_in_one_write(server):
    """The most impatient client: both transactions, both messages and
    QUIT in a single write."""
    data = (b"EHLO client.example\r\n"
            + transaction("sender@client.example", RCPTS1)
            + stuff(MSG1) + b".\r\n"
            + transaction("sender@client.example", ["d@example.test"])
            + stuff(MSG2) + b".\r\n"
            + b"QUIT\r\n")
    with server.connect() as c:
        c.send(data)
        got = expect(c, [(250, "PIPELINING"), (250, "2.1.0"), 250, 250, 250,
                         354, QUEUED, 250, 250, 354, QUEUED, (221, "2.0.0")])
        assert c.closed()
    check_queued(server, [got[6], got[10]],
                 [(MSG1, RCPTS1), (MSG2, ["d@example.test"])])


def test_rfc2920_groups(server):
    """A conforming client: one write per group, waiting where RFC 2920
    says it must (after EHLO, after DATA's 354)."""
    with server.connect() as c:
        c.send(b"EHLO client.example\r\n"
               + transaction("sender@client.example", RCPTS1))
        expect(c, [250, 250, 250, 250, 250, 354])
        # end of the first message, then the whole second transaction
        c.send(stuff(MSG1) + b".\r\n"
               + transaction("sender@client.example", ["d@example.test"]))
        got1 = expect(c, [QUEUED, 250, 250, 354])
        c.send(stuff(MSG2) + b".\r\nQUIT\r\n")
        got2 = expect(c, [QUEUED, 221])
        assert c.closed()
    check_queued(server, [got1[0], got2[0]],
                 [(MSG1, RCPTS1), (MSG2, ["d@example.test"])])


def test_failures_inside_a_group(server):
    """A refused recipient in the middle of a group does not disturb the
    order of the replies, and DATA still goes ahead for the others."""
    rcpts = ["a@example.test", "x@remote.example", "b@example.test"]
    with server.connect() as c:
        c.send(b"EHLO client.example\r\n"
               + transaction("sender@client.example", rcpts)
               + stuff(MSG1) + b".\r\n" + b"NOOP\r\nRSET\r\nQUIT\r\n")
        got = expect(c, [250, 250, 250, (554, "5.7.1"), 250, 354, QUEUED,
                         250, 250, 221])
    check_queued(server, [got[6]],
                 [(MSG1, ["a@example.test", "b@example.test"])])


def test_many_messages_in_one_write(server):
    n = 50
    data = b"EHLO client.example\r\n"
    msgs = []
    for i in range(n):
        msg = f"Subject: {i}\r\n\r\nmessage number {i}\r\n".encode()
        msgs.append(msg)
        data += transaction("sender@client.example", [f"u{i}@example.test"])
        data += msg + b".\r\n"
    data += b"QUIT\r\n"
    with server.connect() as c:
        c.send(data)
        got = expect(c, [250] + [250, 250, 354, QUEUED] * n + [221])
    check_queued(server, got[4::4][:n],
                 [(m, [f"u{i}@example.test"]) for i, m in enumerate(msgs)])


def test_half_close_after_group(server):
    """A client that sends its whole group and then shuts down its side
    (no QUIT) still gets every reply, the 250 for its message included:
    without it, it would send the message again."""
    with server.connect() as c:
        c.send(b"EHLO client.example\r\n"
               + transaction("sender@client.example", ["a@example.test"])
               + stuff(MSG1) + b".\r\nNOOP\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        got = expect(c, [250, 250, 250, 354, QUEUED, (250, "2.0.0 Ok")])
        assert c.closed()
    check_queued(server, [got[4]], [(MSG1, ["a@example.test"])])
    server.wait_log(r"smtp disconnect reason=eof messages=1 ")


def test_half_close_after_a_pipelined_auth():
    """AUTH with its initial response and a whole transaction after it
    in one write, then the client shuts its side while the password is
    checked: the check finishes and every command after it is answered,
    the message queued."""
    from conftest import _finish_all
    from test_auth import PASSWORD, make_server, plain_ir
    srv = make_server(sub_opts="cleartext-auth loopback")
    try:
        with srv.connect(srv.sub_port) as c:
            c.send(b"EHLO client.example\r\n"
                   + f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}\r\n".encode()
                   + transaction("hoge@example.test", ["hoge@example.test"])
                   + stuff(MSG1) + b".\r\nQUIT\r\n")
            c.sock.shutdown(socket.SHUT_WR)
            got = expect(c, [250, 235, 250, 250, 354, QUEUED, 221])
            assert c.closed()
        env, body, _ = srv.read_queued(got[5].split()[-1])
        assert body == MSG1
        assert env["from"] == "hoge@example.test"
        assert env["rcpt"] == ["hoge@example.test"]
    finally:
        problems = _finish_all([srv])
        assert not problems, problems
