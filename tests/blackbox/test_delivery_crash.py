"""kill -9 of the whole server while the queue manager delivers: after a
restart every message is in every mailbox exactly once (src/queue/README:
"begin" before the Maildir link, "done" after it)."""
import re
import smtplib
import time

from conftest import wait_for
from test_delivery import mail_server

N = 200


def count_tokens(srv, user):
    seen = {}
    d = srv.mail / user / "new"
    for f in (d.iterdir() if d.exists() else []):
        m = re.search(rb"X-Token: (\d+)", f.read_bytes())
        assert m, f
        seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
    return seen


def test_kill9_during_delivery_exactly_once(postern):
    # Queued with the queue manager off, so that the kill finds the
    # deliveries under way however fast they are: at the start all N
    # messages are due at once, and the kill comes after the first few.
    srv = mail_server(postern, start=False)
    conf = srv.conf.read_text()
    srv.conf.write_text(conf.replace("queue-manager on", "queue-manager off"))
    srv.start()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        for i in range(N):
            msg = (f"Subject: crash {i}\r\nX-Token: {i}\r\n\r\n"
                   f"body {i}\r\n").encode()
            assert not s.sendmail("x@example.org",
                                  ["alice@example.test", "bob@example.test"],
                                  msg)
    assert srv.terminate() == 0
    srv.conf.write_text(conf)
    srv.start()
    assert wait_for(lambda: srv.log().count("status=sent") > 20, 10,
                    interval=0.002), srv.log()[-3000:]
    srv.kill9()
    done_before = srv.log().count("status=sent")
    assert 0 < done_before < 2 * N, \
        f"the kill came too early or too late: {done_before} of {2 * N}"
    srv.start()
    ok = wait_for(lambda: srv.queue_ids() == [] and
                  sum(count_tokens(srv, "bob").values()) >= N and
                  sum(count_tokens(srv, "alice").values()) >= N, 60,
                  interval=0.2)
    assert ok, srv.log()[-3000:]
    time.sleep(0.5)
    for user in ("alice", "bob"):
        seen = count_tokens(srv, user)
        assert sorted(seen) == list(range(N)), user          # none lost
        dup = {k: v for k, v in seen.items() if v != 1}
        assert not dup, f"{user}: delivered more than once: {dup}"


def _own(path):
    """Files seeded as root must belong to the queue manager's user."""
    import os
    import pwd
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postern")
        os.chown(path, pw.pw_uid, pw.pw_gid)


def test_seeded_spool_recovers_interrupted_delivery(postern):
    """A crash between the Maildir link and the "done" record: the next
    queue manager finds the file by its name and does not deliver again;
    the recipient never started is delivered; orphans are cleaned."""
    import os
    srv = mail_server(postern, start=False)
    qid, orphan = "0000000000001001", "0000000000002001"
    name = "1700000000.M1P1Q1.seeded"
    for d in (srv.spool, srv.spool / "queue", srv.spool / "status",
              srv.mail, srv.mail / "bob", srv.mail / "bob" / "new",
              srv.mail / "bob" / "tmp", srv.mail / "bob" / "cur"):
        d.mkdir(mode=0o700, exist_ok=True)
        _own(d)
    os.chmod(srv.spool, 0o755)
    content = b"Subject: seeded\r\n\r\nseeded body\r\n"
    q = srv.spool / "queue" / qid
    q.write_bytes(
        f"postern-queue 1\nqid {qid}\narrival {int(time.time())}\n"
        f"listener smtp\nfrom x@example.org\nrcpt bob@example.test\n"
        f"rcpt alice@example.test\n\n".encode() + content)
    st = srv.spool / "status" / qid
    st.write_text(f"begin 0 user:bob {name}\n")
    o = srv.spool / "status" / orphan
    o.write_text("retry 1 2\n")
    box = srv.mail / "bob" / "new" / name
    box.write_bytes(b"Return-Path: <x@example.org>\r\n"
                    b"Delivered-To: bob@example.test\r\n" + content)
    for p in (q, st, o, box):
        _own(p)
    srv.start()
    srv.wait_log(qid + r" removed$")
    assert len(list((srv.mail / "alice" / "new").iterdir())) == 1
    assert list((srv.mail / "bob" / "new").iterdir()) == [box]
    assert "delivered to maildir before a restart" in srv.log()
    assert not st.exists()
    # The orphan's owner may be another queue manager, which cleans it
    # at its own start-up scan.
    srv.wait_log(orphan + r" queue: removed a leftover status file")
    assert not o.exists()


