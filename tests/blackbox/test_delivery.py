"""Local delivery end to end: smtplib in, Maildir files out (issue 4).
The queue manager's log lines and the delivered bytes are both checked
(STYLE.md section 10).  Servers come from conftest's `postern` factory;
this file only adds the mailboxes directory and short retry settings."""
import os
import re
import smtplib
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, DOMAIN, wait_for

USERS = ["demo:!:::demo@example.test:", "alice:!:::alice@example.test,"
         "a.smith@example.test:", "bob:!:::bob@example.test:",
         "carol:!:::carol@example.test:"]
# Remote mail goes to a loopback port where nobody listens: it stays
# deferred (connection refused), and no test ever asks a real DNS server.
FAST = ["queue-manager on", "retry-min 1s", "retry-max 2s", "admin demo",
        "relay via 127.0.0.1:9"]
DEFERRED_FAR = r"delivery to=<far@remote\.example> .*status=deferred \([^)]*refused"


def mail_server(postern, extra=(), users=USERS, aliases=None, start=True):
    """A server whose Maildirs live in its own temp tree."""
    srv = postern(extra=list(FAST) + list(extra), users=users, start=False)
    srv.mail = srv.dir / "mail"
    lines = [f"mailboxes {srv.mail}"]
    if aliases is not None:
        srv.aliases = srv.dir / "aliases"
        srv.aliases.write_text(aliases)
        lines.append(f"aliases {srv.aliases}")
    with open(srv.conf, "a") as f:
        f.write("\n".join(lines) + "\n")
    return srv.start() if start else srv


def maildir_files(srv, user):
    d = srv.mail / user / "new"
    try:
        return sorted(d.iterdir())
    except FileNotFoundError:
        return []


def wait_files(srv, user, n, timeout=15):
    ok = wait_for(lambda: len(maildir_files(srv, user)) >= n, timeout)
    assert ok, (f"{user}: {len(maildir_files(srv, user))} files, want {n}"
                f"\n{srv.log()[-5000:]}")
    return maildir_files(srv, user)


def send(srv, sender, rcpts, msg, source=None):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10,
                      source_address=(source, 0) if source else None) as s:
        s.ehlo("client.example")
        refused = s.sendmail(sender, rcpts, msg)
        assert not refused, refused


def queue_cmd(srv, *args, argv0=None):
    cmd = [argv0 or BIN] + ([] if argv0 else ["queue"]) + \
        ["-c", str(srv.conf)] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


MSG = (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
       b"Subject: hello\r\n\r\nline one\r\n.leading dot\r\nlast line\r\n")


