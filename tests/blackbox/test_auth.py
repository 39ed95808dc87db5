"""Submission: 587 with STARTTLS + AUTH, 465 with implicit TLS, users
managed with `postern user`, and everything that must be refused.
Real clients: smtplib, swaks, curl, msmtp, openssl s_client."""
import base64
import contextlib
import ctypes
import datetime
import os
import re
import selectors
import shutil
import signal
import smtplib
import ssl
import subprocess
import threading
import time

import pytest

from conftest import (BIN, NET_TIMEOUT, CyrusClient, Server, _finish_all,
                      copies_in_memory, free_port, owned_server, queued_id,
                      wait_for)

PASSWORD = "correct horse 42"
TOOL_TIMEOUT = 30


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def postern_user(srv, *args, password=None):
    return subprocess.run([BIN, "user", "-c", str(srv.conf), *args],
                          input=password, capture_output=True, text=True,
                          timeout=60)


def make_server(extra=(), users=(("hoge", ["hoge@example.test"]),),
                sub_opts="", start=True):
    srv = Server(extra=[f"listen submissions on 127.0.0.1 port {free_port()}"]
                 + list(extra), users=[])
    srv.ssl_port = int(re.search(r"listen submissions on 127.0.0.1 port (\d+)",
                                 srv.conf.read_text()).group(1))
    if sub_opts:
        line = f"listen submission on 127.0.0.1 port {srv.sub_port}"
        srv.conf.write_text(srv.conf.read_text().replace(
            line, f"{line} {sub_opts}"))
    for name, addrs in users:
        args = ["add", name, "--password-stdin"]
        for a in addrs:
            args += ["--address", a]
        r = postern_user(srv, *args, password=PASSWORD + "\n")
        assert r.returncode == 0, r.stderr
    return srv.start() if start else srv


@pytest.fixture(scope="module")
def srv():
    s = make_server(extra=["auth-mechanisms PLAIN LOGIN CRAM-MD5 "
                           "SCRAM-SHA-256 DIGEST-MD5"])
    yield from owned_server(s)


def starttls(c, ehlo=True):
    """(EHLO and) STARTTLS on a raw client; returns it wrapped in TLS."""
    if ehlo:
        c.ehlo()
    code, text = c.cmd("STARTTLS")
    assert code == 220 and "2.0.0" in text, text
    c.sock = tls_context().wrap_socket(c.sock)
    return c


def plain_ir(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


# ---------------------------------------------------------------------------

def users_view(srv):
    return srv.spool / "private" / "users.view"


def settle(srv, name, pred):
    """Wait until the auth process has published the change to `name`
    in the workers' view, then for the workers' next look (1 s)."""
    def line():
        for l in users_view(srv).read_text().splitlines():
            if l.startswith(name + ":"):
                return l
        return None
    assert wait_for(lambda: pred(line()), 10), users_view(srv).read_text()
    time.sleep(1.1)


def test_users_file_is_written_safely(srv):
    st = os.stat(srv.users_path)
    assert st.st_mode & 0o777 == 0o600, "only the auth process reads it"
    # The workers read a view without hashes or secrets.
    view = users_view(srv)
    assert view.stat().st_mode & 0o777 == 0o640
    vtext = view.read_text()
    assert "hoge:x:::hoge@example.test:" in vtext
    assert "$y$" not in vtext and "scram" not in vtext
    text = srv.users_path.read_text()
    assert PASSWORD not in text
    line = [l for l in text.splitlines() if l.startswith("hoge:")][0]
    assert line.split(":")[1].startswith("$y$"), "yescrypt hash expected"
    assert "scram-sha-256=" in line and "cram-md5=" in line
    r = postern_user(srv, "show", "hoge")
    assert r.returncode == 0 and "hoge@example.test" in r.stdout
    assert "SCRAM-SHA-256" in r.stdout and "$y$" not in r.stdout


def test_submission_requires_auth_even_from_loopback(srv):
    with srv.connect(srv.sub_port) as c:
        caps = c.ehlo()
        assert "STARTTLS" in caps
        assert "AUTH" not in caps, "AUTH must not be offered before TLS"
        code, text = c.cmd("MAIL FROM:<hoge@example.test>")
        assert (code, "5.7.0") == (530, text.split()[1]), text
        assert "Authentication required" in text
        code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
        assert code == 538 and "5.7.11" in text, text
        code, text = c.cmd("ETRN example.test")
        assert code == 502 and "5.7.0" in text, text


def test_smtp_port_offers_starttls_and_refuses_etrn(srv):
    with srv.connect() as c:
        assert "STARTTLS" in c.ehlo()
        code, text = c.cmd("ETRN example.test")
        assert code == 502 and "5.5.1" in text


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_login(srv, mech):
    body = b"Subject: via smtplib\r\n\r\n.leading dot\r\n\xe3\x81\x82 8bit\r\n"
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=NET_TIMEOUT) as s:
        s.starttls(context=tls_context())
        s.ehlo()
        assert mech in s.esmtp_features["auth"].split()
        s.user, s.password = "hoge", PASSWORD
        code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()),
                         initial_response_ok=(mech == "PLAIN"))
        assert code == 235
        s.mail("hoge@example.test", ["BODY=8BITMIME"])
        s.rcpt("someone@remote.example")     # relay: authenticated
        code, text = s.data(body)
        assert code == 250
    qid = queued_id(text.decode())
    env, content, received = srv.read_queued(qid)
    assert content == body
    assert env["protocol"] == "ESMTPSA" and b"with ESMTPSA" in received
    srv.wait_log(rf"smtp auth user=hoge mech={mech} result=ok")


