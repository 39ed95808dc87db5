"""kill -9 under load: every message whose 250 reached the client is in
queue/, complete; nothing incomplete is ever in queue/; and a restart on
the same spool clears incoming/ and says so (src/queue/README)."""
import smtplib
import threading
import time

from conftest import NET_TIMEOUT, queued_id, wait_for

THREADS = 20
PER_THREAD = 10


def message(t, i):
    # 8-40 KB, so that the kill often lands in the middle of a DATA
    filler = f"thread {t} message {i} ".encode() * (400 + 150 * ((t + i) % 12))
    lines = [filler[k:k + 76] for k in range(0, len(filler), 76)]
    return (f"Subject: crash {t}/{i}\r\nX-Seq: {t}-{i}\r\n\r\n".encode()
            + b"\r\n".join(lines) + b"\r\n.dot line\r\n")


def client(port, t, acked, lock, stop):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=NET_TIMEOUT) as s:
            s.ehlo("crash.client.example")
            for i in range(PER_THREAD):
                if stop.is_set():
                    return
                msg = message(t, i)
                assert s.mail(f"t{t}@client.example")[0] == 250
                assert s.rcpt(f"u{t}@example.test")[0] == 250
                code, text = s.data(msg)
                if code != 250:
                    return
                with lock:
                    acked.append((queued_id(text.decode()), t, i))
    except (smtplib.SMTPException, OSError, EOFError):
        return				# the server was killed under us


def test_kill9_under_load(server):
    acked, lock, stop = [], threading.Lock(), threading.Event()
    threads = [threading.Thread(target=client, daemon=True,
                                args=(server.smtp_port, t, acked, lock, stop))
               for t in range(THREADS)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    # about a second in, and with some messages acknowledged but far from
    # all of them
    wait_for(lambda: (time.monotonic() - t0 >= 1 and len(acked) >= 1)
             or len(acked) >= THREADS * PER_THREAD // 2, 30)
    workers = server.workers()
    assert workers, "no workers found"
    server.kill9()
    stop.set()
    for th in threads:
        th.join(NET_TIMEOUT + 5)
        assert not th.is_alive()
    assert acked, "no message was acknowledged before the kill"

    # 1. every acknowledged message is in queue/, exactly as sent
    queued = set(server.queue_ids())
    for qid, t, i in acked:
        assert qid in queued, f"acknowledged {qid} ({t}/{i}) is lost"
        env, body, _ = server.read_queued(qid)
        assert body == message(t, i), qid
        assert env["rcpt"] == [f"u{t}@example.test"]

    # 2. nothing in queue/ is partial: each file is one whole message
    # (unacknowledged ones may be there: a duplicate, never a loss)
    everything = {message(t, i) for t in range(THREADS)
                  for i in range(PER_THREAD)}
    for qid in queued:
        assert server.read_queued(qid)[1] in everything, qid

    # 3. restart on the same spool: incoming/ is emptied and logged
    seed = "0123456789ABC7FF"
    (server.spool / "incoming" / seed).write_bytes(b"postern-queue 1\n")
    leftovers = server.incoming()
    assert seed in leftovers
    server.start()
    assert server.incoming() == []
    for name in leftovers:
        server.wait_log(rf"queue: removed unfinished incoming/{name}$")
    assert set(server.queue_ids()) == queued

    # 4. and it works
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=NET_TIMEOUT) as s:
        s.ehlo("after.crash.example")
        s.mail("after@client.example")
        s.rcpt("hoge@example.test")
        code, text = s.data(b"Subject: after\r\n\r\nalive\r\n")
        assert code == 250
    print(f"{len(acked)} acknowledged, {len(queued)} in queue/, "
          f"{len(leftovers) - 1} unfinished in incoming/ after the kill")


def test_restart_with_clean_incoming_logs_nothing(server):
    assert server.terminate() == 0
    server.start()
    assert "removed unfinished" not in server.log()
