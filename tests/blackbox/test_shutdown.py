"""SIGTERM: open sessions are told 421 4.3.2, the half-received message
is thrown away (the client never had a 250), and the server exits 0."""
import time

from conftest import proc_state, wait_for


def test_sigterm_with_open_sessions(server):
    idle = server.connect()
    idle.ehlo()
    indata = server.connect()
    indata.ehlo()
    assert indata.cmd("MAIL FROM:<sender@client.example>")[0] == 250
    assert indata.cmd("RCPT TO:<hoge@example.test>")[0] == 250
    assert indata.cmd("DATA")[0] == 354
    # more than the spool writer's 32 KiB buffer, so that the file has
    # content before the end of the message
    indata.send(b"Subject: interrupted\r\n\r\n"
                + b"half a message, one line of many\r\n" * 1500)
    # the message is being received: it exists, in incoming/ only
    assert wait_for(lambda: len(server.incoming()) == 1, 5), server.incoming()
    before = set(server.queue_ids())

    t0 = time.monotonic()
    server.proc.send_signal(15)
    for c in (idle, indata):
        code, text = c.reply()
        assert text.startswith("421 4.3.2 "), text
        assert c.closed(10)
        c.close()
    rc = server.proc.wait(15)
    elapsed = time.monotonic() - t0
    assert rc == 0, server.log()
    assert elapsed < 5, elapsed
    assert server.incoming() == []
    assert set(server.queue_ids()) == before
    log = server.log()
    assert "master: stopping" in log
    assert "master: stopped" in log
    assert log.count("reason=shutdown") >= 2


def test_sigterm_idle_server(server):
    # The helpers started last close their copy of the listening socket
    # just after their fork; the port may answer before they have run.
    assert wait_for(lambda: len(server.workers()) == 2, 5), \
        server.children()
    kids = server.children()
    t0 = time.monotonic()
    server.proc.send_signal(15)
    assert server.proc.wait(15) == 0
    assert time.monotonic() - t0 < 5
    # its children are gone too (exited before the master, or zombies of
    # a reaper that has not caught up yet)
    for pid in kids:
        assert wait_for(lambda: proc_state(pid) in (None, "Z"), 5), pid


def test_queued_message_survives_restart(server):
    with server.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: kept\r\n\r\nstill here\r\n.\r\n")
        code, text = c.reply()
        assert code == 250
        qid = text.split()[-1]
    assert server.terminate() == 0
    server.start()
    assert qid in server.queue_ids()
    assert server.read_queued(qid)[1] == b"Subject: kept\r\n\r\nstill here\r\n"