def test_implicit_tls_465(srv):
    with smtplib.SMTP_SSL("127.0.0.1", srv.ssl_port, context=tls_context(),
                          timeout=NET_TIMEOUT) as s:
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        s.ehlo()
        code, text = s.mail("hoge@example.test")
        assert code == 530, text          # AUTH first, on 465 too
        s.rset()
        s.login("hoge", PASSWORD)
        s.sendmail("hoge@example.test", ["x@remote.example"],
                   b"Subject: 465\r\n\r\nhi\r\n")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks(srv, mech):
    if not shutil.which("swaks"):
        pytest.skip("swaks is not installed")
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{srv.sub_port}",
                        "-tls", "--auth", mech, "--auth-user", "hoge",
                        "--auth-password", PASSWORD, "--from",
                        "hoge@example.test", "--to", "y@remote.example"],
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout and "queued as" in r.stdout


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"])
def test_curl(srv, mech):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    r = subprocess.run(["curl", "-sS", "--ssl-reqd", "-k",
                        f"smtp://127.0.0.1:{srv.sub_port}",
                        "--login-options", f"AUTH={mech}",
                        "-u", f"hoge:{PASSWORD}",
                        "--mail-from", "hoge@example.test",
                        "--mail-rcpt", "z@remote.example", "--upload-file", "-"],
                       input=b"Subject: curl\r\n\r\nhi\r\n",
                       capture_output=True, timeout=TOOL_TIMEOUT)
    assert r.returncode == 0, r.stderr
    srv.wait_log(rf"smtp auth user=hoge mech={mech} result=ok")


def msmtp_login(srv, mech, word):
    """msmtp (GNU SASL) sends a message on 587 after STARTTLS and AUTH
    mech; SKIP where msmtp, or its build's mechanism, is missing."""
    if not shutil.which("msmtp"):
        pytest.skip("msmtp is not installed")
    r = subprocess.run(["msmtp", "--host=127.0.0.1", f"--port={srv.sub_port}",
                        "--tls=on", "--tls-starttls=on", "--tls-certcheck=off",
                        f"--auth={mech.lower()}", "--user=hoge",
                        f"--passwordeval=echo '{PASSWORD}'",
                        "--from=hoge@example.test", f"{word}@remote.example"],
                       input=f"Subject: {word}\r\n\r\nhi\r\n".encode(),
                       capture_output=True, timeout=TOOL_TIMEOUT)
    if b"not support" in r.stderr and mech.split("-")[0].encode() in \
            r.stderr.upper():
        pytest.skip(f"this msmtp build has no {mech}: " + r.stderr.decode())
    assert r.returncode == 0, r.stderr
    srv.wait_log(rf"smtp auth user=hoge mech={mech} result=ok")


def test_msmtp_scram_sha256(srv):
    msmtp_login(srv, "SCRAM-SHA-256", "scram")


def test_msmtp_digest_md5(srv):
    """GNU SASL's client (msmtp's) names the address it connected to in
    the digest-uri: "smtp/127.0.0.1"."""
    msmtp_login(srv, "DIGEST-MD5", "digest")


def cyrus_digest_md5(host, port, service, fqdn):
    """AUTH DIGEST-MD5 after STARTTLS by Cyrus SASL's client, which makes
    the digest-uri "service/fqdn": (code, text, the response's digest)."""
    cl = CyrusClient("DIGEST-MD5", service, fqdn, "hoge", PASSWORD)
    digest = None
    try:
        with smtplib.SMTP(host, port, timeout=NET_TIMEOUT) as s:
            s.starttls(context=tls_context())
            s.ehlo()
            code, text = s.docmd("AUTH", "DIGEST-MD5")
            while code == 334:
                resp = cl.step(text.decode())
                m = re.search(rb"response=([0-9a-f]{32})",
                              base64.b64decode(resp))
                digest = digest or (m and m.group(1).decode())
                code, text = s.docmd(resp)
            return code, text.decode(), digest
    finally:
        cl.close()


@pytest.mark.parametrize("fqdn", ["127.0.0.1", "mail.example.test",
                                  "MAIL.example.TEST", "example.test",
                                  "mail.example.test.", "smtp.example.test",
                                  "localhost"])
def test_digest_md5_uri_names_this_server(srv, fqdn):
    """RFC 2831 section 2.1.2: the digest-uri's host may be the host
    name (absolute or not), a local domain or a host under one (the
    name a client was set up with), the address the client connected
    to, or localhost for a client on this machine."""
    code, text, _ = cyrus_digest_md5("127.0.0.1", srv.sub_port, "smtp", fqdn)
    assert code == 235, (fqdn, text)


