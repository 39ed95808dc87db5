"""Hostile input: what a spammer, a bot or a broken client sends, and what
postern must survive without harm to other sessions.  Complements
test_smuggling.py (bare CR/LF endings), test_auth.py (STARTTLS
injection), test_relay.py (address tricks) and test_smtp_errors.py
(limits one at a time); this file covers floods, slow clients, garbage,
per-address limits and sending limits (issue 10, README "Security and
limits")."""
import os
import pwd
import re
import socket
import stat
import time

import pytest

from conftest import (SMTPClient, _finish_all, build_shim, owned_server,
                      trickle_until_closed, wait_for)
from test_auth import PASSWORD, make_server, plain_ir, starttls, tls_context


def code_esc(reply):
    code, text = reply
    m = re.match(r"^\d{3} (\d\.\d{1,3}\.\d{1,3})", text.splitlines()[-1])
    return f"{code} {m.group(1) if m else ''}".strip()


def read_replies(c, n):
    return [c.reply() for _ in range(n)]


def still_serving(srv, port=None):
    """A fresh session on the server works end to end."""
    with srv.connect(port) as c:
        c.ehlo()
        assert c.cmd("NOOP")[0] == 250


def send_ignoring_reset(c, data):
    try:
        c.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


# ---------------------------------------------------------------------------
# smuggling: variants test_smuggling.py does not cover

def open_data(c):
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354


@pytest.mark.parametrize("fake", [b"\r\n.\x00\r\n", b"\r\n\x00.\r\n",
                                  b"\r\n .\r\n", b"\r\n.\t\r\n"],
                         ids=["dot-nul", "nul-dot", "space-dot", "dot-tab"])
def test_lookalike_terminators_are_text(server, fake):
    """A dot line with anything else on it is message text: the smuggled
    transaction after it stays inside the one message."""
    smuggled = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
    with server.connect() as c:
        open_data(c)
        c.send(b"Subject: cover\r\n\r\nbody" + fake + smuggled
               + b"tail\r\n.\r\n")
        code, text = c.reply()
        assert code == 250, text
        qid = text.split()[-1]
        assert c.cmd("NOOP")[0] == 250     # no reply was owed to "MAIL"
    assert server.queue_ids() == [qid]
    body = server.read_queued(qid)[1]
    assert smuggled in body
    assert body.endswith(b"tail\r\n")