def test_maildir_bytes_and_modes(postern):
    srv = mail_server(postern)
    send(srv, "someone@example.org", ["bob@example.test"], MSG)
    (f,) = wait_files(srv, "bob", 1)
    data = f.read_bytes()
    head = (b"Return-Path: <someone@example.org>\r\n"
            b"Delivered-To: bob@example.test\r\n")
    assert data.startswith(head + b"Received: from client.example"), data
    assert data.endswith(b"\r\n" + MSG), data
    # the rest is the queued content exactly: our Received: then MSG
    rest = data[len(head):]
    assert rest.count(b"Received: ") == 1
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    for d in (srv.mail / "bob", srv.mail / "bob" / "tmp",
              srv.mail / "bob" / "new", srv.mail / "bob" / "cur"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert re.match(r"^\d+\.M\d+P\d+Q\d+\.", f.name), f.name
    assert list((srv.mail / "bob" / "tmp").iterdir()) == []
    m = srv.wait_log(r"([0-9A-F]{16}) delivery to=<bob@example\.test> "
                     r"relay=local delay=[0-9.]+s dsn=2\.0\.0 status=sent "
                     r"\(delivered to maildir\)")
    srv.wait_log(m.group(1) + r" removed$")
    assert wait_for(lambda: srv.queue_ids() == [], 5)
    assert os.listdir(srv.spool / "status") == []
    # a listed address reaches its user
    send(srv, "", ["a.smith@example.test"], MSG)
    (f,) = wait_files(srv, "alice", 1)
    assert f.read_bytes().startswith(
        b"Return-Path: <>\r\nDelivered-To: a.smith@example.test\r\n")


def test_large_messages_delivered_whole(postern):
    """Messages of 140 KB and 3 MB (an ordinary attachment): the queue
    manager reads the envelope, then more of the file for the header
    section, and delivers every byte."""
    srv = mail_server(postern)
    bodies = []
    for size in (140_000, 3_000_000):
        line = b"x" * 76 + b"\r\n"
        body = (b"From: Alice <alice@example.test>\r\nSubject: big\r\n\r\n"
                + line * (size // len(line)))
        bodies.append(body)
        send(srv, "someone@example.org", ["bob@example.test"], body)
    files = wait_files(srv, "bob", 2)
    got = sorted(f.read_bytes() for f in files)
    for data, body in zip(sorted(got, key=len), bodies):
        assert data.endswith(b"\r\n" + body), len(data)
    assert "killed by signal" not in srv.log()
    assert wait_for(lambda: srv.queue_ids() == [], 5)


def test_aliases_nested_include_and_reload(postern):
    srv = mail_server(postern, aliases="", start=False)
    inc = srv.dir / "team.list"
    inc.write_text("# the team\ncarol, Bob\n\nalice\n")
    os.chmod(inc, 0o644)
    aliases = (f"all: team, bob, ALICE\n"
               f"team: :include:{inc}\n"
               f"    , staff\n"
               f"staff: alice\n"
               f"alice: alice, bob\n"          # a user aliased to itself
               f"loop1: loop2\nloop2: loop1\n")
    srv.aliases.write_text(aliases)
    srv.start()
    send(srv, "x@example.org", ["All@Example.test"], MSG)
    for u in ("alice", "bob", "carol"):
        assert len(wait_files(srv, u, 1)) == 1
    time.sleep(0.5)
    for u in ("alice", "bob", "carol"):
        assert len(maildir_files(srv, u)) == 1, u   # duplicates removed
    srv.wait_log(r"delivery to=<carol@example\.test> "
                 r"orig_to=<All@Example\.test> relay=local")
    # unknown local names are refused at RCPT, loops bounce
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
        s.ehlo()
        s.mail("x@example.org")
        code, _ = s.rcpt("nobody@example.test")
        assert code == 550
        code, _ = s.rcpt("loop1@example.test")
        assert code == 250
    # the aliases file changes: workers and the queue manager follow
    # after `postern aliases` (newaliases), without a restart
    srv.aliases.write_text(aliases + "newname: carol\n")
    r = subprocess.run([BIN, "aliases", "-c", str(srv.conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert Path(str(srv.aliases) + ".idx").exists()
    time.sleep(1.1)
    send(srv, "x@example.org", ["newname@example.test"], MSG)
    assert len(wait_files(srv, "carol", 2)) == 2
    # errors name the file and line; the index is not rewritten
    srv.aliases.write_text("ok: carol\nbroken line\n")
    r = subprocess.run([BIN, "aliases", "-c", str(srv.conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"{srv.aliases}:2:" in r.stdout + r.stderr


def test_default_aliases_to_admin(postern):
    srv = mail_server(postern)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
        s.ehlo()
        s.mail("x@example.org")
        assert s.rcpt("<postmaster>")[0] == 250
        assert s.rcpt("root@example.test")[0] == 250
        assert s.rcpt("www-data@example.test")[0] == 250
        assert s.data(MSG)[0] == 250
    # three recipients, one mailbox: delivered once
    (f,) = wait_files(srv, "demo", 1)
    time.sleep(0.5)
    assert len(maildir_files(srv, "demo")) == 1


def test_tempfail_is_retried(postern):
    srv = mail_server(postern)
    send(srv, "x@example.org", ["bob@example.test"], MSG)
    wait_files(srv, "bob", 1)
    box = srv.mail / "bob"
    os.chmod(box, 0)
    try:
        send(srv, "x@example.org", ["bob@example.test"], MSG + b"second\r\n")
        srv.wait_log(r"delivery to=<bob@example\.test> relay=local "
                     r"delay=\S+ dsn=4\.2\.0 status=deferred \(maildir")
        assert len(srv.queue_ids()) == 1
        out = queue_cmd(srv, "list").stdout
        assert "Permission denied" in out, out
    finally:
        os.chmod(box, 0o700)
    files = wait_files(srv, "bob", 2)
    assert any(f.read_bytes().endswith(b"second\r\n") for f in files)
    assert wait_for(lambda: srv.queue_ids() == [], 10)


def dsn_parts(data):
    text = data.decode("utf-8", "replace")
    assert "Content-Type: multipart/report; report-type=delivery-status" \
        in text, text
    return text


def test_bounces_and_expiry(postern):
    srv = mail_server(postern, extra=["queue-lifetime 2s",
                                      "delay-warning 0"])
    null_msg = MSG.replace(b"hello", b"from null")
    # expired: remote recipients stay deferred until queue-lifetime
    send(srv, "alice@example.test", ["far@remote.example"], MSG,
         source="127.0.0.2")
    srv.wait_log(DEFERRED_FAR)
    (f,) = wait_files(srv, "alice", 1, timeout=20)
    text = dsn_parts(f.read_bytes())
    assert "Return-Path: <>" in text
    assert "From: Mail Delivery System <MAILER-DAEMON@mail.example.test>" \
        in text
    assert "Final-Recipient: rfc822; far@remote.example" in text
    assert "Action: failed" in text
    assert "Status: 4.4.7" in text
    assert "Content-Type: message/delivery-status" in text
    assert "Content-Type: text/rfc822-headers" in text
    assert "Subject: hello" in text            # the original headers
    assert "line one" not in text              # but not the body
    srv.wait_log(r"far@remote\.example.* status=bounced \(message expired")
    # a null sender is never bounced
    send(srv, "", ["far2@remote.example"], null_msg, source="127.0.0.2")
    srv.wait_log(r"bounce not sent: the sender is <>", timeout=20)
    time.sleep(0.5)
    assert len(maildir_files(srv, "alice")) == 1


def test_a_torn_status_record_drops_no_recipient(postern):
    """A status record cut short (a crash during its append, a full disk)
    is not a record: "complete 12" torn to "complete 1" must not mark
    recipient 1 done.  Every one of the 12 deferred recipients is in the
    expiry DSN; the torn tail is gone from the file."""
    srv = mail_server(postern, extra=["queue-lifetime 4s",
                                      "delay-warning 0"])
    far = [f"far{i:02d}@remote.example" for i in range(12)]
    send(srv, "alice@example.test", far, MSG, source="127.0.0.2")
    srv.wait_log(DEFERRED_FAR.replace("far@", "far11@"))
    (qid,) = srv.queue_ids()
    status = srv.spool / "status" / qid
    with open(status, "ab") as f:
        f.write(b"complete 1")          # no end of line
    (f,) = wait_files(srv, "alice", 1, timeout=30)
    text = dsn_parts(f.read_bytes())
    listed = sorted(re.findall(r"Final-Recipient: rfc822; (\S+)", text))
    assert listed == far, listed
    srv.wait_log(qid + r" removed$")


def test_recipients_past_the_envelope_limit_get_452(postern):
    """max-recipients may allow more recipients than a queue file's
    envelope holds (4 MiB): past that, RCPT answers 452 (the client
    sends the rest in another transaction), and what was taken is a
    message the queue manager can read, not one moved to corrupt/."""
    srv = mail_server(postern, extra=["max-recipients 30000"])
    far = f"{'a' * 63}.{'b' * 63}.{'c' * 41}.remote.example"
    rcpts = [f"r{i:05d}{'x' * 58}@{far}" for i in range(20000)]
    with srv.connect(source="127.0.0.2") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        codes = []
        for i in range(0, len(rcpts), 500):
            c.send("".join(f"RCPT TO:<{r}>\r\n"
                           for r in rcpts[i:i + 500]).encode())
            codes += [c.reply()[0] for _ in rcpts[i:i + 500]]
        taken = codes.count(250)
        assert 15000 < taken < 20000, taken
        assert codes == [250] * taken + [452] * (len(rcpts) - taken)
        assert c.cmd("DATA")[0] == 354
        code, text = c.cmd(MSG.decode().replace("\r\n.", "\r\n..")
                           + ".")
        assert code == 250, text
        qid = text.split()[-1]
    print(f"\nfigure: {taken} of {len(rcpts)} recipients taken")
    # handed to the SMTP client 100 to a transaction (REMOTE_RCPT_MAX)
    submit = re.compile(qid + rf" remote submit domain={re.escape(far)} "
                        r"nrcpt=(\d+)")
    assert wait_for(lambda: sum(int(n) for n in submit.findall(srv.log()))
                    == taken, 30), srv.log()[-3000:]
    groups = [int(n) for n in submit.findall(srv.log())]
    assert max(groups) == 100 and len(groups) == (taken + 99) // 100
    assert "corrupt" not in srv.log()


def test_a_report_too_long_to_list_everyone_is_still_sent(postern):
    """3000 recipients with long addresses expire: the DSN lists as many
    as fit and counts the rest.  A report that could not be queued left
    the failures open, and the message was sent again at every pass."""
    srv = mail_server(postern, extra=["max-recipients 3000",
                                      "queue-lifetime 3s",
                                      "delay-warning 0"])
    far = f"{'a' * 63}.{'b' * 63}.{'c' * 41}.remote.example"
    rcpts = [f"r{i:05d}{'x' * 58}@{far}" for i in range(3000)]
    with srv.connect(source="127.0.0.2") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        for i in range(0, len(rcpts), 500):
            c.send("".join(f"RCPT TO:<{r}>\r\n"
                           for r in rcpts[i:i + 500]).encode())
            assert [c.reply()[0] for _ in rcpts[i:i + 500]] == [250] * 500
        assert c.cmd("DATA")[0] == 354
        code, text = c.cmd("Subject: many\r\n\r\nhello\r\n.")
        assert code == 250, text
        qid = text.split()[-1]
    (f,) = wait_files(srv, "alice", 1, timeout=60)
    text = dsn_parts(f.read_bytes())
    listed = len(re.findall(r"Final-Recipient: rfc822; ", text))
    m = re.search(r"\.\.\. and (\d+) more recipients, not listed", text)
    print(f"\nfigure: {listed} listed, {m and m.group(1)} counted; "
          f"{len(f.read_bytes())} octets")
    assert m and listed + int(m.group(1)) == len(rcpts), (listed, m)
    srv.wait_log(qid + r" removed$", timeout=30)
    assert "cannot queue the bounce" not in srv.log()


def test_permanent_failure_bounces_at_once(postern):
    # an alias whose target is no user: 5.1.1 in a DSN, no retry
    srv = mail_server(postern, aliases="team: bob, ghost\n")
    send(srv, "carol@example.test", ["team@example.test"], MSG)
    (f,) = wait_files(srv, "carol", 1)
    text = dsn_parts(f.read_bytes())
    assert "Final-Recipient: rfc822; ghost@example.test" in text
    assert "Original-Recipient: rfc822; team@example.test" in text
    assert "Status: 5.1.1" in text and "Action: failed" in text
    assert len(wait_files(srv, "bob", 1)) == 1
    srv.wait_log(r"status=bounced \(unknown user\)")
    assert wait_for(lambda: srv.queue_ids() == [], 10)


def test_mail_loop_bounced(postern):
    srv = mail_server(postern)
    hops = b"".join(b"Received: from h%d by h%d; Mon, 1 Jan 2024 00:00:00 "
                    b"+0000\r\n" % (i, i) for i in range(50))
    send(srv, "alice@example.test", ["bob@example.test"], hops + MSG)
    (f,) = wait_files(srv, "alice", 1)
    text = dsn_parts(f.read_bytes())
    assert "Status: 5.4.6" in text
    assert "mail forwarding loop" in text
    assert maildir_files(srv, "bob") == []


def test_queue_tools_and_mailq(postern):
    srv = mail_server(postern, extra=["retry-min 1h", "retry-max 1h"])
    send(srv, "alice@example.test", ["far@remote.example"], MSG,
         source="127.0.0.2")
    srv.wait_log(DEFERRED_FAR)
    (qid,) = srv.queue_ids()
    r = queue_cmd(srv, "list")
    assert r.returncode == 0, r.stderr
    assert re.search(qid + r"\s+\d+ .* alice@example\.test", r.stdout), \
        r.stdout
    assert "refused" in r.stdout.lower(), r.stdout
    assert "far@remote.example" in r.stdout
    # mailq is the same list
    link = srv.dir / "mailq"
    link.symlink_to(BIN)
    r2 = queue_cmd(srv, argv0=str(link))
    assert r2.returncode == 0 and qid in r2.stdout, r2.stdout + r2.stderr
    # hold / release
    assert queue_cmd(srv, "hold", qid).returncode == 0
    assert srv.queue_ids() == []
    assert (srv.spool / "hold" / qid).exists()
    assert re.search(qid + "!", queue_cmd(srv, "list").stdout)
    assert queue_cmd(srv, "hold", qid).returncode != 0
    assert queue_cmd(srv, "release", qid).returncode == 0
    assert srv.queue_ids() == [qid]
    # released: tried again at once
    assert wait_for(lambda: len(re.findall(DEFERRED_FAR, srv.log())) >= 2,
                    10), srv.log()
    # flush asks the running queue manager for a retry now
    r = queue_cmd(srv, "flush")
    assert r.returncode == 0, r.stderr
    srv.wait_log(r"queue: flush: 1 messages due now")
    assert wait_for(lambda: len(re.findall(DEFERRED_FAR, srv.log())) >= 3,
                    10), srv.log()
    # delete: the queue manager removes it
    assert queue_cmd(srv, "delete", qid).returncode == 0
    srv.wait_log(qid + r" removed \(deleted by the administrator\)")
    assert wait_for(lambda: not (srv.spool / "status" / qid).exists(), 5)
    assert "Mail queue is empty" in queue_cmd(srv, "list").stdout
    assert queue_cmd(srv, "delete", qid).returncode != 0
    assert queue_cmd(srv, "hold", "nonsense").returncode != 0


def test_one_queue_manager_overlaps_its_passes(postern):
    """One queue manager runs several passes at once, each on a delivery
    thread: with 24 messages waiting at start-up, passes begin before
    earlier ones have ended.  Each message still reaches each of its
    two mailboxes exactly once, with its own bytes, and the queue ends
    empty."""
    srv = mail_server(postern, extra=["queue-managers 1"], start=False)
    conf = srv.conf.read_text()
    srv.conf.write_text(conf.replace("queue-manager on", "queue-manager off"))
    srv.start()
    n = 24
    for k in range(n):
        send(srv, "someone@example.org", ["alice@example.test",
                                           "bob@example.test"],
             MSG.replace(b"hello", b"hello %d" % k))
    assert len(srv.queue_ids()) == n
    assert srv.terminate() == 0
    srv.conf.write_text(conf)
    srv.start()
    for user in ("alice", "bob"):
        files = wait_files(srv, user, n, timeout=30)
        subjects = sorted(f.read_bytes().split(b"Subject: hello ")[1]
                          .split(b"\r\n")[0] for f in files)
        assert subjects == sorted(b"%d" % k for k in range(n)), subjects
        assert all(f"Delivered-To: {user}@example.test\r\n".encode()
                   in f.read_bytes() for f in files)
    assert wait_for(lambda: srv.queue_ids() == [], 10), srv.queue_ids()
    # A pass logs its "removed" just after the unlink.
    assert wait_for(lambda: len(re.findall(r"[0-9A-F]{16} removed\b",
                                           srv.log())) >= n, 10), srv.log()
    # From the log, in order: how many passes were between their
    # "queue active" and their removal at once.
    under_way, most, removed = set(), 0, 0
    for qid, what in re.findall(r"([0-9A-F]{16}) (queue active|removed)\b",
                                srv.log()):
        if what == "queue active":
            under_way.add(qid)
            most = max(most, len(under_way))
        else:
            under_way.discard(qid)
            removed += 1
    assert removed == n, srv.log()[-3000:]
    assert most > 1, srv.log()[-3000:]
    sent = re.findall(r"([0-9A-F]{16}) delivery to=<(alice|bob)@example\.test>"
                      r" relay=local .*status=sent", srv.log())
    assert len(sent) == 2 * n and len(set(sent)) == 2 * n, sent


def qid_owner(qid, n):
    """src/queue/qid.c qid_owner: FNV-1a (32 bits) of the qid, mod n."""
    h = 2166136261
    for c in qid.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h % n


def send_numbered_to_bob(srv, n):
    """n messages to bob, "hello 0" .. "hello n-1": each delivered once,
    and the queue empty after."""
    for k in range(n):
        send(srv, "someone@example.org", ["bob@example.test"],
             MSG.replace(b"hello", b"hello %d" % k))
    files = wait_files(srv, "bob", n, timeout=30)
    subjects = sorted(f.read_bytes().split(b"Subject: hello ")[1]
                      .split(b"\r\n")[0] for f in files)
    assert subjects == sorted(b"%d" % k for k in range(n)), subjects
    assert wait_for(lambda: srv.queue_ids() == [], 10), srv.queue_ids()


def test_queue_passes_one_delivers_all(postern):
    """queue-passes 1: the queue manager says so, and with one pass at a
    time still delivers every message, each once."""
    srv = mail_server(postern, extra=["queue-managers 1", "queue-passes 1"])
    assert wait_for(lambda: "queue: manager running" in srv.log(), 10)
    assert re.search(r"queue: manager running, mailboxes \S+, "
                     r"delivery passes 1, ", srv.log(), re.M), srv.log()
    n = 12
    send_numbered_to_bob(srv, n)


def test_queue_managers_share_the_queue(postern):
    """With queue-managers 3, three processes deliver: each message by
    the one that owns its qid (the pid in qmgr.I.pid), and each exactly
    once; a flush reaches all three."""
    srv = mail_server(postern, extra=["queue-managers 3"])
    assert wait_for(lambda: len(re.findall(r"queue: manager running",
                                           srv.log())) == 3, 10), srv.log()
    pids = {}
    for i in range(3):
        f = srv.spool / f"qmgr.{i}.pid"
        assert wait_for(lambda: f.read_text().strip().isdigit(), 5), i
        pids[i] = int(f.read_text())
    assert len(set(pids.values())) == 3, pids
    n = 30
    send_numbered_to_bob(srv, n)
    rx = re.compile(r"\[(\d+)\]: ([0-9A-F]{16}) delivery "
                    r"to=<bob@example\.test> relay=local .*status=sent")
    deliveries = rx.findall(srv.log())
    qids = [q for _, q in deliveries]
    assert len(qids) == n and len(set(qids)) == n, deliveries
    for pid, qid in deliveries:
        assert int(pid) == pids[qid_owner(qid, 3)], (pid, qid, pids)
    assert len({pid for pid, _ in deliveries}) > 1, deliveries
    r = queue_cmd(srv, "flush")
    assert r.returncode == 0, r.stderr
    assert sorted(int(p) for p in re.findall(r"pid (\d+)", r.stdout)) == \
        sorted(pids.values()), r.stdout
    assert wait_for(lambda: len(re.findall(r"queue: flush: 0 messages due "
                                           r"now", srv.log())) == 3, 10)