def test_digest_md5_uri_for_another_server_or_service():
    """A DIGEST-MD5 response made for another service or another server
    is refused, whatever else is right in it: one line in the log says
    why, under the session's id, without the response.  No secret was
    looked at, so it is not a failed guess: five of them under a limit
    of three failures leave the address free to log in."""
    srv = make_server(extra=["auth-mechanisms PLAIN DIGEST-MD5",
                             "auth-throttle 3 15m"])
    try:
        for service, fqdn, why in [
                ("imap", "127.0.0.1", "names another service"),
                ("smtps", "mail.example.test", "names another service"),
                ("smtp", "mail.other.example", "names another host"),
                ("smtp", "127.0.0.2", "names another host"),
                ("smtp", "::1", "names another host")]:
            code, text, digest = cyrus_digest_md5("127.0.0.1", srv.sub_port,
                                                  service, fqdn)
            assert code == 535 and "5.7.8" in text, (service, fqdn, text)
            uri = f"{service}/{fqdn}"
            m = srv.wait_log(r"^.* ([0-9a-f]{16}) authd: auth refused "
                             r"address=127\.0\.0\.1 mech=DIGEST-MD5: "
                             r"digest-uri \"" + re.escape(uri) + r"\" " + why +
                             r"$")
            sid = m.group(1)
            srv.wait_log(sid + r" smtp connect address=127\.0\.0\.1 ")
            srv.wait_log(sid + r" smtp failed-command .*535 5\.7\.8")
            assert digest and digest not in srv.log(), digest
        # the same client, for this server: in, not blocked
        code, text, _ = cyrus_digest_md5("127.0.0.1", srv.sub_port, "smtp",
                                         "127.0.0.1")
        assert code == 235, text
        assert "failures=" not in srv.log()
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_digest_md5_uri_ipv6_address():
    """Over IPv6 the digest-uri names the address bare (msmtp) or in
    brackets, in any of its spellings; an IPv4 client may not name it."""
    port = free_port()
    srv = make_server(extra=["auth-mechanisms PLAIN DIGEST-MD5",
                             f"listen submission on ::1 port {port}"])
    try:
        for fqdn in ("::1", "[::1]", "0:0:0:0:0:0:0:1"):
            code, text, _ = cyrus_digest_md5("::1", port, "smtp", fqdn)
            assert code == 235, (fqdn, text)
        code, text, _ = cyrus_digest_md5("127.0.0.1", srv.sub_port, "smtp",
                                         "[::1]")
        assert code == 535, text
        if shutil.which("msmtp"):
            r = subprocess.run(
                ["msmtp", "--host=::1", f"--port={port}", "--tls=on",
                 "--tls-starttls=on", "--tls-certcheck=off",
                 "--auth=digest-md5", "--user=hoge",
                 f"--passwordeval=echo '{PASSWORD}'",
                 "--from=hoge@example.test", "d@remote.example"],
                input=b"Subject: digest\r\n\r\nhi\r\n",
                capture_output=True, timeout=TOOL_TIMEOUT)
            assert r.returncode == 0 or b"not support" in r.stderr, r.stderr
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_openssl_s_client_starttls(srv):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    script = (f"EHLO probe.example\r\nAUTH PLAIN {plain_ir('hoge', PASSWORD)}"
              "\r\nQUIT\r\n")
    r = subprocess.run(["openssl", "s_client", "-quiet", "-starttls", "smtp",
                        "-connect", f"127.0.0.1:{srv.sub_port}",
                        "-servername", "mail.example.test"],
                       input=script.encode(), capture_output=True,
                       timeout=TOOL_TIMEOUT)
    out = r.stdout.decode(errors="replace")
    assert "250-AUTH PLAIN LOGIN" in out, out
    assert "235 2.7.0" in out and "221 2.0.0" in out, out
    # The generated certificate is ECDSA P-256 for the host name.
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp",
                        "-connect", f"127.0.0.1:{srv.sub_port}"],
                       input=b"QUIT\r\n", capture_output=True,
                       timeout=TOOL_TIMEOUT)
    out = r.stdout.decode(errors="replace")
    assert "CN = mail.example.test" in out, out
    assert "Peer signature type: ECDSA" in out and "public key is 256 bit" in out, out


def test_bad_credentials_and_protocol_errors(srv):
    with starttls(srv.connect(srv.sub_port)) as c:
        c.ehlo()
        code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', 'wrong')}")
        assert code == 535 and "5.7.8" in text, text
        code, text = c.cmd("AUTH NOSUCH")
        assert code == 504, text
        code, text = c.cmd("AUTH PLAIN !!notbase64!!")
        assert code == 501 and "5.5.2" in text, text
        code, text = c.cmd("AUTH LOGIN")
        assert code == 334 and base64.b64decode(text[4:]) == b"Username:"
        code, text = c.cmd("*")
        assert code == 501 and "5.0.0" in text, text
        code, text = c.cmd("AUTH LOGIN")
        assert code == 334
        code, text = c.cmd("%%%")
        assert code == 501 and "5.5.2" in text, text
        # An empty initial response (RFC 4954 "=") is a response, and an
        # empty PLAIN message is malformed; no challenge follows.
        code, text = c.cmd("AUTH PLAIN =")
        assert code == 501, text
        code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
        assert code == 235, text
        code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
        assert code == 503, text
        code, text = c.cmd("STARTTLS")
        assert code == 503, text
    srv.wait_log(r"authd: auth failed user=hoge address=127\.0\.0\.1 mech=PLAIN")


def test_sender_must_belong_to_user(srv):
    with starttls(srv.connect(srv.sub_port)) as c:
        c.ehlo()
        assert c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")[0] == 235
        code, text = c.cmd("MAIL FROM:<president@example.test>")
        assert code == 553 and "5.7.1" in text and "not owned by user" in text
        code, text = c.cmd("MAIL FROM:<>")
        assert code == 553, text
        code, text = c.cmd("MAIL FROM:<HOGE@Example.Test>")
        assert code == 250, text


def test_starttls_injection_is_discarded(srv):
    """CVE-2011-0411: commands pipelined with STARTTLS in the clear must
    not be executed inside TLS."""
    with srv.connect(srv.sub_port) as c:
        c.ehlo()
        c.send("STARTTLS\r\nRSET\r\nMAIL FROM:<evil@example.test>\r\n")
        code, text = c.reply()
        assert code == 220
        c.buf = b""
        c.sock = tls_context().wrap_socket(c.sock)
        code, text = c.cmd("EHLO after.tls")
        # The first reply inside TLS is EHLO's own, not the RSET's.
        assert code == 250 and text.startswith("250-mail.example.test"), text
        assert "AUTH" in text
        code, text = c.cmd("NOOP")
        assert code == 250 and c.buf == b""


def test_starttls_resets_session(srv):
    with srv.connect() as c:           # port 25 role: AUTH optional
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        starttls(c, ehlo=False)
        code, text = c.cmd("RCPT TO:<hoge@example.test>")
        assert code == 503, "the transaction must not survive STARTTLS"


