"""A large remote backlog under a low open-file limit (queue/qlimit.h):
messages in flight to a smarthost that takes connections but greets
none until the test lets it.  A message in flight holds one descriptor
of its queue file, however many domains it goes to, and the queue
manager puts no more messages in flight than its open files allow, so
nothing fails with EMFILE; every message is delivered once when the
smarthost answers.  No root needed: the smarthost is named by address
("relay via [127.0.0.1]:PORT"), on a port of our own."""
import re
import shutil
import signal
import smtplib
import subprocess

import pytest

from conftest import BIN, Server, _finish_all, fd_links, free_port, wait_for
from peers import FakeSMTP

# The server's open-file limit (soft and hard, so the queue manager
# cannot raise it): with queue-passes 2 and remote-connections 2 it
# leaves 156 messages in flight (qlimit.c), and 300 queued messages are
# more than the old one descriptor per message in flight could hold.
NOFILE = 256
N = 300
EMFILE_RX = re.compile(r"Too many open files|EMFILE")


@pytest.fixture
def gated():
    """A smarthost that greets nobody until open_gate(), and a postern
    under NOFILE open files that sends everything remote to it."""
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit is not installed (Debian: util-linux)")
    smarthost = FakeSMTP("127.0.0.1", free_port(), "gate")
    srv = Server(extra=[
        "queue-manager on", "queue-managers 1", "queue-passes 2",
        "remote-connections 2 2", "retry-min 1h", "retry-max 1h",
        "mynetworks 127.0.0.1/32",
        f"relay via [127.0.0.1]:{smarthost.port}",
    ], users=[])
    with open(srv.conf, "a") as f:
        f.write(f"mailboxes {srv.dir / 'mail'}\n")
    srv.wrap = ["prlimit", f"--nofile={NOFILE}:{NOFILE}", "--"]
    try:
        srv.start()
        srv.smarthost = smarthost
        yield srv
    finally:
        smarthost.open_gate()      # let the sessions end before the stop
        problems = _finish_all([srv])
        smarthost.close()
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


def queue_manager_pid(srv):
    """The child that holds the queue manager's pid-file lock."""
    pidfile = str(srv.spool / "qmgr.0.pid")
    for pid in srv.children():
        if any(link == pidfile for _, link in fd_links(pid)):
            return pid
    raise AssertionError("no queue manager among " + str(srv.children()))


