"""300 sessions open at once: all are greeted, all can send a message,
and every message is queued once."""
import resource

import pytest

from conftest import SMTPClient

N = 300


@pytest.fixture
def enough_fds():
    """Room for N client sockets here and N sessions in the server (which
    inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * N + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_300_concurrent_sessions(enough_fds, postern):
    # All from 127.0.0.1: lift the per-address limit (default 50).
    srv = postern(extra=["max-connections-per-ip 0"])
    clients = []
    try:
        for _ in range(N):
            clients.append(SMTPClient(srv.smtp_port))
        assert all(c.greeting[0] == 220 for c in clients)
        # every session is open at the same time from here on
        for c in clients:
            c.send("EHLO client.example\r\n")
        for c in clients:
            code, text = c.reply()
            assert code == 250 and "PIPELINING" in text
        for k, c in enumerate(clients):
            c.send(f"MAIL FROM:<c{k}@client.example>\r\n"
                   f"RCPT TO:<u{k}@example.test>\r\nDATA\r\n")
        for c in clients:
            assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        for k, c in enumerate(clients):
            c.send(f"Subject: {k}\r\n\r\nmessage from client {k}\r\n.\r\n")
        qids = {}
        for k, c in enumerate(clients):
            code, text = c.reply()
            assert code == 250, text
            qids[k] = text.split()[-1]
        for c in clients:
            c.send("QUIT\r\n")
        for c in clients:
            assert c.reply()[0] == 221
    finally:
        for c in clients:
            c.close()

    assert len(set(qids.values())) == N
    assert len(srv.queue_ids()) == N
    for k, qid in qids.items():
        env, body, _ = srv.read_queued(qid)
        assert body == f"Subject: {k}\r\n\r\nmessage from client {k}\r\n" \
            .encode()
        assert env["rcpt"] == [f"u{k}@example.test"]
        assert env["from"] == f"c{k}@client.example"
    # the sessions were spread over the workers and all ended cleanly
    disconnects = srv.events("disconnect")
    assert sum("reason=quit messages=1" in e[2] for e in disconnects) == N


def test_max_sessions(postern):
    srv = postern(extra=["max-sessions 3"], workers=1)
    # the start-up probe's session must be over before we count
    srv.wait_log(r"smtp disconnect reason=quit")
    clients = [SMTPClient(srv.smtp_port) for _ in range(3)]
    try:
        with SMTPClient(srv.smtp_port) as extra:
            assert extra.greeting[1].startswith("421 4.3.2 "), extra.greeting
            assert extra.closed()
        for c in clients:
            c.ehlo()
    finally:
        for c in clients:
            c.close()