def test_locked_expired_and_revoked(srv):
    for name in ("locked1", "expired1", "revoked1"):
        r = postern_user(srv, "add", name, "--password-stdin",
                         password=PASSWORD + "\n")
        assert r.returncode == 0, r.stderr
    assert postern_user(srv, "lock", "locked1").returncode == 0
    yesterday = (datetime.date.today() - datetime.timedelta(days=2)).isoformat()
    assert postern_user(srv, "expire", "expired1", yesterday).returncode == 0
    settle(srv, "expired1", lambda l: l and ":" + yesterday + ":" in l)
    for name in ("locked1", "expired1"):
        with starttls(srv.connect(srv.sub_port)) as c:
            c.ehlo()
            code, text = c.cmd(f"AUTH PLAIN {plain_ir(name, PASSWORD)}")
            assert code == 535 and "5.7.8" in text, (name, text)
    # An open session of an account locked meanwhile: refused at MAIL.
    with starttls(srv.connect(srv.sub_port)) as c:
        c.ehlo()
        assert c.cmd(f"AUTH PLAIN {plain_ir('revoked1', PASSWORD)}")[0] == 235
        assert c.cmd("MAIL FROM:<revoked1@example.test>")[0] == 250
        assert c.cmd("RSET")[0] == 250
        assert postern_user(srv, "lock", "revoked1").returncode == 0
        settle(srv, "revoked1", lambda l: l and ":locked:" in l)
        code, text = c.cmd("MAIL FROM:<revoked1@example.test>")
        assert code == 530 and "5.7.0" in text, text
    assert postern_user(srv, "unlock", "locked1").returncode == 0
    settle(srv, "locked1", lambda l: l and ":locked:" not in l)
    with starttls(srv.connect(srv.sub_port)) as c:
        c.ehlo()
        assert c.cmd(f"AUTH PLAIN {plain_ir('locked1', PASSWORD)}")[0] == 235
    r = postern_user(srv, "del", "locked1")
    assert r.returncode == 0 and "locked1:" not in srv.users_path.read_text()
    assert postern_user(srv, "show", "locked1").returncode == 67   # EX_NOUSER


def scram_first(c, user, cnonce="fyko+d2lbbFgONRv9qkxdawL"):
    """SCRAM-SHA-256's first round trip (RFC 7677): the server-first
    attributes, and what the final message needs."""
    bare = f"n={user},r={cnonce}"
    code, text = c.cmd("AUTH SCRAM-SHA-256 " +
                       base64.b64encode(("n,," + bare).encode()).decode())
    assert code == 334, text
    sf = base64.b64decode(text.split()[-1]).decode()
    return bare, sf, dict(kv.split("=", 1) for kv in sf.split(","))


def scram_final(c, password, bare, sf, attrs):
    import hashlib
    import hmac
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                 base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    ck = hmac.new(salted, b"Client Key", "sha256").digest()
    without_proof = f"c=biws,r={attrs['r']}"
    sig = hmac.new(hashlib.sha256(ck).digest(),
                   f"{bare},{sf},{without_proof}".encode(), "sha256").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(ck, sig))).decode()
    return c.cmd(base64.b64encode(
        f"{without_proof},p={proof}".encode()).decode())


def test_scram_tells_nothing_and_uses_the_current_password(srv):
    """SCRAM: an unknown user gets a salt as stable as a real one (a
    fresh one at every attempt would tell who exists), and a password
    changed between the first and the final message makes the old one
    fail, as it does for PLAIN."""
    salts = {}
    for name in ("hoge", "nosuchuser", "hoge", "nosuchuser"):
        with starttls(srv.connect(srv.sub_port)) as c:
            c.ehlo()
            _, _, attrs = scram_first(c, name)
            salts.setdefault(name, set()).add((attrs["s"], attrs["i"]))
            c.cmd("*")
    assert len(salts["hoge"]) == 1 and len(salts["nosuchuser"]) == 1, salts
    assert salts["hoge"] != salts["nosuchuser"]
    assert postern_user(srv, "add", "scrammer", "--password-stdin",
                        password="first password\n").returncode == 0
    settle(srv, "scrammer", lambda l: l is not None)
    with starttls(srv.connect(srv.sub_port)) as c:
        c.ehlo()
        bare, sf, attrs = scram_first(c, "scrammer")
        r = postern_user(srv, "passwd", "scrammer", "--password-stdin",
                         password="second password\n")
        assert r.returncode == 0, r.stderr
        settle(srv, "scrammer", lambda l: l is not None)
        code, text = scram_final(c, "first password", bare, sf, attrs)
        assert code == 535, text
    with starttls(srv.connect(srv.sub_port)) as c:
        c.ehlo()
        bare, sf, attrs = scram_first(c, "scrammer")
        code, text = scram_final(c, "second password", bare, sf, attrs)
        assert code == 334, text                # the server's signature
        assert c.cmd("")[0] == 235


def test_auth_command_line_may_be_12288_octets(srv):
    """RFC 4954 section 4: an AUTH line with its initial response may be
    12288 octets; other commands keep 4096."""
    ir = base64.b64encode(b"\0hoge\0" + b"p" * 6000).decode()
    with starttls(srv.connect(srv.sub_port)) as c:
        c.ehlo()
        code, text = c.cmd(f"AUTH PLAIN {ir}")
        assert code != 500 and "too long" not in text, text
        code, text = c.cmd("NOOP " + "x" * 5000)
        assert code == 500 and "5.5.2" in text, text
        # Past 12288 octets, the reply RFC 4954 gives for an AUTH line.
        code, text = c.cmd("AUTH PLAIN " + "A" * 13000)
        assert code == 500 and "5.5.6" in text, text
        code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
        assert code == 235, text


def test_auth_on_port_25_sends_as_the_user(srv):
    """Port 25 offers AUTH inside TLS (auth optional): a session that
    authenticates there sends as its user, as on 587, so a stolen
    password cannot send as anyone from port 25 either."""
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=NET_TIMEOUT) as s:
        s.starttls(context=tls_context())
        s.login("hoge", PASSWORD)
        code, text = s.mail("ceo@bank.example")
        assert code == 553 and b"5.7.1" in text, text
        assert s.rset()[0] == 250
        assert s.mail("hoge@example.test")[0] == 250


