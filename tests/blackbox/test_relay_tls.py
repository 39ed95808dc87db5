"""Smarthost certificates checked before the credentials go out:
`relay via HOST tls verify` (the system's CAs, which for this test
are a private CA named by SSL_CERT_FILE) and `relay via HOST tls ca
FILE` (only the CAs in FILE: a private CA, or a server's own
self-signed certificate).  postern A relays through two real postern
smarthosts on 127.0.0.1: B, with a certificate from a private CA, and
C, with a self-signed one; each takes AUTH on 587 (STARTTLS) and 465.
A session that fails the check sends no AUTH, and the mail waits in A's
queue.  The same for the sendmail command's `submit via ... tls ca`."""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import uuid

import pytest

from conftest import (BIN, Server, _finish_all, free_port, user_add,
                      wait_for)
from peers import PrivateCA, self_signed_cert

PASSWORD = "relay secret 9"
RUN_TIMEOUT = 60


def smarthost(cert, key):
    """A postern taking AUTH on 587 and 465 with this certificate; what
    it accepts stays in its queue (queue-manager off)."""
    srv = Server(extra=[f"tls cert {cert} key {key}"], users=[])
    srv.ssl_port = free_port()
    with open(srv.conf, "a") as f:
        f.write(f"listen submissions on 127.0.0.1 port {srv.ssl_port} "
                "sender-check off\n")
    # the default submission listener checks senders: relay's mail is
    # alice's, so that one has it off too
    srv.conf.write_text(srv.conf.read_text().replace(
        f"listen submission on 127.0.0.1 port {srv.sub_port}\n",
        f"listen submission on 127.0.0.1 port {srv.sub_port} "
        "sender-check off\n"))
    user_add(srv, "relay", PASSWORD)
    return srv


class Lab:
    pass


@pytest.fixture(scope="module")
def lab():
    # Not under pytest's 0700 tmp_path: A's queue manager reads the
    # "system's CAs" after it has become user postern.
    d = tempfile.mkdtemp(prefix="postern-bb-certs-")
    os.chmod(d, 0o755)
    lab = Lab()
    lab.ca = PrivateCA(d, "relay")
    lab.other_ca = PrivateCA(d, "other")
    servers = []
    try:
        lab.b = smarthost(*lab.ca.cert("b", "IP:127.0.0.1,DNS:localhost"))
        servers.append(lab.b)
        lab.c_cert, c_key = self_signed_cert(d, "c", "IP:127.0.0.1")
        lab.c = smarthost(lab.c_cert, c_key)
        servers.append(lab.c)
        lab.b.start()
        lab.c.start()

        # The rules' CA files are root's alone: the master reads them
        # before the queue manager becomes user postern.
        ca_private = shutil.copy(lab.ca.pem, f"{d}/relay-ca-private.pem")
        other_private = shutil.copy(lab.other_ca.pem,
                                    f"{d}/other-ca-private.pem")
        c_private = shutil.copy(lab.c_cert, f"{d}/c-private.pem")
        for f in (ca_private, other_private, c_private):
            os.chmod(f, 0o600)
        a = Server(extra=["queue-manager on", "retry-min 1s",
                          "retry-max 2s", "mynetworks 127.0.0.1/32",
                          "remote-timeout 5s", "remote-connect-timeout 5s"])
        # The "system's CAs" of A are the private CA (OpenSSL reads
        # SSL_CERT_FILE for them): "tls verify" must then trust B, and
        # "tls ca" another CA only.
        a.wrap = ["env", f"SSL_CERT_FILE={lab.ca.pem}"]
        servers.append(a)
        cred = a.dir / "relay.auth"
        cred.write_text(f"relay {PASSWORD}\n")
        os.chmod(cred, 0o600)
        b, c = lab.b, lab.c
        rules = {
            # the private CA, by address and by name, both ways of TLS
            "ca465.test": f"[127.0.0.1]:{b.ssl_port} tls implicit "
                          f"tls ca {ca_private}",
            "ca587.test": f"[127.0.0.1]:{b.sub_port} tls ca {ca_private}",
            "caname.test": f"localhost:{b.ssl_port} tls implicit "
                           f"tls ca {ca_private}",
            # a server's own self-signed certificate, pinned
            "pinned.test": f"[127.0.0.1]:{c.ssl_port} tls implicit "
                           f"tls ca {c_private}",
            # the system's CAs
            "system.test": f"[127.0.0.1]:{b.sub_port} tls verify",
            # refused: another CA, although the system's would do; a
            # certificate none of the system's CAs vouches for; a
            # trusted certificate that does not bear the name; a
            # pinned certificate that is not the server's
            "otherca.test": f"[127.0.0.1]:{b.ssl_port} tls implicit "
                            f"tls ca {other_private}",
            "systemc.test": f"[127.0.0.1]:{c.sub_port} tls verify",
            "wrongname.test": f"localhost:{c.ssl_port} tls implicit "
                              f"tls ca {c_private}",
            "pinnedb.test": f"[127.0.0.1]:{b.ssl_port} tls implicit "
                            f"tls ca {c_private}",
        }
        lab.cred, lab.ca_private = cred, ca_private
        with open(a.conf, "a") as f:
            for dom, via in rules.items():
                f.write(f"relay for {dom} via {via} auth {cred}\n")
        a.start()
        lab.a = a
        yield lab
    finally:
        problems = _finish_all(servers)
        shutil.rmtree(d, ignore_errors=True)
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


def token():
    return "t" + uuid.uuid4().hex[:12]


