"""The workers ask the shared store (Redis) without waiting for it
(src/state/state_async.c): a slow or silent Redis delays only the
session that asked, never the worker's other sessions, and pipelined
commands keep their order around the wait.

The Redis here is a small server of the test's own on a loopback port
that speaks enough of RESP for postern's commands and answers each one
after a set delay, or never: a real Redis cannot be made slow on
purpose.  The real one is in test_cluster.py.  A host name in the URL
is looked up without waiting either: the last tests give the server a
name server of their own."""
import os
import queue
import re
import shutil
import socket
import struct
import threading
import time

import pytest

from conftest import finish_checked, free_port
from fakeserver import FakeServer
from pop3_helpers import PASSWORD, POP3Raw, greeted_while, pop3_server

SOURCE = "127.0.0.40"           # not in mynetworks: relay needs a grant
# The grants here are hoge's (SlowRedis): relay by one needs that user,
# and one of the user's addresses as the sender.
USERS = ["hoge:!::::"]
SENDER = "hoge@example.test"
DELAY = 0.07                    # seconds per answer, under the 100 ms bound
STATE_RETRY = 3                 # seconds Redis counts as down after a
                                # failure (src/state/state.h)


READONLY = "READONLY You can't write against a read only replica."


class SlowRedis(FakeServer):
    """Answers GET with hoge's grant ("user:hoge"), or none with `exists`
    0, TTL with :-2 (no such key), EVAL with :1 and the rest with +OK,
    each after `delay` seconds; with delay None
    it reads and never answers.  The commands in `refuse` get -READONLY
    instead, as a primary demoted to replica by a failover answers
    writes.  Commands are answered in order on each connection, as Redis
    does: one after another (a slow server), or with `latency` each
    `delay` after it arrived (a slow network: commands sent together are
    answered together)."""

    def __init__(self, delay, exists=1, latency=False, refuse=()):
        self.delay = delay
        self.exists = exists
        self.latency = latency
        self.refuse = set(refuse)
        self.commands = []
        super().__init__(port=free_port())

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def _commands(buf):
        """Complete RESP arrays at the front of buf: (commands, rest)."""
        out = []
        while buf.startswith(b"*") and b"\r\n" in buf:
            head, rest = buf[1:].split(b"\r\n", 1)
            args = []
            for _ in range(int(head)):
                if b"\r\n" not in rest:
                    return out, buf
                size, tail = rest[1:].split(b"\r\n", 1)
                n = int(size)
                if len(tail) < n + 2:
                    return out, buf
                args.append(tail[:n].decode())
                rest = tail[n + 2:]
            out.append(args)
            buf = rest
        return out, buf

    def _reply(self, verb):
        if verb in self.refuse:
            return f"-{READONLY}\r\n".encode()
        return (("$9\r\nuser:hoge\r\n" if self.exists else "$-1\r\n")
                if verb == "GET" else
                ":-2\r\n" if verb == "TTL" else
                ":1\r\n" if verb == "EVAL" else "+OK\r\n").encode()

    def _send_due(self, conn, outbox):
        """The latency mode's sender: each reply at its time, in order."""
        while True:
            item = outbox.get()
            if item is None:
                return
            due, reply = item
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                conn.sendall(reply)
            except OSError:
                return

    def handle(self, conn):
        # As Redis does: replies written one by one must not wait for
        # the client's delayed ACK (Nagle).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(0.2)
        buf = b""
        outbox = queue.Queue()
        if self.latency:
            sender = threading.Thread(target=self._send_due,
                                      args=(conn, outbox), daemon=True)
            sender.start()
        try:
            self._serve_commands(conn, buf, outbox)
        finally:
            outbox.put(None)

    def _serve_commands(self, conn, buf, outbox):
        with conn:
            while not self.stopping:
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                cmds, buf = self._commands(buf + chunk)
                for args in cmds:
                    verb = args[0].upper()
                    self.commands.append(verb)
                    if self.delay is None:
                        continue
                    if self.latency:
                        outbox.put((time.monotonic() + self.delay,
                                    self._reply(verb)))
                        continue
                    time.sleep(self.delay)
                    try:
                        conn.sendall(self._reply(verb))
                    except OSError:
                        return