def test_mail_from_auth_parameter(srv):
    """RFC 4954 section 5: where AUTH is offered, MAIL FROM takes an
    AUTH= parameter (a relay passing on who submitted the message); it
    is taken as AUTH=<>, but its xtext must be well formed."""
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=NET_TIMEOUT) as s:
        s.starttls(context=tls_context())
        s.login("hoge", PASSWORD)
        for value in ("<>", "hoge+40example.test"):
            code, text = s.mail("hoge@example.test", [f"AUTH={value}"])
            assert code == 250, (value, text)
            assert s.rset()[0] == 250
        code, text = s.mail("hoge@example.test", ["AUTH=a+zz"])
        assert code == 501 and b"5.5.4" in text, text


def test_sasl_responses_sent_ahead_stay_out_of_the_log(srv):
    """A client that sends its LOGIN responses without waiting for the
    334s, to an AUTH that is refused: they arrive as commands, and the
    password in base64 must not reach the failed-command log."""
    secret = base64.b64encode(b"ahead-" + os.urandom(9)).decode()
    with srv.connect(srv.sub_port) as c:       # no TLS: AUTH refused
        c.ehlo()
        c.send("AUTH LOGIN\r\n" + base64.b64encode(b"hoge").decode() +
               "\r\n" + secret + "\r\n")
        replies = [c.reply()[0] for _ in range(3)]
        assert replies[0] != 334 and replies[1:] == [500, 500], replies
    srv.wait_log(r"failed-command command=\"\(one base64 word of "
                 + str(len(secret)) + r" octets, not shown\)\"")
    assert secret not in srv.log()


def test_user_added_while_running(srv):
    r = postern_user(srv, "add", "newbie", "--password-stdin", "--address",
                     "newbie@example.test", password="n3w password\n")
    assert r.returncode == 0, r.stderr
    settle(srv, "newbie", lambda l: l is not None)
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=NET_TIMEOUT) as s:
        s.starttls(context=tls_context())
        s.login("newbie", "n3w password")
        s.sendmail("newbie@example.test", ["newbie@example.test"],
                   b"Subject: hi\r\n\r\nhi\r\n")


def test_user_command_errors(srv):
    assert postern_user(srv, "add", "bad name!").returncode != 0
    r = postern_user(srv, "add", "hoge", "--password-stdin", password="x\n")
    assert r.returncode != 0 and "already exists" in r.stderr
    r = postern_user(srv, "add", "x1", "--address", "not-an-address",
                     "--password-stdin", password="x\n")
    assert r.returncode != 0 and "not a mail address" in r.stderr
    r = postern_user(srv, "expire", "hoge", "31/12/2030")
    assert r.returncode != 0
    # Dates and addresses the users file's reader would refuse (or read
    # as "never") are refused before they are written: one such line
    # would stop every later command and the server's reloads.
    before = srv.users_path.read_text()
    for date in ("1969-12-31", "1960-06-01", "0999-01-01", "2024-02-30"):
        r = postern_user(srv, "expire", "hoge", date)
        assert r.returncode != 0 and "from 1970 on" in r.stderr, (date, r)
    for addr in ('"c:d"@example.test', '"c,d"@example.test'):
        r = postern_user(srv, "add", "x2", "--address", addr,
                         "--password-stdin", password="x\n")
        assert r.returncode != 0 and "users file can hold" in r.stderr, r
    assert srv.users_path.read_text() == before
    assert postern_user(srv, "expire", "hoge", "2099-01-01").returncode == 0
    assert postern_user(srv, "expire", "hoge", "never").returncode == 0
    r = postern_user(srv, "list")
    assert r.returncode == 0 and "hoge" in r.stdout


def test_login_name_case_is_the_stored_one(srv):
    """The login lookup ignores case; what the session then uses (its log,
    the sender check, the per-user rate limit) is the stored name, so
    that "HOGE" is not a second account with a limit of its own."""
    with starttls(srv.connect(srv.sub_port)) as c:
        c.ehlo()
        code, text = c.cmd(f"AUTH PLAIN {plain_ir('HoGe', PASSWORD)}")
        assert code == 235, text
        assert c.cmd("MAIL FROM:<hoge@example.test>")[0] == 250
    srv.wait_log(r"authd: auth ok user=hoge address=127\.0\.0\.1 "
                 r"mech=PLAIN")
    assert "user=HoGe" not in srv.log()


# ---------------------------------------------------------------------------
# servers of their own

