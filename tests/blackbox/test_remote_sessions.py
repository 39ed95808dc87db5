"""How the queue manager's remote sessions begin and end, against a
smarthost of the test's own ("relay via [127.0.0.1]:PORT", no root
needed): a stop waits only for the transactions under way and starts
none, so a message is never cut off after the server took it and sent
again; a server that takes one session per client gets a message with
many recipients (several transactions) over that one session instead
of having it deferred."""
import re
import signal
import smtplib
import time

import pytest

from conftest import Server, _finish_all, free_port, wait_for
from peers import FakeSMTP


def relay_server(smarthost, *extra):
    srv = Server(extra=[
        "queue-manager on", "queue-managers 1", "retry-min 1s",
        "retry-max 2s", "mynetworks 127.0.0.1/32",
        f"relay via [127.0.0.1]:{smarthost.port}", *extra], users=[])
    with open(srv.conf, "a") as f:
        f.write(f"mailboxes {srv.dir / 'mail'}\n")
    return srv


@pytest.fixture
def finish():
    """Stops what the test started, servers first."""
    servers, fakes = [], []
    yield servers, fakes
    problems = _finish_all(servers)
    for f in fakes:
        f.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def subjects(smarthost):
    return [re.search(rb"Subject: (\S+)", t[2]).group(1).decode()
            for t in smarthost.transactions]


def test_a_stop_starts_no_transaction_and_repeats_none(finish):
    """Two sessions, each message's "." answered after 2 s: at SIGTERM
    the two transactions under way end and are recorded, no MAIL is
    sent after it, the stop takes about those 2 s (not the 10 s bound
    of the drain), and after a new start every message has gone
    exactly once."""
    servers, fakes = finish
    smarthost = FakeSMTP("127.0.0.1", free_port(), "plain", dot_delay=2)
    fakes.append(smarthost)
    srv = relay_server(smarthost, "queue-passes 2",
                       "remote-connections 2 2")
    servers.append(srv)
    srv.start()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
        for k in range(12):
            s.sendmail("alice@example.test", [f"r{k}@far.example"],
                       f"Subject: m{k}\r\n\r\nbody\r\n")
    assert wait_for(lambda: len(smarthost.transactions) >= 2, 20), \
        srv.log()[-3000:]
    mails = smarthost.mails
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0, srv.log()[-3000:]
    took = time.monotonic() - t0
    print(f"\nfigure: the stop took {took:.1f} s; {mails} MAIL before it, "
          f"{smarthost.mails - mails} after")
    assert smarthost.mails == mails, srv.log()[-3000:]
    assert took < 6, srv.log()[-3000:]
    srv.start()
    assert wait_for(lambda: not srv.queue_ids(), 60), srv.log()[-3000:]
    got = subjects(smarthost)
    assert sorted(got) == sorted(f"m{k}" for k in range(12)), got


def test_one_session_per_client_is_not_a_reason_to_defer(finish):
    """250 recipients are three transactions, which the queue manager
    would take over three sessions at once; the server greets one and
    turns the others away with 421.  The message goes over the one
    session, at once: nothing deferred."""
    servers, fakes = finish
    smarthost = FakeSMTP("127.0.0.1", free_port(), "plain", max_sessions=1)
    fakes.append(smarthost)
    srv = relay_server(smarthost)
    servers.append(srv)
    srv.start()
    rcpts = [f"r{k:03d}@far.example" for k in range(250)]
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
        assert not s.sendmail("alice@example.test", rcpts,
                              "Subject: many\r\n\r\nbody\r\n")
    assert wait_for(lambda: not srv.queue_ids(), 30), srv.log()[-3000:]
    log = srv.log()
    print(f"\nfigure: {smarthost.refused} sessions turned away, "
          f"{len(smarthost.transactions)} transactions")
    assert smarthost.refused >= 1        # the case this is about
    assert "status=deferred" not in log, log[-3000:]
    assert re.search(r"remote: via:0 127\.0\.0\.1:\d+: .*421 4\.7\.0 .*"
                     r"\(in its greeting\); "
                     r"the messages wait for the 1 other session\n", log), \
        log[-3000:]
    accepted = sorted(a for t in smarthost.transactions for a in t[1])
    assert accepted == rcpts