@pytest.fixture
def slow_redis(request):
    redis = SlowRedis(*request.param)
    yield redis
    redis.close()


def store_server(postern, redis):
    # One worker: the greetings below are that worker's.
    return postern(extra=[f"state {redis.url}", "pop-before-smtp 60s"],
                   users=USERS, workers=1)


@pytest.mark.parametrize("slow_redis", [(DELAY,)], indirect=True)
def test_a_slow_store_does_not_stall_the_worker(postern, slow_redis):
    srv = store_server(postern, slow_redis)
    got = {}

    def relay_many():
        with srv.connect(source=SOURCE) as c:
            c.ehlo()
            assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
            got["sent"] = time.monotonic()
            got["codes"] = [c.cmd(f"RCPT TO:<friend{i}@elsewhere.example>")
                            for i in range(10)]
            got["done"] = time.monotonic()

    # Each RCPT waits DELAY for its grant; a worker that waited with it
    # would greet nobody for DELAY at a time.
    greeted_while(srv, relay_many, got, at_least=10 * DELAY * 0.9,
                  longest_allowed=DELAY / 2)
    # The store's answer was used: each RCPT relayed on its grant.
    assert [code for code, _ in got["codes"]] == [250] * 10, got["codes"]
    assert slow_redis.commands.count("GET") == 10
    assert "state: redis down" not in srv.log()


@pytest.mark.parametrize("slow_redis", [(DELAY, 0)], indirect=True)
def test_pipelined_commands_keep_their_order_around_a_wait(postern,
                                                          slow_redis):
    srv = store_server(postern, slow_redis)
    with srv.connect(source=SOURCE) as c:
        c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\n"
               "RCPT TO:<friend@elsewhere.example>\r\n"
               "RCPT TO:<postmaster@example.test>\r\n"
               "RSET\r\n")
        replies = [c.reply() for _ in range(4)]
    # No grant (GET nil): the remote recipient is refused, and its
    # reply comes in its place, before the local recipient's.
    assert [code for code, _ in replies] == [250, 554, 250, 250], replies
    assert "5.7.1" in replies[1][1]
    assert 'command="RCPT TO:<friend@elsewhere.example>"' in srv.log()


@pytest.mark.parametrize("slow_redis", [(None,)], indirect=True)
def test_a_silent_store_fails_closed_in_bounded_time(postern, slow_redis):
    srv = store_server(postern, slow_redis)
    with srv.connect(source=SOURCE) as c:
        c.ehlo()
        # The client's message rate (ip-rate-limit, on by default) is the
        # first question; unanswered, the node's own counter decides.
        t0 = time.monotonic()
        code, text = c.cmd(f"MAIL FROM:<{SENDER}>")
        first = time.monotonic() - t0
        assert code == 250, text
        # Redis counts as down now: the grant is not asked for, and
        # relay is refused at once (fail closed).
        t0 = time.monotonic()
        code, text = c.cmd("RCPT TO:<friend@elsewhere.example>")
        second = time.monotonic() - t0
        assert code == 554, text
        # Mail for local users is still taken.
        assert c.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
    assert 0.09 <= first < 2, first
    assert second < 0.09, second
    assert slow_redis.commands == ["EVAL"], slow_redis.commands
    srv.wait_log(r"state: redis down \(no answer within 100 ms\)")
    print(f"\nfigure: unanswered MAIL took {first * 1000:.0f} ms, "
          f"the RCPT after it {second * 1000:.1f} ms")


@pytest.mark.parametrize("slow_redis", [(DELAY,)], indirect=True)
def test_stopping_while_a_session_waits_for_the_store(postern, slow_redis):
    srv = store_server(postern, slow_redis)
    with srv.connect(source=SOURCE) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        # Ten pipelined RCPTs keep the session waiting for the store,
        # one answer after another, when the stop comes.
        c.send("".join(f"RCPT TO:<friend{i}@elsewhere.example>\r\n"
                       for i in range(10)))
        time.sleep(3.5 * DELAY)
        srv.proc.send_signal(15)
        replies = []
        while True:
            code, text = c.reply()
            replies.append(code)
            if code != 250:
                break
        assert code == 421 and "4.3.2" in text, replies
        assert 1 <= len(replies) - 1 < 10, replies
        assert c.closed(10)
    assert srv.proc.wait(15) == 0, srv.log()
    assert "reason=shutdown" in srv.log()