def test_real_terminator_bytewise_then_pipelined(server):
    """The one real end, each octet in its own segment, then a pipelined
    command: one message, and the command is a command."""
    with server.connect() as c:
        open_data(c)
        c.send(b"Subject: slow end\r\n\r\nbody")
        for b in b"\r\n.\r\n":
            c.send(bytes([b]))
            time.sleep(0.02)
        c.send(b"NOOP\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250
    assert len(server.queue_ids()) == 1


# ---------------------------------------------------------------------------
# NUL bytes and 8-bit garbage in commands

GARBAGE = [b"\xff\xfe\xfdEHLO x", b"EHLO \xe3\x81\x82.example",
           b"MAIL FROM:<\xff@example.test>", b"\x1b[31mHELO x",
           b"RCPT TO:<a\x00b@example.test>", b"\x00\x00\x00\x00",
           bytes(range(1, 10)) + bytes(range(11, 13)) + bytes(range(14, 32)),
           bytes(range(128, 256))]


def test_garbage_commands_are_refused_and_logged_escaped(postern):
    srv = postern(extra=["max-errors 100"])
    with srv.connect() as c:
        c.ehlo()
        for g in GARBAGE:
            c.send(g + b"\r\n")
            code, text = c.reply()
            assert 500 <= code < 600, (g, text)
        # nothing was started by any of them
        assert code_esc(c.cmd("RCPT TO:<hoge@example.test>")) == "503 5.5.1"
        assert c.cmd("MAIL FROM:<ok@client.example>")[0] == 250
    raw = srv.logpath.read_bytes()
    assert b"failed-command" in raw
    # client octets reach the log escaped: no NUL, ESC or 8-bit byte
    assert not re.search(rb"[\x00\x1b\x80-\xff]", raw), \
        re.search(rb".{0,40}[\x00\x1b\x80-\xff].{0,40}", raw).group(0)


def test_garbage_flood_hits_the_error_limit(server):
    with server.connect() as c:
        c.send(b"".join(b"\xff" + os.urandom(40).replace(b"\n", b"")
                        + b"\r\n" for _ in range(30)))
        codes = []
        while True:
            code, text = c.reply()
            codes.append(code)
            if code == 421:
                break
        assert code_esc((code, text)) == "421 4.7.0"
        assert all(500 <= x < 600 for x in codes[:-1]), codes
        assert c.closed()
    still_serving(server)


# ---------------------------------------------------------------------------
# huge lines and floods

MB = 1024 * 1024


def test_one_megabyte_command_line(server):
    with server.connect() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<" + b"a" * MB + b"@example.test>\r\n")
        assert code_esc(c.reply()) == "500 5.5.2"
        # exactly one reply for the whole line, and the session goes on
        assert c.cmd("MAIL FROM:<ok@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250


def test_one_megabyte_line_in_data(postern):
    """DATA lines are bytes counted against the size limit, not held as
    lines: a 1 MB line under the limit is stored, over it refused."""
    srv = postern(extra=["message-size-limit 2M"])
    with srv.connect() as c:
        open_data(c)
        c.send(b"Subject: wide\r\n\r\n" + b"x" * MB + b"\r\n.\r\n")
        code, text = c.reply()
        assert code == 250, text
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"x" * (3 * MB) + b"\r\n.\r\n")
        assert code_esc(c.reply()) == "552 5.3.4"
        assert c.cmd("NOOP")[0] == 250


def test_ten_thousand_recipients_in_one_write(postern):
    srv = postern(extra=["max-recipients 1000"], workers=1)
    n = 10000
    with srv.connect() as c:
        c.ehlo()
        c.send("MAIL FROM:<bulk@client.example>\r\n"
               + "".join(f"RCPT TO:<u{i}@example.test>\r\n" for i in range(n))
               + "NOOP\r\n")
        assert c.reply()[0] == 250
        replies = read_replies(c, n)
        assert [r[0] for r in replies[:1000]] == [250] * 1000
        assert {code_esc(r) for r in replies[1000:]} == {"452 4.5.3"}
        # still responsive, and the transaction holds the first 1000
        assert c.reply()[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: bulk\r\n\r\nhi\r\n.\r\n")
        code, text = c.reply()
        assert code == 250, text
        env = srv.read_queued(text.split()[-1])[0]
        assert len(env["rcpt"]) == 1000


def test_noop_flood_hits_the_junk_limit(server):
    with server.connect() as c:
        c.ehlo()
        send_ignoring_reset(c, b"NOOP\r\n" * 50000)
        codes = []
        while True:
            code, text = c.reply()
            codes.append(code)
            if code != 250:
                break
        assert codes[:-1] == [250] * 100
        assert code_esc((code, text)) == "421 4.7.0"
    server.wait_log(r"smtp disconnect reason=junk-commands")
    still_serving(server)


# ---------------------------------------------------------------------------
# slow clients

def trickle(c, data, interval, stop_after):
    """Send data one octet per interval until the server closes or
    stop_after seconds pass; returns the seconds until it closed (or
    None).  Replies are kept in c.buf."""
    t0 = time.monotonic()
    c.sock.settimeout(interval)
    i = 0
    while time.monotonic() - t0 < stop_after:
        try:
            c.sock.sendall(data[i % len(data):i % len(data) + 1])
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        i += 1
        try:
            chunk = c.sock.recv(4096)
            if not chunk:
                return time.monotonic() - t0
            c.buf += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            return time.monotonic() - t0
    return None


@pytest.mark.parametrize("phase", ["command", "data", "overlong"])
def test_slowloris_is_dropped_at_the_line_deadline(postern, phase):
    """A byte a second keeps restarting an idle timer; the line deadline
    ends the session smtp-timeout after the line began."""
    srv = postern(extra=["smtp-timeout 3s"])
    with srv.connect() as c:
        c.ehlo()
        if phase == "data":
            open_data_after_ehlo = [
                "MAIL FROM:<s@client.example>", "RCPT TO:<hoge@example.test>"]
            for line in open_data_after_ehlo:
                assert c.cmd(line)[0] == 250
            assert c.cmd("DATA")[0] == 354
            # 40 KiB of whole lines first, past the spool writer's 32 KiB
            # buffer, so the message's file has content to be seen
            c.send(b"Subject: slow\r\n\r\n" + b"a whole line\r\n" * 3000)
            assert wait_for(lambda: len(srv.incoming()) == 1, 5)
            data = b"Subject: never ending line " * 10
        elif phase == "overlong":
            # past the line limit at once: the rest is skipped, and the
            # skipping must not last forever either
            c.send(b"NOOP " + b"x" * 5000)
            assert code_esc(c.reply()) == "500 5.5.2"
            data = b"y" * 200
        else:
            data = b"NOOP " + b"x" * 200
        took = trickle(c, data, 1.0, 12)
        assert took is not None, "still open after 12 s of trickling"
        assert 2.5 <= took <= 6.0, took
        assert "421 4.4.2" in c.buf.decode(errors="replace")
    srv.wait_log(r"smtp disconnect reason=line-deadline")
    if phase == "data":
        assert wait_for(lambda: srv.incoming() == [], 5)
        assert srv.queue_ids() == []


def test_slow_but_complete_lines_are_served(postern):
    """The deadline is per line: a client slower than the timeout in
    total, but finishing each line in time, is served."""
    srv = postern(extra=["smtp-timeout 3s"])
    with srv.connect() as c:
        c.ehlo()
        for _ in range(3):
            c.send("NO")
            time.sleep(1.0)
            c.send("OP\r\n")
            assert c.reply()[0] == 250
            time.sleep(1.0)


# ---------------------------------------------------------------------------
# half-closed connections

def test_half_close_mid_command_runs_nothing(server):
    with server.connect() as c:
        c.ehlo()
        c.send("MAIL FROM:<a@client.example>\r\nRCPT TO:<hoge@example.te")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.reply()[0] == 250
        assert c.closed()
    server.wait_log(r"smtp disconnect reason=eof")
    assert "RCPT TO:<hoge@example.te" not in server.log()


def test_half_close_in_data_queues_nothing(server):
    with server.connect() as c:
        open_data(c)
        # past the spool writer's 32 KiB buffer: the file has content
        c.send("Subject: cut\r\n\r\n" + "no end in sight\r\n" * 2500)
        assert wait_for(lambda: len(server.incoming()) == 1, 5)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.closed()
    server.wait_log(r"smtp disconnect reason=eof-in-data")
    assert wait_for(lambda: server.incoming() == [], 5)
    assert server.queue_ids() == []


def test_client_that_never_reads(postern):
    """A client that sends without reading fills its own socket; the
    server's output for it is bounded by the junk and error limits, and
    other sessions are served meanwhile."""
    srv = postern(workers=1)
    hog = srv.connect()
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    send_ignoring_reset(hog, b"EHLO x\r\n" + b"HELP\r\n" * 99)
    still_serving(srv)
    hog.close()


# ---------------------------------------------------------------------------
# TLS handshake garbage

@pytest.fixture
def tls_srv():
    srv = make_server(extra=["smtp-timeout 3s", "workers 1"])
    yield from owned_server(srv)


TLS_JUNK = [
    b"EHLO plain.example\r\n",                               # no TLS at all
    bytes.fromhex("160301ffff") + os.urandom(300),           # huge length
    bytes.fromhex("16030100050100000100"),                   # short hello
    os.urandom(2048),
    bytes.fromhex("1503010002022800"),                       # alert first
]


@pytest.mark.parametrize("junk", TLS_JUNK,
                         ids=["plaintext", "biglen", "short", "random",
                              "alert"])
def test_tls_garbage_on_465(tls_srv, junk):
    bystander = SMTPClient(tls_srv.smtp_port)      # an ordinary session
    bystander.ehlo()
    with socket.create_connection(("127.0.0.1", tls_srv.ssl_port),
                                  timeout=10) as s:
        try:
            s.sendall(junk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(8)
        t0 = time.monotonic()
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        assert time.monotonic() - t0 < 7.5, "handshake garbage kept open"
    # the bystander and new TLS sessions are fine
    assert bystander.cmd("NOOP")[0] == 250
    bystander.close()
    with socket.create_connection(("127.0.0.1", tls_srv.ssl_port),
                                  timeout=10) as raw:
        with tls_context().wrap_socket(raw) as t:
            assert t.recv(512).startswith(b"220 ")


def test_silent_tls_client_is_dropped(tls_srv):
    """A connection to 465 that starts a handshake and then trickles is
    ended by the deadline, not kept by each octet."""
    with socket.create_connection(("127.0.0.1", tls_srv.ssl_port),
                                  timeout=10) as s:
        hello = bytes.fromhex("160301020001") + b"\x03\x03" + os.urandom(40)
        closed = trickle_until_closed(s, hello, 1.0)
        assert closed is not None and closed <= 6.5, closed


def test_garbage_after_starttls(tls_srv):
    bystander = SMTPClient(tls_srv.smtp_port)
    bystander.ehlo()
    with SMTPClient(tls_srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("STARTTLS")[0] == 220
        # No valid record type first: refused at once.  (Random bytes
        # that start like a handshake record of a great length make the
        # server wait for the rest, up to smtp-timeout, and the idle
        # bystander times out with them.)
        send_ignoring_reset(c, b"\xff" + os.urandom(1023))
        assert c.closed(8)
    assert bystander.cmd("NOOP")[0] == 250
    bystander.close()
    with SMTPClient(tls_srv.smtp_port) as c:
        starttls(c)
        c.ehlo()
        assert c.cmd("NOOP")[0] == 250


# ---------------------------------------------------------------------------
# many connections from one address

def test_connections_per_ip_limit_across_workers(postern):
    srv = postern(extra=["max-connections-per-ip 5"], workers=3)
    srv.wait_log(r"smtp disconnect reason=quit")  # the start-up probe
    time.sleep(0.2)
    held = [SMTPClient(srv.smtp_port) for _ in range(5)]
    try:
        assert all(c.greeting[0] == 220 for c in held)
        # the sixth, whichever worker takes it, is over the limit
        for _ in range(3):
            with SMTPClient(srv.smtp_port) as extra:
                assert code_esc(extra.greeting) == "421 4.7.0", extra.greeting
                assert extra.closed()
        srv.wait_log(r"smtp connection-limit address=127\.0\.0\.1 limit=5")
        # mynetworks (127.0.0.2 in the test configuration) is exempt
        trusted = [SMTPClient(srv.smtp_port, source="127.0.0.2")
                   for _ in range(8)]
        assert all(c.greeting[0] == 220 for c in trusted)
        for c in trusted:
            c.close()
        # a closed session frees its place
        assert held.pop().cmd("QUIT")[0] == 221

        def greeted():
            with SMTPClient(srv.smtp_port) as c:
                return c.greeting[0] == 220
        assert wait_for(greeted, 5)
    finally:
        for c in held:
            c.close()


def test_crashed_worker_releases_its_connections(postern):
    """Counts held by a worker that dies are cleared by the master: a
    crash cannot lock an address out."""
    srv = postern(extra=["max-connections-per-ip 3"], workers=1)
    srv.wait_log(r"smtp disconnect reason=quit")
    held = [SMTPClient(srv.smtp_port) for _ in range(3)]
    with SMTPClient(srv.smtp_port) as extra:
        assert code_esc(extra.greeting) == "421 4.7.0"
    [worker] = srv.workers()
    os.kill(worker, 9)
    for c in held:
        assert c.closed()
    assert wait_for(lambda: srv.workers() and srv.workers() != [worker], 10)
    again = [SMTPClient(srv.smtp_port) for _ in range(3)]
    try:
        assert [c.greeting[0] for c in again] == [220] * 3
    finally:
        for c in again:
            c.close()
    srv.wait_log(r"worker 0 \(pid %d\) killed by signal 9" % worker)


# ---------------------------------------------------------------------------
# sending limits

def auth_session(srv, port=None):
    c = SMTPClient(port or srv.sub_port)
    starttls(c)
    c.ehlo()
    code, text = c.cmd("AUTH PLAIN " + plain_ir("hoge", PASSWORD))
    assert code == 235, text
    return c


def send_one(c, rcpts, frm="hoge@example.test"):
    """MAIL, RCPTs, DATA; returns the codes (stops at a refusal)."""
    code, text = c.cmd(f"MAIL FROM:<{frm}>")
    if code != 250:
        return [(code, text)]
    out = [(code, text)]
    for r in rcpts:
        out.append(c.cmd(f"RCPT TO:<{r}>"))
    if not any(x[0] == 250 for x in out[1:]):
        c.cmd("RSET")
        return out
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: x\r\n\r\nx\r\n.\r\n")
    out.append(c.reply())
    return out


def test_user_rate_limit_messages_and_recipients():
    srv = make_server(extra=["user-rate-limit 3 5", "workers 2"])
    try:
        # messages: 3 an hour, whichever worker each session lands on
        for i in range(3):
            with auth_session(srv) as c:
                assert [r[0] for r in send_one(c, ["a@remote.example"])] \
                    == [250, 250, 250]
        with auth_session(srv) as c:
            r = send_one(c, ["a@remote.example"])
            assert code_esc(r[0]) == "450 4.7.1", r
            assert c.cmd("NOOP")[0] == 250        # the session goes on
        srv.wait_log(r"smtp rate-limit user:hoge kind=messages limit=3/h")
    finally:
        assert _finish_all([srv]) == []

    srv = make_server(extra=["user-rate-limit 100 5"])
    try:
        with auth_session(srv) as c:
            r = send_one(c, [f"r{i}@remote.example" for i in range(7)])
            assert [x[0] for x in r[1:6]] == [250] * 5
            assert [code_esc(x) for x in r[6:8]] == ["450 4.7.1"] * 2
            assert r[-1][0] == 250              # the first 5 were sent
        with auth_session(srv) as c:
            r = send_one(c, ["late@remote.example"])
            assert code_esc(r[1]) == "450 4.7.1"
        srv.wait_log(r"smtp rate-limit user:hoge kind=recipients limit=5/h")
    finally:
        assert _finish_all([srv]) == []


def test_ip_rate_limit_on_port_25(postern):
    srv = postern(extra=["ip-rate-limit 3"], workers=2)
    for i in range(3):
        with srv.connect() as c:
            c.ehlo()
            assert [r[0] for r in send_one(c, ["hoge@example.test"],
                                           frm="x@client.example")] \
                == [250, 250, 250]
    with srv.connect() as c:
        c.ehlo()
        assert code_esc(c.cmd("MAIL FROM:<x@client.example>")) == "450 4.7.1"
    srv.wait_log(r"smtp rate-limit ip:127\.0\.0\.1 kind=messages limit=3/h")
    # mynetworks is not limited
    with srv.connect(source="127.0.0.2") as c:
        c.ehlo()
        for _ in range(4):
            assert send_one(c, ["hoge@example.test"],
                            frm="x@client.example")[-1][0] == 250


# ---------------------------------------------------------------------------
# privilege separation, as root

def test_workers_hold_no_privileges():
    if os.geteuid() != 0:
        pytest.skip("needs root: the workers only drop privileges when "
                    "started as root")
    srv = make_server()
    try:
        pw = pwd.getpwnam("postern")
        want_uid = f"{pw.pw_uid}\t" * 4
        want_gid = f"{pw.pw_gid}\t" * 4
        workers = srv.workers()
        assert workers

        def status_of(pid):
            with open(f"/proc/{pid}/status") as f:
                return f.read()
        # A worker just forked still holds root for the moment it takes
        # to load the TLS certificate; it never accepts before dropping it.
        wait_for(lambda: all(f"Uid:\t{want_uid}".rstrip("\t") in
                             status_of(p) for p in workers), 10)
        for pid in workers:
            status = status_of(pid)
            uid = re.search(r"^Uid:\t(.*)$", status, re.M).group(1) + "\t"
            gid = re.search(r"^Gid:\t(.*)$", status, re.M).group(1) + "\t"
            groups = re.search(r"^Groups:\t?(.*)$", status, re.M).group(1)
            assert uid == want_uid, (pid, uid)
            assert gid == want_gid, (pid, gid)
            assert groups.split() in ([], [str(pw.pw_gid)]), groups
            caps = re.search(r"^CapEff:\t(.*)$", status, re.M).group(1)
            assert int(caps, 16) == 0, caps
        # the TLS key: root's alone
        key = srv.spool / "tls" / "selfsigned-key.pem"
        st = os.stat(key)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
        # the auth socket: root and the postern group only
        socks = [p for p in srv.spool.rglob("*")
                 if stat.S_ISSOCK(os.lstat(p).st_mode)]
        assert socks, "no auth socket under the spool"
        for s in socks:
            st = os.stat(s)
            assert st.st_uid == 0 and st.st_gid == pw.pw_gid, s
            assert stat.S_IMODE(st.st_mode) & 0o007 == 0, oct(st.st_mode)
            d = os.stat(s.parent)
            assert d.st_uid == 0 and stat.S_IMODE(d.st_mode) & 0o007 == 0
        # a worker cannot read the key (only the key process holds it)
        r = os.system(f"setpriv --reuid={pw.pw_uid} --regid={pw.pw_gid} "
                      f"--clear-groups cat {key} >/dev/null 2>&1")
        assert r != 0, "the postern user can read the TLS key"
    finally:
        assert _finish_all([srv]) == []


# ---------------------------------------------------------------------------
# replies a client does not read

def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def flood_unread(port, greeting_and_command, command, total=8 << 20):
    """Send `command` again and again (about `total` octets) without
    reading a reply; returns the octets the server took before it
    stopped reading (a send that blocks 3 s ends it)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.settimeout(3)
    chunk = command * (65536 // len(command))
    sent = 0
    try:
        s.sendall(greeting_and_command)
        while sent < total:
            sent += s.send(chunk)
    except (socket.timeout, BlockingIOError):
        pass
    return s, sent


@pytest.mark.parametrize("proto", ["smtp", "pop3"])
def test_replies_never_read_stop_the_reading(proto):
    """A client that sends commands and never reads their replies: past
    64 KiB of unread replies the server takes no further command and
    stops reading, so the client fills its own socket buffers and not
    the worker's memory; other sessions are served meanwhile."""
    from pop3_helpers import pop3_server
    srv = pop3_server(workers=1)
    try:
        # (SMTP: EHLO has the longest reply; a message after every 99 of
        # them keeps the junk-command limit away)
        port, first, cmd = ((srv.smtp_port, b"EHLO x\r\n",
                             b"EHLO x\r\n" * 99
                             + b"MAIL FROM:<a@client.example>\r\n"
                             b"RCPT TO:<hoge@example.test>\r\nDATA\r\n"
                             b"Subject: unread\r\n\r\nx\r\n.\r\n")
                            if proto == "smtp" else
                            (srv.pop3_port, b"", b"CAPA\r\n"))
        before = rss_kib(srv.workers())
        hog, sent = flood_unread(port, first, cmd)
        grown = rss_kib(srv.workers()) - before
        print(f"\nfigure: {proto}: the server took {sent >> 10} KiB of "
              f"commands, the worker grew by {grown} KiB")
        assert sent < 8 << 20, "the server read everything"
        assert grown < 16 << 10, f"worker grew by {grown} KiB"
        still_serving(srv)
        hog.close()
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def tx_queue(local_port, remote_port):
    """Octets the kernel holds unsent on the loopback TCP socket from
    local_port to remote_port (/proc/net/tcp), or -1."""
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == local_port and
                    int(fields[2].split(":")[1], 16) == remote_port):
                return int(fields[4].split(":")[0], 16)
    return -1


def test_write_timeout_while_the_message_is_stored(postern, tmp_path):
    """A client that stops reading while its message is being fsynced:
    the write timeout must not end the session under the commit (the
    commit thread still owns the file), and the message's reply is a
    250, never a 421 the client would take for a failure and resend.
    The fsync is made slow with an LD_PRELOAD shim; the client fills
    the socket with RCPT replies it does not read, to just past what the
    kernel takes and below the 64 KiB of unread replies at which the
    server would stop reading."""
    shim = build_shim("slowsync", tmp_path)
    srv = postern(extra=["smtp-timeout 2s", "max-recipients 100000"],
                  start=False)
    srv.wrap = ["env", f"LD_PRELOAD={shim}", "SLOWSYNC_MS=4000",
                "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0"]
    srv.start()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", srv.smtp_port))
    s.settimeout(30)
    # RCPTs until the kernel takes no more of the server's replies (its
    # socket's send queue stops growing); the replies of the last batch
    # wait in the server, well under its 64 KiB.  (Not EHLOs: repeated,
    # they meet the junk-command limit first.)
    client_port = s.getsockname()[1]
    last = -1
    s.sendall(b"EHLO x\r\n")
    for i in range(400):
        if i % 90 == 0:                  # under max-recipients
            s.sendall(b"RSET\r\nMAIL FROM:<a@client.example>\r\n")
        s.sendall(b"RCPT TO:<u@example.test>\r\n" * 1000)
        time.sleep(0.05)
        queued = tx_queue(srv.smtp_port, client_port)
        if queued == last:
            break
        last = queued
    else:
        pytest.fail(f"the server's send queue kept growing ({last} octets)")
    print(f"\nfigure: the kernel held {last} octets of replies")
    s.sendall(b"RSET\r\nMAIL FROM:<a@client.example>\r\n"
              b"RCPT TO:<u@example.test>\r\nDATA\r\n")
    time.sleep(0.3)
    s.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    m = srv.wait_log(r"smtp queued qid=([0-9A-F]{16}) ", timeout=20)
    got = b""
    while True:                          # now read it all
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    tail = got[got.rfind(b"354 "):]
    assert re.search(rb"\r\n250 2\.0\.0 [^\r\n]*" + m.group(1).encode(),
                     tail), tail[-300:]
    assert b"421" not in tail, tail[-300:]
    srv.wait_log(r"smtp disconnect reason=timeout messages=1")
