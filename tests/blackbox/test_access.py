"""The access map (docs/access.md): client addresses refused or let
relay, senders and recipients refused, messages discarded or held, the
map reloaded while sessions are open, and the administrator's commands.
Clients bind 127.x.y.z source addresses so that each rule has its own
client; 127.0.0.1 matches no rule."""
import os
import re
import signal
import subprocess

import pytest

from conftest import BIN, DOMAIN, EX_CONFIG, Server, owned_server, \
    queued_id, wait_for

RULES = """\
# test access map
127.0.0.5           REJECT   go away
127.0.0.6           TEMPFAIL
127.0.0.7           RELAY
127.0.0.8           DISCARD
127.0.0.9           OK
127.0.0.12          HOLD
from:spammer@example.org   REJECT   no spam here
from:.bad.example          TEMPFAIL
from:held@example.org      HOLD
to:blocked@example.test    REJECT
to:relayed.example         RELAY
to:dropped@example.test    DISCARD
helo:bad.helo              REJECT
"""


def rule_line(key):
    """The line number of the rule whose key is key, in RULES."""
    for i, line in enumerate(RULES.splitlines(), 1):
        if line.split() and line.split()[0] == key:
            return i
    raise KeyError(key)


def with_access(srv, text):
    """Give a not-yet-started server an access map."""
    path = srv.dir / "access"
    path.write_text(text)
    with open(srv.conf, "a") as f:
        f.write(f"access {path}\n")
    return path


@pytest.fixture(scope="module")
def srv():
    s = Server()
    access = with_access(s, RULES)
    s.access = access
    yield from owned_server(s, start=True)


def message(c, sender, rcpts, body="Subject: t\r\n\r\nhello\r\n"):
    """One transaction on an open client; returns the reply to DATA's end."""
    code, text = c.cmd(f"MAIL FROM:<{sender}>")
    assert code == 250, text
    for r in rcpts:
        code, text = c.cmd(f"RCPT TO:<{r}>")
        assert code == 250, text
    code, text = c.cmd("DATA")
    assert code == 354, text
    return c.cmd(body + ".")


def queue_cmd(srv, *args):
    return subprocess.run([BIN, "queue", "-c", str(srv.conf), *args],
                          capture_output=True, text=True, timeout=30)


# ----------------------------------------------------------------------
# client addresses

@pytest.mark.parametrize("port", ["smtp", "submission"])
def test_client_reject(srv, port):
    p = srv.smtp_port if port == "smtp" else srv.sub_port
    with srv.connect(port=p, source="127.0.0.5") as c:
        assert c.greeting == (554, "554 5.7.1 Client host rejected: go away")
        for cmd in ("EHLO client.example", "MAIL FROM:<a@b.example>",
                    "NOOP", "STARTTLS"):
            code, text = c.cmd(cmd)
            assert text.startswith("503 5.7.1 "), (cmd, text)
        assert c.cmd("QUIT")[0] == 221
        assert c.closed()
    where = f"{srv.access}:{rule_line('127.0.0.5')}"
    srv.wait_log(r"smtp access stage=connect key=<127\.0\.0\.5> "
                 + re.escape(f"rule={where} action=REJECT"))


def test_client_reject_ends_after_max_errors(srv):
    with srv.connect(source="127.0.0.5") as c:
        for _ in range(20):
            code, text = c.cmd("NOOP")
            if code == 421:
                break
            assert code == 503, text
        assert code == 421, text
        assert c.closed()


def test_client_tempfail(srv):
    with srv.connect(source="127.0.0.6") as c:
        assert c.greeting[1].startswith("421 4.7.1 Client host refused: "
                                        "Try again later")
        assert c.closed()


def test_unlisted_client_greeted(srv):
    with srv.connect(source="127.0.0.1") as c:
        assert c.greeting[0] == 220


def test_relay_on_smtp_only(srv):
    # 127.0.0.7 RELAY: relays on the smtp listener without AUTH...
    with srv.connect(source="127.0.0.7") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        code, text = c.cmd("RCPT TO:<someone@remote.example>")
        assert code == 250, text
    # ... which 127.0.0.1 may not ...
    with srv.connect(source="127.0.0.1") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        code, text = c.cmd("RCPT TO:<someone@remote.example>")
        assert text.startswith("554 5.7.1 Relay access denied"), text
    # ... and on submission the rule never replaces AUTH.
    with srv.connect(port=srv.sub_port, source="127.0.0.7") as c:
        assert c.greeting[0] == 220
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<a@client.example>")
        assert text.startswith("530 5.7.0 "), text
    srv.wait_log(r"smtp access stage=connect key=<127\.0\.0\.7> rule=\S+ "
                 r"action=RELAY \(no relay without AUTH on this listener\)")


def test_recipient_relay_for_everyone(srv):
    with srv.connect(source="127.0.0.1") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<x@relayed.example>")[0] == 250
        code, text = c.cmd("RCPT TO:<x@sub.relayed.example>")
        assert text.startswith("554 5.7.1 Relay access denied"), text