@pytest.mark.parametrize("slow_redis", [(DELAY,)], indirect=True)
def test_a_pop3_login_answers_once_its_grant_is_stored(slow_redis):
    srv = pop3_server(extra=[f"state {slow_redis.url}",
                             "pop-before-smtp 60s"], users=("hoge",),
                      pop3_opts="cleartext-auth loopback", workers=1)
    try:
        with POP3Raw(srv.pop3_port, source=SOURCE) as c:
            r = c.login("hoge", PASSWORD)
            assert r.startswith("+OK"), r
            # The +OK waited for Redis's answer to the SET: the grant's
            # line, logged on that answer, is there already.
            assert re.search(r"pop3 grant address=127\.0\.0\.40 for=60s "
                             r"store=redis", srv.log()), srv.log()
            c.cmd("QUIT")
        assert slow_redis.commands.count("SET") == 1
        with srv.connect(source=SOURCE) as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<hoge@example.test>")[0] == 250
            code, text = c.cmd("RCPT TO:<friend@elsewhere.example>")
            assert code == 250, text        # relayed on the grant
    finally:
        finish_checked(srv)


@pytest.mark.parametrize("slow_redis", [(0.0,)], indirect=True)
def test_a_database_number_is_selected_first(postern, slow_redis):
    srv = postern(extra=[f"state redis://127.0.0.1:{slow_redis.port}/3",
                         "pop-before-smtp 60s"], users=USERS, workers=1)
    with srv.connect(source=SOURCE) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, text = c.cmd("RCPT TO:<friend@elsewhere.example>")
        assert code == 250, text
    # The address's message rate, the grant, then its user's message
    # and recipient rates.
    assert slow_redis.commands == ["SELECT", "EVAL", "GET", "EVAL",
                                   "EVAL"], slow_redis.commands


# ----------------------------------------------------------------------
# A host name in `state redis://HOST`: looked up on the worker's loop
# without waiting (c-ares), not by a blocking getaddrinfo.