def test_brute_force_is_throttled_then_blocked():
    srv = make_server(extra=["auth-throttle 3 60s"])
    try:
        t0 = time.monotonic()
        with starttls(srv.connect(srv.sub_port)) as c:
            c.ehlo()
            for i in range(3):
                code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', 'guess%d' % i)}")
                assert code == 535, text
            # Each failure was answered a second later than the one before.
            assert time.monotonic() - t0 >= 1 + 2 + 3 - 0.5
            code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
            assert code == 421 and "4.7.0" in text, text
            assert c.closed()
        # Even the right password is refused from that address for now.
        with starttls(srv.connect(srv.sub_port)) as c:
            c.ehlo()
            code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
            assert code == 421, text
        srv.wait_log(r"authd: auth failed user=hoge address=127\.0\.0\.1 "
                     r"mech=PLAIN failures=3 blocked")
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_a_login_does_not_reset_the_count_of_guesses():
    """One account's login from an address must not clear the failures
    counted there: its owner could otherwise guess another account's
    password without end, two guesses and one login at a time."""
    srv = make_server(extra=["auth-throttle 3 60s"],
                      users=(("hoge", ["hoge@example.test"]),
                             ("fuga", ["fuga@example.test"])))
    def login(user, password):
        with starttls(srv.connect(srv.sub_port)) as c:
            c.ehlo()
            return c.cmd(f"AUTH PLAIN {plain_ir(user, password)}")

    try:
        for user, password, want in (("fuga", "g0", 535), ("fuga", "g1", 535),
                                     ("hoge", PASSWORD, 235),
                                     ("fuga", "g2", 535)):
            code, text = login(user, password)
            assert code == want, (user, text)
        srv.wait_log(r"authd: auth failed user=fuga address=127\.0\.0\.1 "
                     r"mech=PLAIN failures=3 blocked")
        code, text = login("fuga", PASSWORD)
        assert code == 421 and "4.7.0" in text, text
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_guesses_sent_in_parallel_do_not_let_the_right_one_in():
    """The block is asked for when a login starts and again at its
    verdict: guesses sent at once all start before any failure is
    counted, and the right password among them, verified last, must
    not get in once the guesses before it have set the block."""
    srv = make_server(extra=["auth-throttle 3 60s", "workers 1"],
                      sub_opts="cleartext-auth loopback")
    clients = []
    try:
        assert wait_for(lambda: authd_pid(srv) is not None, 10), srv.log()
        pid = authd_pid(srv)
        for _ in range(10):
            c = srv.connect(srv.sub_port)
            clients.append(c)
            c.ehlo()
        # Nine wrong passwords, then the right one, queued in this order
        # for the auth process (one worker, one socket) while it is
        # stopped: it then starts all ten before any is verified, and
        # verifies them (real hashes, milliseconds each) in that order.
        os.kill(pid, signal.SIGSTOP)
        try:
            for i, c in enumerate(clients):
                password = PASSWORD if i == len(clients) - 1 else "guess"
                c.send(f"AUTH PLAIN {plain_ir('hoge', password)}\r\n")
                time.sleep(0.02)
        finally:
            os.kill(pid, signal.SIGCONT)
        code, text = clients[-1].reply()
        assert code == 421 and "4.7.0" in text, text
        srv.wait_log(r"authd: auth refused user=hoge address=127\.0\.0\.1: "
                     r"blocked during its check")
        assert "auth ok user=hoge" not in srv.log()
    finally:
        for c in clients:
            c.close()
        problems = _finish_all([srv])
        assert not problems, problems


@contextlib.contextmanager
def own_netns(addresses):
    """This thread (and what it starts) in a network namespace of its
    own, lo up with the given IPv6 addresses; removed on the way out."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("SKIP: needs root and ip(8) for a network namespace")
    name = f"postern-t{os.getpid()}"
    libc = ctypes.CDLL(None, use_errno=True)
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"],
                       check=True, timeout=10)
        for a in addresses:
            subprocess.run(["ip", "-n", name, "addr", "add", a, "dev", "lo",
                            "nodad"], check=True, timeout=10)
        ns = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if libc.setns(ns, 0x40000000) != 0:        # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(ns)
        try:
            yield
        finally:
            if libc.setns(home, 0x40000000) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        subprocess.run(["ip", "netns", "del", name], timeout=10)


def test_the_throttle_counts_an_ipv6_64_as_one_address():
    """A host given an IPv6 /64 has 2^64 addresses: guesses from several
    of them count together, and another /64 is counted apart."""
    net = "fd00:db8:0:0"
    port = free_port()
    with own_netns([f"{net}::1/64", f"{net}::2/64", f"{net}::3/64",
                    f"{net}::4/64", f"{net}::5/64", "fd00:db8:0:1::2/64"]):
        srv = make_server(extra=["auth-throttle 3 60s",
                                 f"listen submission on {net}::1 port {port}"])

        def login(source, password):
            with smtplib.SMTP(f"{net}::1", port, timeout=NET_TIMEOUT,
                              source_address=(source, 0)) as s:
                s.starttls(context=tls_context())
                s.ehlo()
                return s.docmd("AUTH", f"PLAIN {plain_ir('hoge', password)}")

        try:
            # Three guesses at once, each from its own address of the /64.
            got = {}
            guesses = [threading.Thread(target=lambda a=a: got.__setitem__(
                a, login(a, "guess"))) for a in (f"{net}::2", f"{net}::3",
                                                 f"{net}::4")]
            for t in guesses:
                t.start()
            for t in guesses:
                t.join(NET_TIMEOUT)
            assert [c for c, _ in got.values()] == [535] * 3, got
            srv.wait_log(r"authd: auth failed user=hoge address=fd00:db8::"
                         r"\d mech=PLAIN failures=3 blocked")
            # A fourth address of the same /64: blocked, right password
            # or not.  Another /64 is not.
            code, text = login(f"{net}::5", PASSWORD)
            assert code == 421 and b"4.7.0" in text, text
            code, text = login("fd00:db8:0:1::2", PASSWORD)
            assert code == 235, text
        finally:
            problems = _finish_all([srv])
            assert not problems, problems


def password_forms(user, password):
    """The password as it crosses the wire: itself, in base64 (LOGIN),
    and in PLAIN's response."""
    b = password.encode()
    return [b, base64.b64encode(b),
            base64.b64encode(b"\0" + user.encode() + b"\0" + b)]