def submit(srv, messages):
    """messages: (recipients, subject) pairs, sent 50 to a session."""
    for k in range(0, len(messages), 50):
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
            for rcpts, subject in messages[k:k + 50]:
                refused = s.sendmail(
                    "alice@example.test", rcpts,
                    f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")
                assert not refused, refused


def queue_cmd(srv, *args):
    return subprocess.run([BIN, "queue", "-c", str(srv.conf)] + list(args),
                          capture_output=True, text=True, timeout=30)


def backlog(srv):
    """Queue N messages and wait for the in-flight limit to hold some of
    them back; {subject: qid}."""
    submit(srv, [([f"rcpt{k}@far{k % 7}.example"], f"msg{k}")
                 for k in range(N)])
    srv.wait_log(r"queue: in-flight limit reached", 30)
    qids = {}
    for line in srv.log().splitlines():
        m = re.search(r"smtp queued qid=([0-9A-F]{16}) .* to=<rcpt(\d+)@",
                      line)
        if m:
            qids[f"msg{m.group(2)}"] = m.group(1)
    assert len(qids) == N, len(qids)
    return qids


def waiting(srv, qids):
    """Of qids, those not yet handed to the smarthost."""
    log = srv.log()
    return [q for q in qids.values() if f"{q} remote submit" not in log]


def subjects_taken(smarthost):
    out = []
    for _, rcpts, data in smarthost.transactions:
        m = re.search(rb"^Subject: (\S+)", data, re.M)
        assert m, data[:500]
        out.append((m.group(1).decode(), tuple(rcpts)))
    return out


def test_a_backlog_larger_than_the_open_files_waits_its_turn(gated):
    """N messages to a smarthost that does not answer yet: no more than
    the in-flight limit are in flight (one line says it is reached), and
    nothing fails for want of a descriptor; once it answers, every
    message goes out exactly once, the queue empties, and one line says
    the limit is cleared."""
    srv = gated
    submit(srv, [([f"rcpt{k}@far{k % 7}.example"], f"msg{k}")
                 for k in range(N)])
    reached = re.compile(r"queue: in-flight limit reached: \d+ messages")
    wait_for(lambda: reached.search(srv.log()) or
             EMFILE_RX.search(srv.log()), 30)
    assert not EMFILE_RX.search(srv.log()), srv.log()[-5000:]
    assert reached.search(srv.log()), srv.log()[-5000:]
    m = srv.wait_log(r"queue: manager running, .*messages in flight (\d+) "
                     r"\(open files (\d+)\)")
    limit, nofile = int(m.group(1)), int(m.group(2))
    assert nofile == NOFILE and 1 <= limit < N, m.group(0)
    # The limit holds: the queue manager has at most `limit` queue
    # files open, and nothing more goes in flight while it waits.
    qmgr = queue_manager_pid(srv)
    queue_dir = str(srv.spool / "queue") + "/"
    open_queue_files = [link for _, link in fd_links(qmgr)
                        if link.startswith(queue_dir)]
    assert len(open_queue_files) <= limit, len(open_queue_files)
    assert len(srv.queue_ids()) == N
    assert not EMFILE_RX.search(srv.log()), srv.log()[-5000:]

    srv.smarthost.open_gate()
    assert wait_for(lambda: not srv.queue_ids(), 60), \
        (len(srv.queue_ids()), srv.log()[-5000:])
    taken = subjects_taken(srv.smarthost)
    want = sorted((f"msg{k}", (f"rcpt{k}@far{k % 7}.example",))
                  for k in range(N))
    assert sorted(taken) == want, (len(taken), len(set(taken)))
    log = srv.log()
    assert len(re.findall(r"status=sent", log)) == N
    assert not EMFILE_RX.search(log), log[-5000:]
    assert len(re.findall(r"in-flight limit reached", log)) == 1, log
    srv.wait_log(r"queue: in-flight limit cleared", 10)
    assert len(re.findall(r"in-flight limit cleared",
                          srv.log())) == 1, srv.log()


def test_one_message_to_many_domains_holds_one_descriptor(gated):
    """One message to 200 domains is 200 groups in flight, and one
    descriptor of its queue file among them; each domain gets it once."""
    srv = gated
    rcpts = [f"user{k}@dom{k}.example" for k in range(200)]
    submit(srv, [(rcpts, "wide")])
    srv.wait_log(r"remote submit domain=dom199\.example", 30)
    (qid,) = srv.queue_ids()
    path = str(srv.spool / "queue" / qid)
    qmgr = queue_manager_pid(srv)
    holders = [fd for fd, link in fd_links(qmgr) if link == path]
    assert len(holders) == 1, (len(holders), holders[:5])

    srv.smarthost.open_gate()
    assert wait_for(lambda: not srv.queue_ids(), 60), srv.log()[-5000:]
    taken = subjects_taken(srv.smarthost)
    assert sorted(taken) == sorted(("wide", (r,)) for r in rcpts), \
        (len(taken), len(set(taken)))
    assert len(re.findall(r"status=sent", srv.log())) == 200
    assert not EMFILE_RX.search(srv.log()), srv.log()[-5000:]


def test_queue_commands_act_on_messages_held_back_by_the_limit(gated):
    """A message waiting for the in-flight limit holds no lock: hold and
    delete take it at once, and a flush does not send anything twice."""
    srv = gated
    qids = backlog(srv)
    held, deleted = waiting(srv, qids)[-2:]
    r = queue_cmd(srv, "hold", held)
    assert r.returncode == 0, r.stdout + r.stderr
    r = queue_cmd(srv, "delete", deleted)
    assert r.returncode == 0, r.stdout + r.stderr
    srv.wait_log(deleted + r" removed \(deleted by the administrator\)")
    r = queue_cmd(srv, "flush")
    assert r.returncode == 0, r.stdout + r.stderr
    srv.wait_log(r"queue: flush: \d+ messages due now")

    srv.smarthost.open_gate()
    assert wait_for(lambda: not srv.queue_ids(), 60), \
        (len(srv.queue_ids()), srv.log()[-5000:])
    assert (srv.spool / "hold" / held).exists()
    gone = {s for s, q in qids.items() if q in (held, deleted)}
    taken = subjects_taken(srv.smarthost)
    assert sorted(s for s, _ in taken) == sorted(set(qids) - gone)
    assert not EMFILE_RX.search(srv.log()), srv.log()[-5000:]


@pytest.mark.parametrize("how", ["stop", "reload"])
def test_a_stop_with_messages_held_back_loses_and_repeats_none(gated, how):
    """SIGTERM (then a new start) or SIGHUP (the old queue manager drains
    on SIGUSR1, a new one takes over) while the limit holds messages
    back: the flights under way end and are recorded, the messages that
    waited go out from the next queue manager, each exactly once."""
    srv = gated
    qids = backlog(srv)
    if how == "stop":
        srv.proc.send_signal(signal.SIGTERM)
    else:
        srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log(r"queue: stopping \(signal \d+\)")
    srv.smarthost.open_gate()
    if how == "stop":
        assert srv.proc.wait(30) == 0, srv.log()[-5000:]
        assert srv.queue_ids(), "everything went before the stop"
        srv.start()
    assert wait_for(lambda: not srv.queue_ids(), 60), \
        (len(srv.queue_ids()), srv.log()[-5000:])
    assert len(re.findall(r"queue: manager running", srv.log())) == 2
    taken = subjects_taken(srv.smarthost)
    assert sorted(s for s, _ in taken) == sorted(qids), \
        (len(taken), len({s for s, _ in taken}))
    assert not EMFILE_RX.search(srv.log()), srv.log()[-5000:]