# ----------------------------------------------------------------------
# senders, recipients, HELO names

def test_sender_reject(srv):
    with srv.connect(source="127.0.0.1") as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<Spammer@Example.ORG>")
        assert text == "554 5.7.1 Sender address rejected: no spam here"
        code, text = c.cmd("MAIL FROM:<x@mx.bad.example>")
        assert text == ("450 4.7.1 Sender address rejected: Try again "
                        "later"), text
        code, text = c.cmd("MAIL FROM:<fine@example.org>")
        assert code == 250, text
        code, text = c.cmd(f"RCPT TO:<blocked@{DOMAIN}>")
        assert text == ("554 5.7.1 Recipient address rejected: Access "
                        "denied"), text
        assert c.cmd(f"RCPT TO:<open@{DOMAIN}>")[0] == 250
    srv.wait_log(r"smtp access stage=mail key=<spammer@example\.org> "
                 r"rule=\S+:%d action=REJECT"
                 % rule_line("from:spammer@example.org"))


def test_client_ok_skips_sender_rules(srv):
    with srv.connect(source="127.0.0.9") as c:
        c.ehlo("bad.helo")
        code, text = c.cmd("MAIL FROM:<spammer@example.org>")
        assert code == 250, text
        code, text = c.cmd(f"RCPT TO:<blocked@{DOMAIN}>")
        assert code == 250, text


def test_helo_reject(srv):
    with srv.connect(source="127.0.0.1") as c:
        c.ehlo("BAD.helo")
        code, text = c.cmd("MAIL FROM:<a@client.example>")
        assert text == "554 5.7.1 Helo command rejected: Access denied"


# ----------------------------------------------------------------------
# DISCARD and HOLD

def test_discard_client(srv):
    with srv.connect(source="127.0.0.8") as c:
        c.ehlo()
        code, text = message(c, "a@client.example", [f"hoge@{DOMAIN}"])
        assert code == 250, text
        qid = queued_id(text)
    where = f"{srv.access}:{rule_line('127.0.0.8')}"
    srv.wait_log(r"smtp discarded qid=%s from=<a@client\.example> "
                 r"to=<hoge@%s> nrcpt=1 size=\d+ status=discarded "
                 r"\(discarded by access rule %s\)"
                 % (qid, re.escape(DOMAIN), re.escape(where)))
    assert qid not in srv.queue_ids()
    assert srv.incoming() == []
    assert not (srv.spool / "hold" / qid).exists()


def test_discard_recipient(srv):
    with srv.connect(source="127.0.0.1") as c:
        c.ehlo()
        code, text = message(c, "a@client.example",
                             [f"hoge@{DOMAIN}", f"dropped@{DOMAIN}"])
        assert code == 250, text
        qid = queued_id(text)
        # The next transaction of the session is not affected.
        code, text = message(c, "a@client.example", [f"hoge@{DOMAIN}"])
        qid2 = queued_id(text)
    srv.wait_log(r"smtp discarded qid=%s .*discarded by access rule" % qid)
    assert qid not in srv.queue_ids()
    assert qid2 in srv.queue_ids()


@pytest.mark.parametrize("source,sender", [
    ("127.0.0.12", "a@client.example"),		# client HOLD
    ("127.0.0.1", "held@example.org"),		# sender HOLD
])
def test_hold(srv, source, sender):
    with srv.connect(source=source) as c:
        c.ehlo()
        code, text = message(c, sender, [f"hoge@{DOMAIN}"])
        assert code == 250, text
        qid = queued_id(text)
    key = "127.0.0.12" if source != "127.0.0.1" else "from:held@example.org"
    srv.wait_log(r"smtp queued qid=%s .* status=held \(held by access rule "
                 r"%s:%d\)" % (qid, re.escape(str(srv.access)),
                               rule_line(key)))
    assert (srv.spool / "hold" / qid).exists()
    assert qid not in srv.queue_ids()
    r = queue_cmd(srv, "list")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^{qid}!", r.stdout, re.M), r.stdout
    assert f"postern queue release {qid}" in r.stdout
    r = queue_cmd(srv, "release", qid)
    assert r.returncode == 0, r.stderr
    assert qid in srv.queue_ids()
    assert not (srv.spool / "hold" / qid).exists()


# ----------------------------------------------------------------------
# reloading