def test_a_password_does_not_stay_in_the_servers_memory():
    """After the logins, no process of the server holds the password in
    any form: not the worker's input and line buffers, not OpenSSL's
    record buffer, not the messages to the auth process."""
    if os.geteuid() != 0:
        pytest.skip("SKIP: reading the workers' memory needs root")
    secret = "Zq8-unique-" + base64.b32encode(os.urandom(10)).decode()
    srv = make_server(sub_opts="cleartext-auth loopback", start=False)
    r = postern_user(srv, "passwd", "hoge", "--password-stdin",
                     password=secret + "\n")
    assert r.returncode == 0, r.stderr
    srv.start()
    try:
        for tls in (True, False):
            for mech in ("PLAIN", "LOGIN"):
                with smtplib.SMTP("127.0.0.1", srv.sub_port,
                                  timeout=NET_TIMEOUT) as s:
                    if tls:
                        s.starttls(context=tls_context())
                    s.ehlo()
                    s.user, s.password = "hoge", secret
                    code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()),
                                     initial_response_ok=True)
                    assert code == 235, (tls, mech)
        pids = [srv.pid] + srv.children()
        left = copies_in_memory(pids, password_forms("hoge", secret))
        assert len(pids) >= 3 and not any(left.values()), left
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_workers_hold_no_hash_secret_or_smarthost_password():
    """The master reads the users file (to publish the first view) and
    the smarthost's credentials (for the queue manager) before it forks:
    the workers, which face the network, must start with neither in
    their memory, freed or not."""
    if os.geteuid() != 0:
        pytest.skip("SKIP: reading the workers' memory needs root")
    relay_secret = "relay-" + base64.b32encode(os.urandom(10)).decode()
    srv = make_server(extra=["auth-mechanisms PLAIN LOGIN CRAM-MD5 "
                             "SCRAM-SHA-256 DIGEST-MD5"], start=False)
    r = postern_user(srv, "passwd", "hoge", "--password-stdin",
                     password=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    cred = srv.dir / "relay.auth"
    cred.write_text(f"relayuser {relay_secret}\n")
    os.chmod(cred, 0o600)
    with open(srv.conf, "a") as f:
        f.write(f"relay via 127.0.0.1:{free_port()} auth {cred}\n")
    # What the users file holds that a worker must not: the hash and
    # each mechanism's secret (as good as the password for CRAM-MD5).
    fields = srv.users_path.read_text().splitlines()[-1].split(":")
    needles = [fields[1].encode()] + [
        kv.split("=", 1)[1].encode() for kv in fields[5].split(";")]
    assert len(needles) >= 4, fields
    srv.start()
    try:
        workers = srv.workers()
        assert len(workers) == 2, workers
        left = copies_in_memory(workers, needles + [relay_secret.encode()])
        assert not any(left.values()), left
        # The control: the auth process does hold them.
        others = set(srv.children()) - set(workers)
        held = copies_in_memory(others, needles[:1])
        assert any(held.values()), held
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_cleartext_auth_from_loopback_when_allowed():
    srv = make_server(sub_opts="cleartext-auth loopback")
    try:
        with srv.connect(srv.sub_port) as c:
            assert "AUTH PLAIN LOGIN" in c.ehlo()
            code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
            assert code == 235, text
            # STARTTLS forgets the login made in the clear (RFC 3207
            # section 4.2): MAIL needs a new AUTH, which is offered.
            starttls(c, ehlo=False)
            assert "AUTH PLAIN" in c.ehlo()
            code, text = c.cmd("MAIL FROM:<hoge@example.test>")
            assert code == 530 and "5.7.0" in text, text
            code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
            assert code == 235, text
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_sender_check_header():
    srv = make_server(sub_opts="sender-check header")
    try:
        with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=NET_TIMEOUT) as s:
            s.starttls(context=tls_context())
            s.login("hoge", PASSWORD)
            s.mail("hoge@example.test")
            s.rcpt("x@remote.example")
            code, resp = s.data(b"From: The Boss <boss@example.test>\r\n"
                                b"Subject: forged\r\n\r\nhi\r\n")
            assert code == 550 and b"not owned" in resp, resp
            # Ways around a check of the first From: field only, with a
            # small buffer, or an exact "From:" (all found by review).
            pad = ", ".join(["hoge@example.test"] * 80)
            forged = [
                b"From: <hoge@example.test>\r\nFrom: boss@example.test\r\n",
                b"From : boss@example.test\r\n",
                b"From: " + pad.encode() + b", boss@example.test\r\n",
                b"X-Pad: " + b"y" * 900 + b"\r\n" + (b"X-Pad: " + b"y" * 990
                                                   + b"\r\n") * 70 +
                b"From: boss@example.test\r\n",
                b"From: hoge@example.test (a, comment\r\n"
                b" with boss@example.test), boss@example.test\r\n",
            ]
            fine = [
                b"From: Hoge <hoge@example.test>\r\n",
                b'From: "Hoge, the Boss" <hoge@example.test>\r\n',
                b"From: hoge@example.test (Hoge, at work)\r\n",
                b"From: hoge@example.test\r\n\r\nFrom: boss@example.test\r\n",
            ]
            for head, want in ([(h, 550) for h in forged] +
                               [(h, 250) for h in fine]):
                s.mail("hoge@example.test")
                s.rcpt("x@remote.example")
                code, resp = s.data(head + b"Subject: t\r\n\r\nhi\r\n")
                assert code == want, (head[:80], resp)
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_certificate_reloaded_on_sighup():
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    srv = Server(extra=[], users=[])
    cert, key = srv.dir / "cert.pem", srv.dir / "key.pem"

    def make_cert(cn):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2",
                        "-subj", f"/CN={cn}"], check=True,
                       capture_output=True, timeout=TOOL_TIMEOUT)

    def served_cn():
        with srv.connect(srv.sub_port) as c:
            starttls(c)
            der = c.sock.getpeercert(binary_form=True)
        r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout",
                            "-subject"], input=der, capture_output=True,
                           timeout=TOOL_TIMEOUT)
        return r.stdout.decode()

    make_cert("first.example.test")
    srv.conf.write_text(srv.conf.read_text() +
                        f"tls cert {cert} key {key}\n")
    srv.start()
    held = None
    try:
        assert "first.example.test" in served_cn()
        # A session that stays open across the reload (issue 7).
        held = starttls(srv.connect(srv.sub_port))
        held.ehlo()
        make_cert("second.example.test")
        r = postern_user(srv, "add", "late", "--password-stdin", "--address",
                         "late@example.test", password="l8te pass\n")
        assert r.returncode == 0, r.stderr
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log(r"master: reloaded")
        assert wait_for(lambda: "second.example.test" in served_cn(), 10)
        # The new user logs in on a new connection...
        with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=NET_TIMEOUT) as s:
            s.starttls(context=tls_context())
            s.login("late", "l8te pass")
            s.sendmail("late@example.test", ["someone@example.org"],
                       b"Subject: after reload\r\n\r\nhi\r\n")
        # ...and the old session was not dropped: it still works.  (Its
        # worker reconnects to the new auth process within a second;
        # until then AUTH gets 454, which clients retry.)
        def held_auth():
            code, text = held.cmd(
                f"AUTH PLAIN {plain_ir('late', 'l8te pass')}")
            assert code in (235, 454), text
            return code == 235
        assert wait_for(held_auth, 10, interval=0.5)
        assert held.cmd("MAIL FROM:<late@example.test>")[0] == 250
        assert held.cmd("RCPT TO:<late@example.test>")[0] == 250
        assert held.cmd("DATA")[0] == 354
        code, text = held.cmd("Subject: held\r\n\r\nstill here\r\n.")
        assert code == 250, text
        # A draining worker lets the transaction finish, then ends the
        # session politely (421 4.3.2); a client reconnects for more.
        assert held.cmd("QUIT")[0] in (221, 421)
    finally:
        if held is not None:
            held.close()
        problems = _finish_all([srv])
        assert not problems, problems


