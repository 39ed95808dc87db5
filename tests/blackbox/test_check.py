"""`postern check HOST` (issue 8) against servers made by the harness: a
safe configuration passes every check; an open relay (`mynetworks
0.0.0.0/0`) and an open submission port (`auth optional`) are FAILs;
--json is machine-readable; exit 0/1/2/64.  Nothing is ever sent: the
queue stays empty."""
import base64
import json
import re
import subprocess
import time

import pytest

from conftest import BIN, Server, TrickleServer, _finish_all, free_port
from fakeserver import FakeServer

PASSWORD = "correct horse 42"
CHECK_TIMEOUT = 120


def make_server(extra=(), sub_opts="", pop3=False):
    srv = Server(extra=[f"listen submissions on 127.0.0.1 port {free_port()}"]
                 + list(extra), users=[])
    srv.ssl_port = int(re.search(r"listen submissions on 127.0.0.1 port (\d+)",
                                 srv.conf.read_text()).group(1))
    if sub_opts:
        line = f"listen submission on 127.0.0.1 port {srv.sub_port}"
        srv.conf.write_text(srv.conf.read_text().replace(
            line, f"{line} {sub_opts}"))
    if pop3:
        srv.pop3_port = free_port()
        with open(srv.conf, "a") as f:
            f.write(f"listen pop3 on 127.0.0.1 port {srv.pop3_port}\n"
                    f"mailboxes {srv.dir / 'mail'}\n")
    r = subprocess.run([BIN, "user", "-c", str(srv.conf), "add", "hoge",
                        "--password-stdin", "--address", "hoge@example.test"],
                       input=PASSWORD + "\n", capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return srv.start()


@pytest.fixture
def servers():
    made = []

    def make(**kw):
        s = make_server(**kw)
        made.append(s)
        return s

    yield make
    problems = _finish_all(made)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def ports(srv):
    return (f"smtp={srv.smtp_port},submission={srv.sub_port},"
            f"submissions={srv.ssl_port}")


def check(srv, *args, password=None, portspec=None):
    cmd = [BIN, "check", "127.0.0.1", "--ports", portspec or ports(srv),
           "--local-rcpt", "hoge@example.test", "--timeout", "5", *args]
    return subprocess.run(cmd, input=password, capture_output=True,
                          text=True, timeout=CHECK_TIMEOUT)


def verdicts(out):
    """{(service, check): [verdicts]} from --json output."""
    res = json.loads(out)
    assert isinstance(res, list) and res
    got = {}
    for r in res:
        assert set(r) >= {"host", "port", "service", "check", "verdict",
                          "detail", "advice"}, r
        assert r["verdict"] in ("PASS", "INFO", "WARN", "FAIL"), r
        got.setdefault((r["service"], r["check"]), []).append(r["verdict"])
    return res, got


def test_safe_server_passes_everything(servers):
    srv = servers()
    r = check(srv, "--user", "hoge", "--password-stdin",
              password=PASSWORD + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout, r.stdout
    out = r.stdout
    # the telnet session of the documents, line by line
    assert re.search(r"^PASS .*/smtp +banner +220 ", out, re.M), out
    assert re.search(r"^PASS .*/submission +mail-before-auth .*530 5\.7\.0",
                     out, re.M), out
    assert re.search(r"^PASS .*/submission +auth-before-tls", out, re.M), out
    assert re.search(r"^PASS .*/submission +starttls +TLSv1\.[23] ", out,
                     re.M), out
    assert re.search(r"^PASS .*/submissions +implicit-tls +TLSv1", out,
                     re.M), out
    assert re.search(r"^PASS .*/smtp +local-rcpt", out, re.M), out
    assert len(re.findall(r"^PASS .*/smtp +open-relay", out, re.M)) == 6, out
    assert re.search(r"^PASS .*/submission +auth-login .*235", out, re.M), out
    assert re.search(r"^PASS .*/submissions +test-transaction", out,
                     re.M), out
    # the self-signed certificate is a warning with advice, not a failure
    assert re.search(r"^WARN .*cert-trust +self-signed", out, re.M), out
    assert "-> clients that verify" in out
    # "nothing is sent": no DATA, nothing queued
    assert srv.queue_ids() == [] and srv.incoming() == []
    assert "data=" not in " ".join(e[2] for e in srv.events("disconnect"))


def test_json_output(servers):
    srv = servers()
    r = check(srv, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    res, got = verdicts(r.stdout)
    assert got[("submission", "mail-before-auth")] == ["PASS"]
    assert got[("submissions", "mail-before-auth")] == ["PASS"]
    assert got[("smtp", "open-relay")] == ["PASS"] * 6
    assert got[("smtp", "local-rcpt")] == ["PASS"]
    assert all(x["host"] == "127.0.0.1" for x in res)
    assert {x["port"] for x in res} == {srv.smtp_port, srv.sub_port,
                                        srv.ssl_port}


def test_open_relay_is_a_fail(servers):
    srv = servers(extra=["mynetworks 0.0.0.0/0"])
    r = check(srv, "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    res, got = verdicts(r.stdout)
    assert "FAIL" in got[("smtp", "open-relay")], got
    fail = [x for x in res if x["check"] == "open-relay"
            and x["verdict"] == "FAIL"]
    assert any("<postern-check@example.net>" in x["detail"] for x in fail)
    assert all("open relay" in x["advice"] for x in fail)
    # and in the text form, with its advice
    r = check(srv)
    assert r.returncode == 1
    assert re.search(r"^FAIL .*/smtp +open-relay +RCPT TO:<postern-check@"
                     r"example\.net> accepted without AUTH", r.stdout,
                     re.M), r.stdout
    assert srv.queue_ids() == []


def test_auth_optional_submission_is_a_fail(servers):
    srv = servers(sub_opts="auth optional")
    r = check(srv, "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    res, got = verdicts(r.stdout)
    assert got[("submission", "mail-before-auth")] == ["FAIL"], got
    # 465 is still configured right
    assert got[("submissions", "mail-before-auth")] == ["PASS"], got
    d = [x for x in res if x["service"] == "submission"
         and x["check"] == "mail-before-auth"][0]
    assert "open submission" in d["advice"]


def test_wrong_password_fails_the_login(servers):
    srv = servers()
    r = check(srv, "--user", "hoge", "--password-stdin", "--json",
              password="wrong\n", portspec=f"submission={srv.sub_port}")
    assert r.returncode == 1, r.stdout + r.stderr
    _, got = verdicts(r.stdout)
    assert got[("submission", "auth-login")] == ["FAIL"]
    assert ("submission", "test-transaction") not in got


def test_pop3(servers):
    srv = servers(pop3=True)
    r = check(srv, "--user", "hoge", "--password-stdin", "--json",
              password=PASSWORD + "\n", portspec=f"pop3={srv.pop3_port}")
    assert r.returncode == 0, r.stdout + r.stderr
    _, got = verdicts(r.stdout)
    assert got[("pop3", "banner")] == ["PASS"]
    assert got[("pop3", "stls")] == ["PASS"]
    assert got[("pop3", "pop-login")] == ["PASS"]
    assert got[("pop3", "user-before-tls")] == ["PASS"], r.stdout


def test_unreachable_is_2():
    a, b = free_port(), free_port()
    r = subprocess.run([BIN, "check", "127.0.0.1", "--ports",
                        f"smtp={a},submission={b}", "--timeout", "3"],
                       capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    assert r.returncode == 2, r.stdout + r.stderr
    assert re.search(r"^FAIL .*/smtp +connect +refused", r.stdout, re.M)
    assert "unreachable on every port" in r.stdout
    r = subprocess.run([BIN, "check", "127.0.0.1", "--json", "--ports",
                        f"smtp={a}"], capture_output=True, text=True,
                       timeout=CHECK_TIMEOUT)
    assert r.returncode == 2
    assert json.loads(r.stdout)[0]["verdict"] == "FAIL"


@pytest.mark.parametrize("args", [
    [],
    ["127.0.0.1", "--ports", "2525"],		# not a well-known port
    ["127.0.0.1", "--ports", "imap=143"],
    ["127.0.0.1", "--user", "hoge"],		# no --password-stdin
    ["127.0.0.1", "--timeout", "0"],
    ["127.0.0.1", "--bogus"],
    ["127.0.0.1", "--from", "not-an-address"],
])
def test_usage_is_64(args):
    r = subprocess.run([BIN, "check", *args], capture_output=True,
                       text=True, timeout=30, input="")
    assert r.returncode == 64, (args, r.stdout, r.stderr)
    assert r.stderr


class ListeningFake(FakeServer):
    """A submission server that offers AUTH in the clear and no
    STARTTLS, and keeps every line it is sent.  With scram_iterations,
    it offers SCRAM-SHA-256 and its challenge asks for that many
    iterations (RFC 5802 "i="); unproved: it takes the client's proof
    with 235 without proving itself (no server-final-message)."""

    def __init__(self, host, scram_iterations=None, unproved=False):
        self.iterations = scram_iterations
        self.unproved = unproved
        self.lines = []
        super().__init__(host, backlog=8)

    def accepted(self, c):      # serially: the lines of each stay together
        with c:
            c.settimeout(5)
            c.sendall(b"220 fake ESMTP\r\n")
            buf = b""
            in_auth = False
            try:
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                    while b"\r\n" in buf:
                        line, buf = buf.split(b"\r\n", 1)
                        self.lines.append(line.decode("latin-1"))
                        verb = line[:4].upper()
                        if in_auth:         # "*", or a proof
                            in_auth = False
                            c.sendall(b"235 2.7.0 ok\r\n"
                                      if self.unproved and line != b"*"
                                      else b"535 5.7.8 no\r\n")
                        elif verb == b"EHLO":
                            c.sendall(b"250-fake\r\n250 AUTH " + (
                                b"SCRAM-SHA-256" if self.iterations
                                else b"PLAIN LOGIN") + b"\r\n")
                        elif verb == b"AUTH" and self.iterations:
                            first = base64.b64decode(line.split()[2])
                            nonce = first.split(b",r=", 1)[1]
                            c.sendall(b"334 " + base64.b64encode(
                                b"r=" + nonce + b"srv,s=" +
                                base64.b64encode(b"0123456789abcdef") +
                                b",i=%d" % self.iterations) + b"\r\n")
                            in_auth = True
                        elif verb == b"AUTH":
                            c.sendall(b"235 2.7.0 ok\r\n")
                        elif verb == b"MAIL":
                            c.sendall(b"530 5.7.0 Authentication "
                                      b"required\r\n")
                        elif verb == b"QUIT":
                            c.sendall(b"221 bye\r\n")
                        else:
                            c.sendall(b"250 ok\r\n")
            except OSError:
                pass


def test_no_password_goes_to_a_server_without_tls():
    """--user: the password is sent only inside TLS to a verified
    certificate (or to a loopback peer): a server on the path that
    offers AUTH in the clear, or poses as the real one, must not get
    it."""
    from test_auth import own_netns
    with own_netns(["10.99.0.1/24"]):
        fake = ListeningFake("10.99.0.1")
        try:
            r = subprocess.run(
                [BIN, "check", "10.99.0.1", "--ports",
                 f"submission={fake.port}", "--timeout", "5", "--user",
                 "alice", "--password-stdin"], input="s3cret-pw\n",
                capture_output=True, text=True, timeout=CHECK_TIMEOUT)
        finally:
            fake.close()
    assert any(l.upper().startswith("EHLO") for l in fake.lines), fake.lines
    assert not any(l.upper().startswith("AUTH") for l in fake.lines), \
        fake.lines
    assert re.search(r"^FAIL .*auth-login +credentials not sent: no TLS",
                     r.stdout, re.M), r.stdout


def check_login_against(fake):
    """`postern check` logging in on the fake's submission port; the
    fake is closed afterwards (its lines stay)."""
    try:
        return subprocess.run(
            [BIN, "check", "127.0.0.1", "--ports", f"submission={fake.port}",
             "--timeout", "5", "--user", "alice", "--password-stdin"],
            input="s3cret-pw\n", capture_output=True, text=True,
            timeout=CHECK_TIMEOUT)
    finally:
        fake.close()


@pytest.mark.parametrize("iterations", [1, 4095, 10**7])
def test_scram_iteration_count_out_of_bounds_is_refused(iterations):
    """A SCRAM challenge asking for fewer than RFC 7677's 4096
    iterations (a proof cheap to crack offline), or for so many that
    computing the proof would stall the check, gets no proof: a FAIL
    that says why."""
    fake = ListeningFake("127.0.0.1", scram_iterations=iterations)
    r = check_login_against(fake)
    auth = [i for i, l in enumerate(fake.lines) if l.upper().startswith(
        "AUTH SCRAM-SHA-256 ")]
    assert auth, fake.lines
    assert fake.lines[auth[0] + 1] == "*", fake.lines   # no proof
    want = (r"fewer than the 4096 RFC 7677 requires" if iterations < 4096
            else r"more than 1000000 SCRAM iterations")
    assert re.search(r"^FAIL .*auth-login +AUTH SCRAM-SHA-256: bad server "
                     r"challenge: the server asks for .*" + want, r.stdout,
                     re.M), r.stdout
    assert r.returncode == 1, r.stdout + r.stderr


def test_scram_success_without_the_servers_signature_is_a_fail():
    """A 235 right after our proof, without the server-final-message
    that proves the server knows the password (RFC 5802 section 3), is
    no login: anyone can say 235."""
    fake = ListeningFake("127.0.0.1", scram_iterations=4096, unproved=True)
    r = check_login_against(fake)
    assert re.search(r"^FAIL .*auth-login +AUTH SCRAM-SHA-256: accepted "
                     r"without the server's signature", r.stdout,
                     re.M), r.stdout
    assert not re.search(r"^PASS .*auth-login", r.stdout, re.M), r.stdout


def test_a_trickled_reply_ends_at_the_timeout():
    """--timeout bounds each reply as a whole: an EHLO reply whose every
    line comes within the timeout, an octet at a time, but which would
    take 15 s in all, ends the check of that port at the timeout."""
    data = b"".join(b"250-line%d\r\n" % i for i in range(8)) + b"250 end\r\n"
    srv = TrickleServer(data, 0.15, after=b"EHLO")
    t0 = time.monotonic()
    try:
        r = subprocess.run([BIN, "check", "127.0.0.1", "--ports",
                            f"smtp={srv.port}", "--timeout", "2"],
                           capture_output=True, text=True,
                           timeout=CHECK_TIMEOUT)
    finally:
        took = time.monotonic() - t0
        srv.close()
    assert re.search(r"^FAIL .*/smtp +ehlo +no reply: not complete within "
                     r"2\.0 s", r.stdout, re.M), r.stdout
    assert r.returncode == 1, r.stdout + r.stderr
    assert took < 8, (took, r.stdout)
    assert isinstance(srv.closed, float) and srv.closed < 6, srv.closed