def test_queue_file_a_crash_cut_short_is_set_aside(postern):
    """A committed queue file is linked into queue/ before its one fsync
    (src/queue/README), so a power cut in between can bring it back
    short, or with a block of zeros or of an older file in it.  Its seal
    ("content SIZE CRC ENVCRC") then does not match: the queue manager moves it
    to corrupt/ and says why, and delivers nothing of it.  The whole
    message queued with them is delivered."""
    import os
    import zlib
    srv = mail_server(postern, start=False)
    conf = srv.conf.read_text()
    srv.conf.write_text(conf.replace("queue-manager on", "queue-manager off"))
    srv.start()
    qids = []
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        for i in range(6):
            body = "".join(f"message {i} line {n:04d}\r\n" for n in range(800))
            s.mail("x@example.org")
            s.rcpt("bob@example.test")
            code, reply = s.data(f"Subject: seal {i}\r\nX-Token: {i}\r\n\r\n"
                                 f"{body}".encode())
            assert code == 250, reply
            qids.append(reply.decode().split()[-1])
    assert srv.terminate() == 0
    whole, short, zeros, stale, unsealed, renamed = qids
    q = srv.spool / "queue"
    sealed = {}
    for qid in qids:
        env, content = (q / qid).read_bytes().split(b"\n\n", 1)
        assert env.startswith(b"postern-queue 3\n"), env
        m = re.search(rb"^content (\d{20}) ([0-9a-f]{8}) ([0-9a-f]{8})$",
                      env, re.M)
        assert m, env
        assert int(m.group(1)) == len(content) > 16384
        assert int(m.group(2), 16) == zlib.crc32(content)
        assert int(m.group(3), 16) == zlib.crc32(env[:m.start()])
        sealed[qid] = (len(env) + 2, len(content))
    os.truncate(q / short, 8192)
    with open(q / zeros, "r+b") as f:
        f.seek(8192)
        f.write(b"\0" * 4096)
    with open(q / whole, "rb") as f:
        f.seek(8192)
        older = f.read(4096)
    with open(q / stale, "r+b") as f:
        f.seek(8192)
        assert f.read(4096) != older
        f.seek(8192)
        f.write(older)
    # the envelope's own block stale: the seal record gone (a record
    # nobody reads in its place), so nothing says the content is whole
    data = (q / unsealed).read_bytes()
    m = re.search(rb"^content \d{20} [0-9a-f]{8} [0-9a-f]{8}$", data, re.M)
    (q / unsealed).write_bytes(data[:m.start()] + b"x-stale" +
                               data[m.start() + 7:])
    # another message's whole file under this name
    os.rename(q / whole, q / renamed)
    (q / whole).write_bytes((q / renamed).read_bytes())
    _own(q / whole)

    srv.conf.write_text(conf)
    srv.start()
    why = {}
    for qid in (short, zeros, stale, unsealed, renamed):
        m = srv.wait_log(rf"{qid} queue: corrupt message \((.*)\); moved to "
                         rf"\S+/corrupt/{qid}$")
        why[qid] = m.group(1)
        assert (srv.spool / "corrupt" / qid).exists()
    assert why[unsealed].startswith("envelope without its seal"), \
        why[unsealed]
    assert why[renamed] == f"envelope of {whole}", why[renamed]
    envlen, size = sealed[short]
    assert why[short].startswith(f"content of {8192 - envlen} octets, sealed "
                                 f"with {size} (a crash"), why[short]
    for qid in (zeros, stale):
        assert re.match(rf"content of {sealed[qid][1]} octets with CRC-32 "
                        rf"[0-9a-f]{{8}}, sealed with {sealed[qid][1]} and "
                        r"[0-9a-f]{8}", why[qid]), why[qid]
    srv.wait_log(whole + r" removed$")
    assert count_tokens(srv, "bob") == {0: 1}
    assert srv.queue_ids() == []
    for qid in (short, zeros, stale, unsealed, renamed):
        assert not re.search(rf"{qid} .*status=sent", srv.log())


def test_queue_file_a_stale_envelope_block_is_set_aside(postern):
    """An envelope longer than a block can get a block of an older file
    too.  Here the second 4 KiB of one message's envelope (500
    recipients) come from another's: whole records, every one another
    message's recipient.  The seal covers the envelope, so the file goes
    to corrupt/ and none of it is delivered; the other message is
    untouched."""
    srv = mail_server(postern, start=False)
    conf = srv.conf.read_text()
    srv.conf.write_text(conf.replace("queue-manager on", "queue-manager off"))
    srv.start()
    qids = []
    for dom in ("one.example", "two.example"):
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10,
                          source_address=("127.0.0.2", 0)) as s:
            s.ehlo("client.example")
            s.mail("alice@example.test")
            for i in range(500):
                code, reply = s.rcpt(f"r{i:03d}@{dom}")
                assert code == 250, reply
            code, reply = s.data(b"Subject: many\r\n\r\nbody\r\n")
            assert code == 250, reply
            qids.append(reply.decode().split()[-1])
    assert srv.terminate() == 0
    mine, other = qids
    q = srv.spool / "queue"
    with open(q / other, "rb") as f:
        f.seek(4096)
        block = f.read(4096)
    assert b"\nrcpt r" in block and b"two.example" in block
    with open(q / mine, "r+b") as f:
        env = f.read().split(b"\n\n", 1)[0]
        assert len(env) > 8192
        # the same records at the same offsets, the domain aside
        f.seek(4096)
        assert f.read(4096) == block.replace(b"two.example", b"one.example")
        f.seek(4096)
        f.write(block)

    srv.conf.write_text(conf)
    srv.start()
    m = srv.wait_log(rf"{mine} queue: corrupt message \((.*)\); moved to "
                     rf"\S+/corrupt/{mine}$")
    assert m.group(1).startswith("envelope with CRC-32 "), m.group(1)
    assert (srv.spool / "corrupt" / mine).exists()
    srv.wait_log(rf"{other} .*to=<r\d{{3}}@two\.example>.*status=deferred")
    assert not re.search(rf"{mine} .*status=", srv.log())
    assert "corrupt" not in "".join(
        line for line in srv.log().splitlines() if other in line)