# A burst of logins larger than what one worker's socket to the auth
# process holds: a non-blocking SOCK_SEQPACKET pair takes about 280
# small messages before send() says EAGAIN (the default wmem).
BURST = 400


def authd_pid(srv):
    """The running auth process: the last one that said it started."""
    return srv.helper_pid("authd", "authd: verifying")


def burst_server():
    """One worker, so that every session shares its one connection to
    the auth process; no limit per address or on failures, so that only
    that connection decides what the sessions get."""
    return make_server(extra=["workers 1", "max-connections-per-ip 0",
                              "auth-throttle 10000 60s"],
                       sub_opts="cleartext-auth loopback")


def burst_clients(srv, clients):
    """BURST sessions after EHLO, added to clients (closed by the
    caller), once the worker has reached the auth process (within a
    second of its start: until then a login gets 454)."""
    def logged_in():
        with srv.connect(srv.sub_port) as c:
            c.ehlo()
            code, text = c.cmd(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}")
            assert code in (235, 454), text
            return code == 235
    assert wait_for(logged_in, 10, interval=0.2), srv.log()
    for _ in range(BURST):
        c = srv.connect(srv.sub_port)
        clients.append(c)
        c.ehlo()


def next_codes(clients, timeout):
    """The code of each client's next reply line, all read together; None
    for a client that said nothing within timeout, "EOF" for one that
    closed."""
    codes = [None] * len(clients)
    sel = selectors.DefaultSelector()
    for i, c in enumerate(clients):
        if b"\r\n" in c.buf:
            codes[i] = int(c.line()[:3])
        else:
            sel.register(c.sock, selectors.EVENT_READ, i)
    deadline = time.monotonic() + timeout
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(deadline - time.monotonic()):
            c = clients[key.data]
            chunk = c.sock.recv(65536)
            c.buf += chunk
            if not chunk or b"\r\n" in c.buf:
                codes[key.data] = int(c.line()[:3]) if chunk else "EOF"
                sel.unregister(c.sock)
    sel.close()
    return codes


def test_a_burst_of_logins_waits_for_a_stopped_auth_process():
    """While the auth process is stopped, the logins past what the
    worker's socket holds wait in the worker and go out when there is
    room again.  (The binary before took the full socket for a lost
    auth process: every login on the worker got 454.)"""
    srv = burst_server()
    clients = []
    try:
        burst_clients(srv, clients)
        pid = authd_pid(srv)
        assert pid is not None, srv.log()
        os.kill(pid, signal.SIGSTOP)
        try:
            for c in clients:
                c.send(f"AUTH PLAIN {plain_ir('hoge', PASSWORD)}\r\n")
            # No answer can come while it is stopped, not even a 454.
            codes = next_codes(clients, 1)
            assert codes == [None] * BURST, sorted(set(map(str, codes)))
        finally:
            os.kill(pid, signal.SIGCONT)
        codes = next_codes(clients, 15)
        assert codes == [235] * BURST, {str(k): codes.count(k)
                                        for k in set(codes)}
        assert "auth: send" not in srv.log()
        assert "connection to the auth process lost" not in srv.log()
    finally:
        for c in clients:
            c.close()
        problems = _finish_all([srv])
        assert not problems, problems


def test_answers_wait_for_a_stopped_worker():
    """The auth process keeps the answers a stopped worker cannot take
    yet and sends them when it runs again.  (The binary before logged
    "authd: send" and dropped them: those sessions waited for an answer
    that never came.)  Wrong CRAM-MD5 responses cost no hash, so they
    are all counted at once, and each is answered at most five seconds
    later: while the worker is stopped."""
    srv = burst_server()
    clients = []
    wrong = base64.b64encode(b"hoge " + b"0" * 32).decode()
    try:
        (worker,) = srv.workers()
        burst_clients(srv, clients)
        for c in clients:
            c.send("AUTH CRAM-MD5\r\n")
        codes = next_codes(clients, 10)
        assert codes == [334] * BURST, sorted(set(map(str, codes)))
        for c in clients:
            c.send(wrong + "\r\n")
        srv.wait_log(rf"authd: auth failed user=hoge address=127\.0\.0\.1 "
                     rf"mech=CRAM-MD5 failures={BURST}\b")
        os.kill(worker, signal.SIGSTOP)
        try:
            time.sleep(6)       # every answer is due meanwhile
        finally:
            os.kill(worker, signal.SIGCONT)
        codes = next_codes(clients, 10)
        assert codes == [535] * BURST, {str(k): codes.count(k)
                                        for k in set(codes)}
        assert "authd: send" not in srv.log()
        # The socket did fill, so the answers above did wait.
        assert "authd: a worker is not reading" in srv.log()
    finally:
        for c in clients:
            c.close()
        problems = _finish_all([srv])
        assert not problems, problems