def replace(path, text):
    """Write a new version of the file and rename it into place."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.rename(tmp, path)


def greeting_from(srv, source):
    with srv.connect(source=source) as c:
        return c.greeting[0]


def test_reload_while_session_open(postern):
    srv = postern(start=False)
    path = with_access(srv, "127.0.0.5 REJECT\n")
    srv.start()
    assert greeting_from(srv, "127.0.0.11") == 220
    with srv.connect(source="127.0.0.11") as open_session:
        open_session.ehlo()
        assert open_session.cmd("MAIL FROM:<a@client.example>")[0] == 250

        replace(path, "127.0.0.11 REJECT\n127.0.0.5 OK\n")
        # Every worker looks at the file once a second: wait until each
        # (the harness runs two) has loaded the new table.
        assert wait_for(lambda: srv.log().count(
            "access: loaded 2 rules from") >= 2, 10), srv.log()
        assert all(greeting_from(srv, "127.0.0.11") == 554 and
                   greeting_from(srv, "127.0.0.5") == 220 for _ in range(6))

        # A broken file keeps the table in use.
        replace(path, "127.0.0.11 PERHAPS\n")
        # (the file is looked at when a client connects)
        assert wait_for(lambda: greeting_from(srv, "127.0.0.11") == 554 and
                        "keeping the previous table" in srv.log(), 10)
        srv.wait_log(r"access: %s:1: unknown action 'PERHAPS'"
                     % re.escape(str(path)))
        assert greeting_from(srv, "127.0.0.11") == 554

        # The session that was open goes on with its table.
        assert open_session.cmd(f"RCPT TO:<hoge@{DOMAIN}>")[0] == 250
        assert open_session.cmd("DATA")[0] == 354
        code, text = open_session.cmd("Subject: t\r\n\r\nstill here\r\n.")
        assert code == 250, text
        qid = queued_id(text)
        assert open_session.cmd("QUIT")[0] == 221
    assert qid in srv.queue_ids()


def test_sighup_with_broken_map_keeps_running_table(postern):
    srv = postern(start=False)
    path = with_access(srv, "127.0.0.5 REJECT\n")
    srv.start()
    path.write_text("127.0.0.5 NOPE\n")
    srv.proc.send_signal(1)		# SIGHUP
    srv.wait_log(r"master: %s has 1 error; keeping the running "
                 r"configuration" % re.escape(str(path)))
    assert greeting_from(srv, "127.0.0.5") == 554


def test_restarted_worker_keeps_the_checked_table(postern):
    """A worker that starts after the map broke (here: restarted after a
    crash) starts from the table the master loaded and checked, and the
    broken file does not replace it."""
    srv = postern(start=False, workers=1)
    path = with_access(srv, "127.0.0.5 REJECT\n")
    srv.start()
    assert greeting_from(srv, "127.0.0.5") == 554
    path.write_text("127.0.0.5 NOPE\n")
    (old,) = srv.workers()
    os.kill(old, signal.SIGKILL)

    def replaced():
        # One look per try: the list may change between two looks.
        now = srv.workers()
        return len(now) == 1 and now[0] != old

    assert wait_for(replaced, 10), srv.log()
    srv.wait_log(r"access: %s:1: unknown action 'NOPE'" %
                 re.escape(str(path)))
    assert greeting_from(srv, "127.0.0.5") == 554
    assert "no access rules apply" not in srv.log()


# ----------------------------------------------------------------------
# the administrator's commands

def test_serve_refuses_broken_map(tmp_path):
    srv = Server()
    try:
        path = with_access(srv, "127.0.0.5 REJECT\nfrom:x@y RELAY\n")
        r = subprocess.run([BIN, "serve", "-c", str(srv.conf)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == EX_CONFIG, r.stderr
        assert f"{path}:2: RELAY on a from: key" in r.stderr
        r = subprocess.run([BIN, "config", "-c", str(srv.conf), "check"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == EX_CONFIG
        assert f"{path}:2: RELAY on a from: key" in r.stdout
    finally:
        srv.cleanup()


def test_config_check_warnings(tmp_path):
    srv = Server()
    try:
        path = with_access(srv, "0.0.0.0/0 RELAY\n::/0 RELAY\n"
                                "192.0.2.0/24 REJECT\n192.0.2.0/24 OK\n")
        r = subprocess.run([BIN, "config", "-c", str(srv.conf), "check"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"{path}:1: warning: 0.0.0.0/0 RELAY: an open relay for " \
               "the whole IPv4 internet" in r.stdout
        assert f"{path}:2: warning: ::/0 RELAY: an open relay" in r.stdout
        assert f"{path}:4: warning: 192.0.2.0/24 OK: duplicate of line 3" \
               in r.stdout
        assert f"access {path}" in r.stdout
    finally:
        srv.cleanup()


def test_access_check_command(srv):
    r = subprocess.run([BIN, "access", "-c", str(srv.conf), "check",
                        "127.0.0.7", "127.0.0.5", "from:X@mx.bad.example",
                        "to:nobody@nowhere.example"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"rule {srv.access}:{rule_line('127.0.0.7')}: 127.0.0.7 RELAY" \
        in out
    assert re.search(r"smtp +may relay without AUTH", out), out
    assert re.search(r"submission +RELAY does not replace AUTH here", out)
    assert re.search(r"smtp +554 5\.7\.1 Client host rejected: go away as "
                     r"the greeting", out), out
    assert "keys tried, most specific first: from:x@mx.bad.example, " \
           "from:mx.bad.example, from:.bad.example, from:.example" in out
    assert f"rule {srv.access}:{rule_line('from:.bad.example')}: " \
           "from:.bad.example TEMPFAIL" in out
    assert "450 4.7.1 Sender address rejected: Try again later to MAIL" \
        in out
    assert "no rule matches" in out