class SlowDNS:
    """A name server of the test's own on port 53 of a loopback address,
    answering A and AAAA questions from `names` ({name: [addresses]})
    after `delay` seconds, NXDOMAIN for any other name.  The server runs
    in a mount namespace where /etc/resolv.conf names only this one
    (`wrap`), so its look-ups come here whichever resolver makes them."""

    def __init__(self, tmpdir, delay, names):
        self.delay = delay
        self.names = {k.lower(): v for k, v in names.items()}
        self.questions = []
        self.answered = threading.Event()
        self.sock = None
        for last in (77, 78, 79):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((f"127.0.0.{last}", 53))
            except OSError:
                s.close()
                continue
            self.sock, self.addr = s, f"127.0.0.{last}"
            break
        if self.sock is None:
            pytest.skip("SKIP: port 53 is taken on 127.0.0.77-79")
        self.sock.settimeout(0.2)
        self.resolv = tmpdir / "resolv.conf"
        self.resolv.write_text(f"nameserver {self.addr}\n"
                               "options timeout:5 attempts:1\n")
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def wrap(self):
        return ["unshare", "-m", "--", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                str(self.resolv)]

    def _answer(self, query, peer):
        qid, = struct.unpack("!H", query[:2])
        labels, i = [], 12
        while query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode().lower())
            i += 1 + query[i]
        qtype, = struct.unpack("!H", query[i + 1:i + 3])
        question = query[12:i + 5]
        name = ".".join(labels)
        self.questions.append((name, qtype))
        want = socket.AF_INET if qtype == 1 else \
            socket.AF_INET6 if qtype == 28 else None
        rrs = []
        if name in self.names and want is not None:
            for a in self.names[name]:
                if (":" in a) == (want == socket.AF_INET6):
                    data = socket.inet_pton(want, a)
                    rrs.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, 60,
                                           len(data)) + data)
        rcode = 0 if name in self.names else 3
        head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(rrs), 0, 0)
        time.sleep(self.delay)
        try:
            self.sock.sendto(head + question + b"".join(rrs), peer)
        except OSError:
            return
        self.answered.set()

    def _serve(self):
        while not self.stopping:
            try:
                query, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(query, peer),
                             daemon=True).start()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def slow_dns(request, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("SKIP: needs root, for port 53 and a mount namespace")
    if shutil.which("unshare") is None:
        pytest.skip("SKIP: unshare(1) is missing")
    dns = SlowDNS(tmp_path, *request.param)
    yield dns
    dns.stop()


def named_store_server(postern, redis, dns):
    srv = postern(extra=[f"state redis://redis.test:{redis.port}/0",
                         "pop-before-smtp 60s"], users=USERS, workers=1,
                  start=False)
    srv.wrap = dns.wrap
    return srv.start()


# ::1 first (postern tries IPv6 addresses first): nothing listens there
# on the store's port, so the connection must go on to 127.0.0.1.
SLOW_NAME = (0.3, {"redis.test": ["::1", "127.0.0.1"]})


@pytest.mark.parametrize("slow_redis", [(0.0,)], indirect=True)
@pytest.mark.parametrize("slow_dns", [SLOW_NAME], indirect=True)
def test_a_slow_name_server_does_not_stall_the_worker(postern, slow_redis,
                                                       slow_dns):
    srv = named_store_server(postern, slow_redis, slow_dns)
    got = {}

    def first_mail():
        with srv.connect(source=SOURCE) as c:
            c.ehlo()
            got["sent"] = time.monotonic()
            # The message rate is the first question: it waits for the
            # name, then for its 100 ms, and the node's counter answers.
            got["mail"] = c.cmd(f"MAIL FROM:<{SENDER}>")
            got["done"] = time.monotonic()

    # A worker that looked the name up on its loop would greet nobody
    # for the name server's 300 ms.
    greeted_while(srv, first_mail, got, at_least=0.09, longest_allowed=0.05)
    assert got["mail"][0] == 250, got["mail"]
    assert got["done"] - got["sent"] < 0.25
    srv.wait_log(r"state: redis down \(no address for redis\.test within "
                 r"100 ms\)")
    assert {(n, t) for n, t in slow_dns.questions} >= \
        {("redis.test", 1), ("redis.test", 28)}, slow_dns.questions
    # The answer, when it comes, is used at once (not after the 3 s
    # breaker): the grant is asked of the store and relay goes through.
    assert slow_dns.answered.wait(5)
    t0 = time.monotonic()
    with srv.connect(source=SOURCE) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        while True:
            code, text = c.cmd("RCPT TO:<friend@elsewhere.example>")
            if code == 250 or time.monotonic() - t0 > 2:
                break
            time.sleep(0.05)
    assert code == 250, text
    assert "GET" in slow_redis.commands, slow_redis.commands
    srv.wait_log(r"state: redis back")


class SilentAddress:
    """host:port taking no connection and refusing none, as an address
    whose SYNs a firewall drops: a listener whose accept queue is full
    and never drained, so that the kernel drops the SYNs that come to
    it.  Only loopback is used."""

    def __init__(self, host, port):
        self.sock = socket.socket(socket.AF_INET6)
        self.fillers = []
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.close()
            pytest.skip(f"SKIP: cannot listen on [{host}]:{port}: {e}")
        self.sock.listen(0)
        # One connection fills a queue of 0 (the kernel takes one more
        # than asked); the others make sure.
        for _ in range(3):
            s = socket.socket(socket.AF_INET6)
            s.setblocking(False)
            s.connect_ex((host, port))
            self.fillers.append(s)
        time.sleep(0.1)
        probe = socket.socket(socket.AF_INET6)
        probe.settimeout(0.3)
        try:
            probe.connect((host, port))
            answered = True
        except socket.timeout:
            answered = False
        except OSError:
            answered = True
        finally:
            probe.close()
        if answered:
            self.close()
            pytest.skip("SKIP: this kernel answers connects to a full "
                        "accept queue")

    def close(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


@pytest.mark.parametrize("slow_redis", [(0.0,)], indirect=True)
@pytest.mark.parametrize("slow_dns", [(0.0, {"redis.test": ["::1",
                                                            "127.0.0.1"]})],
                         indirect=True)
def test_an_address_that_drops_the_connect_is_left_for_the_next(
        postern, slow_redis, slow_dns):
    """The name's first address (IPv6, tried first) drops the SYNs: the
    connect goes on to the next address within the first question's
    100 ms, as after a refused one, instead of timing the whole attempt
    out and starting again at the same first address.  On a loaded
    machine the questions' time may still run out first: the next
    attempt, STATE_RETRY seconds later, then starts after the silent
    address."""
    silent = SilentAddress("::1", slow_redis.port)
    try:
        srv = named_store_server(postern, slow_redis, slow_dns)
        tries = []
        for _ in range(3):
            with srv.connect(source=SOURCE) as c:
                c.ehlo()
                t0 = time.monotonic()
                code, text = c.cmd(f"MAIL FROM:<{SENDER}>")
                took = time.monotonic() - t0
                assert code == 250, text
                # The grant, asked of the store on 127.0.0.1: relay.
                code, text = c.cmd("RCPT TO:<friend@elsewhere.example>")
                tries.append((round(took, 3), code))
            if code == 250:
                break
            time.sleep(STATE_RETRY + 0.5)
        assert tries[-1][1] == 250, (tries, srv.log()[-1500:])
        assert slow_redis.commands[-4:] == ["EVAL", "GET", "EVAL", "EVAL"], \
            slow_redis.commands
        print(f"\nfigure: MAIL answered in s, RCPT code, per try: {tries}")
    finally:
        silent.close()


@pytest.mark.parametrize("slow_redis", [(0.0,)], indirect=True)
@pytest.mark.parametrize("slow_dns", [(0.0, {})], indirect=True)
def test_a_name_that_does_not_exist_fails_closed(postern, slow_redis,
                                                 slow_dns):
    srv = named_store_server(postern, slow_redis, slow_dns)
    with srv.connect(source=SOURCE) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, text = c.cmd("RCPT TO:<friend@elsewhere.example>")
        assert code == 554, text
        assert c.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
    srv.wait_log(r"state: redis down \(cannot resolve redis\.test: no such "
                 r"domain\)")
    assert slow_redis.commands == [], slow_redis.commands


@pytest.mark.parametrize("slow_redis", [(0.0,)], indirect=True)
@pytest.mark.parametrize("slow_dns", [(0.0, {"redis.test": ["127.0.0.1"]})],
                         indirect=True)
def test_the_resolver_directive_serves_the_store_name(postern, slow_redis,
                                                      slow_dns):
    # No mount namespace: only the directive leads the look-up here.
    srv = postern(extra=[f"state redis://redis.test:{slow_redis.port}/0",
                         "pop-before-smtp 60s", f"resolver {slow_dns.addr}"],
                  users=USERS, workers=1)
    with srv.connect(source=SOURCE) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, text = c.cmd("RCPT TO:<friend@elsewhere.example>")
        assert code == 250, text
    assert ("redis.test", 1) in slow_dns.questions, slow_dns.questions
    assert slow_redis.commands == ["EVAL", "GET", "EVAL", "EVAL"], \
        slow_redis.commands
    assert "state: redis down" not in srv.log()


@pytest.mark.parametrize("slow_redis", [(DELAY, 1, True)], indirect=True)
def test_logins_do_not_wait_for_each_other_on_a_slow_store(slow_redis):
    """The auth process asks the store too (is the address blocked, when
    the login starts and again when its verdict is in) without waiting
    for it: logins that arrive together are answered together, not one
    store round trip after another."""
    import base64
    from test_auth import PASSWORD, make_server
    srv = make_server(extra=[f"state {slow_redis.url}"],
                      sub_opts="cleartext-auth loopback")
    n = 8
    ir = base64.b64encode(f"\0hoge\0{PASSWORD}".encode()).decode()
    try:
        # The password in the cache first, so that only the store is
        # waited for below.
        with srv.connect(srv.sub_port) as c:
            c.ehlo()
            assert c.cmd(f"AUTH PLAIN {ir}")[0] == 235
        asked = slow_redis.commands.count("TTL")
        clients = [srv.connect(srv.sub_port) for _ in range(n)]
        for c in clients:
            c.ehlo()
        t0 = time.monotonic()
        for c in clients:
            c.send(f"AUTH PLAIN {ir}\r\n")
        waits = []
        for c in clients:
            code, text = c.reply()
            assert code == 235, text
            waits.append(time.monotonic() - t0)
            c.close()
        assert slow_redis.commands.count("TTL") - asked == 2 * n
        # One after another, the last would wait n round trips.
        assert max(waits) < n * DELAY / 2, [round(w, 3) for w in waits]
        assert "state: redis down" not in srv.log()
    finally:
        finish_checked(srv)


# What postern writes with: the rate and failure scripts, the grant.
WRITES = ("EVAL", "EVALSHA", "SET", "INCR", "INCRBY", "EXPIRE")


@pytest.mark.parametrize("slow_redis", [(0.0, 1, False, WRITES)],
                         indirect=True)
def test_a_store_that_refuses_writes_does_not_let_guesses_go_on(slow_redis):
    """After a failover the old primary, now a replica, still answers
    reads (TTL: the address is not blocked) but refuses every write, so
    no failure is counted in it.  The refusal counts as the store being
    down (the breaker: logins meanwhile get a temporary error without a
    check), and the failure is counted by the auth process alone: each
    checked guess waits longer than the one before, and the third blocks
    the address on this node, right password or not."""
    import base64
    from test_auth import PASSWORD, make_server

    def auth(password):
        ir = base64.b64encode(f"\0hoge\0{password}".encode()).decode()
        with srv.connect(srv.sub_port) as c:
            c.ehlo()
            t0 = time.monotonic()
            code, text = c.cmd(f"AUTH PLAIN {ir}")
            return code, text, time.monotonic() - t0

    srv = make_server(extra=[f"state {slow_redis.url}",
                             "auth-throttle 3 60s"],
                      sub_opts="cleartext-auth loopback")
    answers = []
    try:
        # Three checked guesses take 1 + 2 + 3 s, with the breaker's
        # 3 s between them; the loop stops at the block, or at a fourth
        # checked guess (guessing without end).
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            code, text, took = auth("guess")
            answers.append((code, round(took, 2)))
            if code == 421 or [c for c, _ in answers].count(535) > 3:
                break
            if code == 454:
                assert "4.7.0" in text, text
                time.sleep(0.2)
        checked = [took for code, took in answers if code == 535]
        assert len(checked) == 3, answers
        for n, took in enumerate(checked, 1):
            assert took >= n - 0.1, answers        # 1 s, 2 s, 3 s
        assert answers[-1][0] == 421, answers
        assert {code for code, _ in answers} == {535, 454, 421}, answers
        # The right password is refused too, without asking the store.
        code, text, _ = auth(PASSWORD)
        assert code == 421 and "4.7.0" in text, text
        assert "auth ok user=hoge" not in srv.log()
        srv.wait_log(r"authd: auth failed user=hoge address=127\.0\.0\.1 "
                     r"mech=PLAIN failures=3 blocked")
        # The store was asked (reads answered, writes refused) ...
        assert "TTL" in slow_redis.commands, slow_redis.commands
        assert slow_redis.commands.count("EVAL") == 3, slow_redis.commands
        # ... and its outage logged once, not per guess, nor as over
        # when a read went through.
        log = srv.log()
        assert re.search(r"state: redis down \(READONLY You can't write",
                         log), log
        assert log.count("state: redis down") == 1, log
        assert "state: redis back" not in log
        print(f"\nfigure: answers (code, seconds) {answers}")
    finally:
        finish_checked(srv)