def send(lab, rcpt, tok):
    with smtplib.SMTP("127.0.0.1", lab.a.smtp_port, timeout=10) as s:
        refused = s.sendmail("alice@example.test", [rcpt],
                             f"Subject: {tok}\r\n\r\nbody {tok}\r\n")
        assert not refused, refused


def queued_with(srv, tok):
    out = []
    for qid in srv.queue_ids():
        try:
            if tok.encode() in (srv.spool / "queue" / qid).read_bytes():
                out.append(qid)
        except FileNotFoundError:
            pass
    return out


@pytest.mark.parametrize("dom,peer", [
    ("ca465.test", "b"), ("ca587.test", "b"), ("caname.test", "b"),
    ("pinned.test", "c"), ("system.test", "b")])
def test_trusted_smarthost_gets_the_mail(lab, dom, peer):
    srv = getattr(lab, peer)
    before = auths(srv)
    tok = token()
    send(lab, f"x@{dom}", tok)
    assert wait_for(lambda: queued_with(srv, tok), 20), lab.a.log()[-3000:]
    assert wait_for(lambda: not queued_with(lab.a, tok), 10)
    # after an AUTH of its own as the rule's login
    assert auths(srv) > before, srv.log()[-2000:]


def auths(srv):
    return sum(1 for _, ev, r in srv.events("auth") if "relay" in r)


def test_rules_and_their_cas_still_match_after_a_reload(lab):
    """A rule put first shifts every other one: the next queue manager
    must pair each rule with its own CA file still."""
    text = lab.a.conf.read_text()
    first = text.index("relay for ")
    lab.a.conf.write_text(
        text[:first] + f"relay for first.test via [127.0.0.1]:{free_port()} "
        f"tls ca {lab.other_ca.pem}\n" + text[first:])
    lab.a.proc.send_signal(signal.SIGHUP)
    lab.a.wait_log(r"master: reloaded")
    tok = token()
    send(lab, "x@ca465.test", tok)
    assert wait_for(lambda: queued_with(lab.b, tok), 20), \
        lab.a.log()[-3000:]
    tok = token()
    send(lab, "x@otherca.test", tok)
    assert wait_for(lambda: re.search(
        r"delivery to=<x@otherca\.test> .*status=deferred .*certificate "
        r"verify failed", lab.a.log().split("master: reloaded", 1)[1]), 20)
    assert not queued_with(lab.b, tok)


@pytest.mark.parametrize("dom", [
    "otherca.test", "systemc.test", "wrongname.test", "pinnedb.test"])
def test_unverified_smarthost_gets_neither_password_nor_mail(lab, dom):
    tok = token()
    before = len(lab.b.events("auth")) + len(lab.c.events("auth"))
    send(lab, f"x@{dom}", tok)
    lab.a.wait_log(rf"remote: via:\d+ \S+: \S+: TLS failed: .*"
                   rf"certificate verify failed", 20)
    # deferred, tried again at the next retry, deferred again
    deferred = re.compile(rf"delivery to=<x@{re.escape(dom)}> relay=none "
                          rf".*dsn=4\.7\.5 status=deferred .*certificate "
                          rf"verify failed")
    assert wait_for(lambda: len(deferred.findall(lab.a.log())) >= 2, 15), \
        lab.a.log()[-3000:]
    assert queued_with(lab.a, tok), "the message left A's queue"
    if dom == "wrongname.test":
        # localhost is ::1 and 127.0.0.1 (RFC 6761), and C listens on
        # the second only: a failed connect says so, not "TLS failed"
        assert re.search(r"remote: via:\d+ localhost:\d+: connect to "
                         r"localhost\[::1\]:\d+: \w", lab.a.log())
        assert "TLS failed: error:00000005" not in lab.a.log()
    assert not queued_with(lab.b, tok) and not queued_with(lab.c, tok)
    assert len(lab.b.events("auth")) + len(lab.c.events("auth")) == \
        before, "a smarthost saw an AUTH"


# ---------------------------------------------------------------------------
# the sendmail command's submit via

def sendmail_via(lab, target, tmp_path):
    """Run sendmail with a configuration of its own that submits to
    target; returns the CompletedProcess."""
    cred = tmp_path / "submit.auth"
    cred.write_text(f"relay {PASSWORD}\n")
    os.chmod(cred, 0o600)
    conf = tmp_path / "postern.conf"
    conf.write_text(lab.b.conf.read_text() +
                    f"submit via {target} auth {cred}\n")
    sendmail = tmp_path / "sendmail"
    sendmail.symlink_to(BIN)
    env = dict(os.environ, POSTERN_CONFIG=str(conf))
    return subprocess.run([str(sendmail), "-f", "alice@example.test",
                           "x@elsewhere.test"], input=b"Subject: s\n\nbody\n",
                          capture_output=True, env=env, timeout=RUN_TIMEOUT)


def test_sendmail_submits_to_a_server_of_its_ca(lab, tmp_path):
    n = len(lab.b.queue_ids())
    r = sendmail_via(lab, f"[127.0.0.1]:{lab.b.ssl_port} tls implicit "
                     f"tls ca {lab.ca.pem}", tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(lab.b.queue_ids()) == n + 1


def test_sendmail_refuses_a_server_of_another_ca(lab, tmp_path):
    n = len(lab.b.queue_ids())
    r = sendmail_via(lab, f"[127.0.0.1]:{lab.b.sub_port} "
                     f"tls ca {lab.other_ca.pem}", tmp_path)
    assert r.returncode != 0
    assert b"certificate verify failed" in r.stderr, r.stderr
    assert len(lab.b.queue_ids()) == n
