"""Remote delivery end to end (issue 5): postern A delivers to MX hosts
found through a real DNS server (dnsmasq) and through smarthosts with
SMTP AUTH, and the peers are real servers: a second postern B (port 25
on NET.2 with STARTTLS, on NET.3 without; 587/465 on NET.9) and
Postfix (port 25 and 587 with Cyrus SASL on NET.4), plus small fake
servers in this process (peers.FakeSMTP: a 421 greeting, a silent one,
slow ones, limits on recipients per transaction, a 552 to RCPT).

NET is a 127.X.Y prefix of this run's own.  Binding port 25 needs root: without it the module is
skipped.  All traffic stays on 127.0.0.0/8; every wait is bounded."""
import os
import re
import shutil
import smtplib
import subprocess
import time
import uuid

import pytest

from conftest import (BIN, Server, _finish_all, free_port, user_add,
                      wait_for)
from peers import DNS, FakeSMTP, Postfix, port_open, require_root

# Each run takes its own 127.X.Y.0/24, so that two runs of the suite on
# one machine never meet on port 25.
NET = f"127.{100 + os.getpid() % 150}.{os.getpid() // 150 % 250}"


def ip(n):
    return f"{NET}.{n}"


def ip_rx(n):
    return re.escape(ip(n))


RELAY_PASSWORD = "relay pass 42"
PF_PASSWORD = "postfix pass 7"

B_DOMAINS = ["b.test", "plain.test", "twomx.test", "nomx.test", "v6.test",
             "unreach.test"]
MX = [
    "b.test,mx.b.test,10",
    "plain.test,mx.plain.test,10",
    "pf.test,mx.pf.test,10",
    "twomx.test,busy.twomx.test,10", "twomx.test,mx.b.test,20",
    "refused.test,mx.refused.test,10",
    "silent.test,mx.silent.test,10",
    "nullmx.test,.,0",                      # RFC 7505: MX 0 "."
    "v6.test,mx.v6.test,10",
    "hang.test,mx.hang.test,10",
    "slow.test,mx.slow.test,10",
    "stall.test,mx.stall.test,10",
    "badtls.test,mx.badtls.test,10",
    "deadmx.test,mx.nowhere.test,10",       # the MX host does not exist
    # A is the backup MX of loop.test (an access RELAY rule): its own
    # name is MX 20, behind a primary that answers 421.
    "loop.test,busy.loop.test,10", "loop.test,mail.example.test,20",
    "selfonly.test,MAIL.Example.Test,10",   # A is the best MX there is
    # connect(2) to a broadcast address fails at once, sending nothing
    "unreach.test,mx.unreach.test,10", "unreach.test,mx.b.test,20",
    # at most 100, or 30, recipients per transaction; a 552 to one RCPT
    "rcpt100.test,mx.rcpt100.test,10",
    "rcpt30.test,mx.rcpt30.test,10",
    "full.test,mx.full.test,10",
    "hold.test,mx.hold.test,10",
]
TXT = ['noaddr.test,"v=spf1 -all"']
SEARCH_DOMAIN = "corp.test"                 # A's resolver search list         # exists: no MX, no address
HOSTS = [
    f"mx.b.test,{ip(2)}",
    f"mx.plain.test,{ip(3)}",
    f"mx.pf.test,{ip(4)}",
    f"busy.twomx.test,{ip(5)}",
    f"mx.refused.test,{ip(7)}",
    f"mx.silent.test,{ip(8)}",
    f"nomx.test,{ip(2)}",                  # no MX: the A record
    f"mx.v6.test,{ip(2)},::1",              # AAAA first, nobody there
    f"mx.hang.test,{ip(12)}",
    f"mx.slow.test,{ip(14)}",
    f"mx.stall.test,{ip(15)}",
    f"mx.badtls.test,{ip(16)}",
    f"busy.loop.test,{ip(5)}",
    f"mail.example.test,{ip(17)}",          # A's hostname: A on port 25
    "mx.unreach.test,255.255.255.255",
    f"mx.rcpt100.test,{ip(18)}",
    f"mx.rcpt30.test,{ip(19)}",
    f"mx.full.test,{ip(20)}",
    f"mx.hold.test,{ip(21)}",
]


def write_credentials(path, line):
    path.write_text(line + "\n")
    os.chmod(path, 0o600)


class Lab:
    pass


@pytest.fixture(scope="module")
def lab():
    require_root("remote delivery to port 25")
    lab = Lab()
    servers, stop = [], []
    try:
        # -- DNS -------------------------------------------------------
        lab.dns = DNS(mx=MX, hosts=HOSTS, txt=TXT, log_queries=True)
        tmplog = f"/tmp/postern-bb-dnsmasq-{os.getpid()}.log"
        lab.dns_log = tmplog
        lab.dns.start(tmplog)
        stop.append(lab.dns.stop)

        # -- the misbehaving servers ------------------------------------
        lab.busy = FakeSMTP(ip(5), 25, "421")
        stop.append(lab.busy.close)
        lab.silent = FakeSMTP(ip(8), 25, "silent")
        stop.append(lab.silent.close)
        lab.slow = FakeSMTP(ip(14), 25, "slow")
        stop.append(lab.slow.close)
        lab.stall = FakeSMTP(ip(15), 25, "stall")
        stop.append(lab.stall.close)
        lab.badtls = FakeSMTP(ip(16), 25, "badtls")
        stop.append(lab.badtls.close)
        lab.rcpt100 = FakeSMTP(ip(18), 25, "plain", rcpt_limit=100)
        stop.append(lab.rcpt100.close)
        lab.rcpt30 = FakeSMTP(ip(19), 25, "plain", rcpt_limit=30)
        stop.append(lab.rcpt30.close)
        lab.full = FakeSMTP(ip(20), 25, "plain", rcpt_replies={
            "full@full.test": "552 5.2.2 full@full.test: mailbox full"})
        stop.append(lab.full.close)
        # smarthosts named by address: "relay via [ADDRESS]:PORT"
        lab.via4 = FakeSMTP(ip(17), free_port(), "slow")
        stop.append(lab.via4.close)
        lab.via6 = FakeSMTP("::1", free_port(), "slow")
        stop.append(lab.via6.close)
        # a smarthost (or someone on the path) asking for 1 iteration
        lab.scram = FakeSMTP(ip(18), free_port(), "scram", iterations=1)
        stop.append(lab.scram.close)

        # -- Postfix ------------------------------------------------------
        lab.pf = None
        if Postfix.available():
            lab.pf = Postfix(ip(4), ["pf.test", "pfsub.test",
                                           "badauth.test"],
                             [("relayuser", "pf.test", PF_PASSWORD)])
            stop.append(lab.pf.stop)
            lab.pf.start()

        # -- postern B: MX for B_DOMAINS, smarthost on NET.9 ------------
        lab.sub_port, lab.ssl_port = free_port(), free_port()
        b = Server(extra=[
            "domains " + " ".join(B_DOMAINS),
            f"listen smtp on {ip(2)} port 25",
            f"listen smtp on {ip(3)} port 25 tls off",
            f"listen submission on {ip(9)} port {lab.sub_port} "
            "sender-check off",
            f"listen submissions on {ip(9)} port {lab.ssl_port} "
            "sender-check off",
        ], users=["bob:!:::bob@b.test,bob@plain.test,bob@twomx.test,"
                  "bob@nomx.test,bob@v6.test,bob@unreach.test:",
                  "carol:!:::carol@b.test:"])
        servers.append(b)
        user_add(b, "relay", RELAY_PASSWORD)
        b.start()
        lab.b = b

        # -- postern A: the one under test --------------------------------
        a = Server(extra=[
            f"listen smtp on {ip(17)} port 25 tls off",
            "queue-manager on", "retry-min 1s", "retry-max 2s",
            "admin alice", "mynetworks 127.0.0.1/32",
            f"resolver 127.0.0.1:{lab.dns.port}",
            "remote-timeout 2s", "remote-connect-timeout 2s",
        ], users=["alice:!:::alice@example.test:"])
        # A search list, as resolv.conf's "search" or LOCALDOMAIN gives
        # one: MX hosts are names in the DNS, never completed from it
        # (test_mx_host_names_are_not_completed_from_the_search_list).
        a.wrap = ["env", f"LOCALDOMAIN={SEARCH_DOMAIN}"]
        servers.append(a)
        a.mail = a.dir / "mail"
        cred_b = a.dir / "relay-b.auth"
        cred_pf = a.dir / "relay-pf.auth"
        cred_bad = a.dir / "relay-bad.auth"
        write_credentials(cred_b, f"relay {RELAY_PASSWORD}")
        write_credentials(cred_pf, f"relayuser@pf.test {PF_PASSWORD}")
        write_credentials(cred_bad, "relayuser@pf.test not-the-password")
        lab.down_port = free_port()
        access = a.dir / "access"
        access.write_text("to:loop.test RELAY\nto:selfonly.test RELAY\n")
        with open(a.conf, "a") as f:
            f.write("\n".join([
                f"access {access}",
                f"mailboxes {a.mail}",
                f"relay for sub.test via {ip(9)}:{lab.sub_port} "
                f"auth {cred_b}",
                f"relay for subs.test via {ip(9)}:{lab.ssl_port} "
                f"tls implicit auth {cred_b}",
                f"relay for pfsub.test via {ip(4)}:submission "
                f"auth {cred_pf}",
                f"relay for badauth.test via {ip(4)}:587 auth {cred_bad}",
                f"relay for down.test via {ip(11)}:{lab.down_port} "
                f"auth {cred_b}",
                f"relay for via4.test via [{ip(17)}]:{lab.via4.port}",
                f"relay for via6.test via [::1]:{lab.via6.port}",
                f"relay for scram.test via {ip(18)}:{lab.scram.port} "
                f"auth {cred_b}",
            ]) + "\n")
        lab.cred_b = cred_b
        a.start()
        lab.a = a
        lab.servers = servers
        yield lab
    finally:
        problems = _finish_all(servers)
        for fn in reversed(stop):
            fn()
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


# ----------------------------------------------------------------------
# helpers

def token():
    return "t" + uuid.uuid4().hex[:12]


def message(tok, sender="alice@example.test"):
    return (f"From: {sender}\r\nSubject: {tok}\r\n\r\nbody of {tok}\r\n"
            f".a line with a leading dot\r\n").encode()


def send(lab, rcpts, tok, sender="alice@example.test"):
    with smtplib.SMTP("127.0.0.1", lab.a.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        refused = s.sendmail(sender, rcpts, message(tok, sender))
        assert not refused, refused


def spool_with(srv, tok, timeout=15):
    """B's (or C's) queued files that contain tok: [(envelope, bytes)]."""
    def find():
        out = []
        for qid in srv.queue_ids():
            try:
                data = (srv.spool / "queue" / qid).read_bytes()
            except FileNotFoundError:
                continue
            if tok.encode() in data:
                head = data.split(b"\n\n", 1)[0].decode()
                env = {"rcpt": []}
                for line in head.split("\n"):
                    k, _, v = line.partition(" ")
                    if k == "rcpt":
                        env["rcpt"].append(v)
                    else:
                        env[k] = v
                out.append((env, data))
        return out
    found = wait_for(find, timeout)
    assert found, f"{tok} never reached {srv.dir}\n--- A's log:\n" + \
        _a_log_tail(srv)
    return found


_LAB = {}


def _a_log_tail(_srv):
    a = _LAB.get("a")
    return a.log()[-6000:] if a else ""


@pytest.fixture(autouse=True)
def _remember(lab):
    _LAB["a"] = lab.a


def bounce_for(lab, tok, timeout=15):
    """The DSN in alice's Maildir that reports the message tok."""
    d = lab.a.mail / "alice" / "new"

    def find():
        try:
            for f in d.iterdir():
                data = f.read_bytes()
                if tok.encode() in data and b"multipart/report" in data:
                    return data.decode("utf-8", "replace")
        except FileNotFoundError:
            pass
        return None
    text = wait_for(find, timeout)
    assert text, f"no bounce for {tok} in {d}\n" + lab.a.log()[-6000:]
    return text


def queue_list(lab):
    r = subprocess.run([BIN, "queue", "-c", str(lab.a.conf), "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def queued_qid(lab, tok):
    for qid in lab.a.queue_ids():
        try:
            if tok.encode() in (lab.a.spool / "queue" / qid).read_bytes():
                return qid
        except FileNotFoundError:
            pass
    return None


def delete_from_queue(lab, qid):
    subprocess.run([BIN, "queue", "-c", str(lab.a.conf), "delete", qid],
                   capture_output=True, text=True, timeout=30)


def sent_line(lab, rcpt, relay_rx):
    return lab.a.wait_log(
        r"([0-9A-F]{16}) delivery to=<" + re.escape(rcpt) + r"> relay=" +
        relay_rx + r" delay=[0-9.]+s dsn=2\.\d\.\d+ status=sent \(([^)\n]*\b25\d[ -][^)\n]*)",
        timeout=15)


# ----------------------------------------------------------------------
# MX delivery

def test_mx_with_starttls_to_postern(lab):
    tok = token()
    send(lab, ["bob@b.test"], tok)
    ((env, data),) = spool_with(lab.b, tok)
    assert env["rcpt"] == ["bob@b.test"]
    assert env["from"] == "alice@example.test"
    assert env["protocol"] == "ESMTPS", env        # STARTTLS was used
    assert env["client"].startswith("127.")
    # dot-stuffing undone on the other side: the content is the same
    assert b"\r\n.a line with a leading dot\r\n" in data
    m = sent_line(lab, "bob@b.test", r"mx\.b\.test\[" + ip_rx(2) + r"\]:25")
    qid = m.group(1)
    lab.a.wait_log(qid + r" removed$")
    assert qid in lab.a.log()
    assert not (lab.a.spool / "status" / qid).exists()


def test_mx_without_tls(lab):
    tok = token()
    send(lab, ["bob@plain.test"], tok)
    ((env, _),) = spool_with(lab.b, tok)
    assert env["protocol"] == "ESMTP", env         # B offered no STARTTLS
    sent_line(lab, "bob@plain.test", r"mx\.plain\.test\[" + ip_rx(3) + r"\]:25")


def test_no_mx_falls_back_to_the_a_record(lab):
    tok = token()
    send(lab, ["bob@nomx.test"], tok)
    spool_with(lab.b, tok)
    sent_line(lab, "bob@nomx.test", r"nomx\.test\[" + ip_rx(2) + r"\]:25")


def test_aaaa_first_then_ipv4(lab):
    tok = token()
    send(lab, ["bob@v6.test"], tok)
    spool_with(lab.b, tok)
    sent_line(lab, "bob@v6.test", r"mx\.v6\.test\[" + ip_rx(2) + r"\]:25")


def test_mx_to_postfix(lab):
    if lab.pf is None:
        pytest.skip("postfix/sasl2-bin not installed (scripts/deps.sh test)")
    tok = token()
    send(lab, ["someone@pf.test"], tok)
    assert wait_for(lambda: any(tok.encode() in h for h in lab.pf.held()),
                    15), lab.a.log()[-4000:] + lab.pf.log()[-3000:]
    sent_line(lab, "someone@pf.test", r"mx\.pf\.test\[" + ip_rx(4) + r"\]:25")
    assert re.search(r"to=<someone@pf\.test> proto=ESMTP", lab.pf.log())


def test_421_greeting_then_the_next_mx(lab):
    before = lab.busy.connections
    tok = token()
    send(lab, ["bob@twomx.test"], tok)
    spool_with(lab.b, tok)
    assert lab.busy.connections > before      # the first MX was tried
    sent_line(lab, "bob@twomx.test", r"mx\.b\.test\[" + ip_rx(2) + r"\]:25")


def test_one_rcpt_refused_others_delivered(lab):
    tok = token()
    send(lab, ["bob@b.test", "nobody@b.test", "carol@b.test"], tok)
    ((env, _),) = spool_with(lab.b, tok)
    assert sorted(env["rcpt"]) == ["bob@b.test", "carol@b.test"]
    dsn = bounce_for(lab, tok)
    assert "Final-Recipient: rfc822; nobody@b.test" in dsn
    assert "Status: 5.1.1" in dsn
    assert re.search(r"Diagnostic-Code: smtp; 550[ -]5\.1\.1", dsn), dsn
    assert "Remote-MTA: dns; mx.b.test" in dsn
    assert "bob@b.test" not in dsn.split("Content-Type: text/rfc822-headers")[0]
    lab.a.wait_log(r"delivery to=<nobody@b\.test> relay=mx\.b\.test"
                   r"\[" + ip_rx(2) + r"\]:25 delay=[0-9.]+s dsn=5\.1\.1 "
                   r"status=bounced \([^\n]*550 5\.1\.1")


@pytest.mark.parametrize("limit", [100, 30])
def test_many_recipients_go_in_several_transactions_at_once(lab, limit):
    """250 recipients at one domain, whose server takes at most LIMIT
    per transaction and answers the RCPTs past that 452 4.5.3 (RFC 5321
    section 4.5.3.1.10).  postern names at most 100 in a transaction
    (the number RFC 5321 section 4.5.3.1.8 obliges a server to take, so
    the first server never has to refuse one), and sends those refused
    as too many again at once in a new transaction: every recipient gets
    the message exactly once in the first attempt, none deferred (with
    retry-min 1s a retry would first log a deferral)."""
    srv = getattr(lab, f"rcpt{limit}")
    domain = f"rcpt{limit}.test"
    tok = token()
    rcpts = [f"{tok}-{i:03d}@{domain}" for i in range(250)]
    refused_before = srv.too_many
    send(lab, rcpts, tok)
    qid = lab.a.wait_log(r"smtp queued qid=([0-9A-F]{16}) [^\n]*to=<" +
                         tok + r"-000@").group(1)
    sent = re.compile(qid + r" delivery to=<" + tok + r"-\d{3}@" +
                      re.escape(domain) + r"> relay=mx\.rcpt\d+\.test\[" +
                      r"[0-9.]+\]:25 delay=[0-9.]+s dsn=2\.\d\.\d+ "
                      r"status=sent")
    assert wait_for(lambda: len(sent.findall(lab.a.log())) == 250, 20), \
        lab.a.log()[-6000:]
    lab.a.wait_log(qid + r" removed$")
    log = lab.a.log()
    assert not re.search(qid + r" delivery [^\n]*status=deferred", log), \
        log[-6000:]
    # three transactions' worth, handed out together
    assert re.findall(qid + r" remote submit domain=" + re.escape(domain) +
                      r" nrcpt=(\d+)", log) == ["100", "100", "50"], \
        log[-6000:]
    mine = [t for t in srv.transactions if tok.encode() in t[2]]
    got = [a for t in mine for a in t[1]]
    print(f"\nfigure: {len(mine)} transactions to {domain}, RCPTs "
          f"{[t[0] for t in mine]}, accepted {[len(t[1]) for t in mine]}")
    assert sorted(got) == sorted(r.lower() for r in rcpts)   # once each
    assert max(t[0] for t in mine) <= 100
    assert max(len(t[1]) for t in mine) <= limit
    if limit == 100:
        assert srv.too_many == refused_before and len(mine) == 3
    else:
        assert srv.too_many > refused_before
        assert re.search(qid + r" remote relay=mx\.rcpt30\.test\S+: \d+ "
                         r"recipients refused as too many, sent again in a "
                         r"new transaction", log), log[-6000:]


def test_552_to_rcpt_is_deferred_not_bounced(lab):
    """RFC 5321 section 4.5.3.1.10: a client takes 552 to RCPT as 452
    (servers following RFC 821 said 552 for "too many recipients"), so
    the recipient is deferred, with the server's reply in the log and
    the queue listing, and no DSN goes to the sender; the others of the
    transaction are delivered."""
    tok = token()
    send(lab, ["ok1@full.test", "full@full.test", "ok2@full.test"], tok)
    qid = lab.a.wait_log(r"smtp queued qid=([0-9A-F]{16}) [^\n]*"
                         r"to=<ok1@full\.test>,<full@full\.test>").group(1)
    for ok in ("ok1", "ok2"):
        lab.a.wait_log(qid + r" delivery to=<" + ok + r"@full\.test> "
                       r"relay=mx\.full\.test\S+ delay=[0-9.]+s "
                       r"dsn=2\.\d\.\d+ status=sent")
    m = lab.a.wait_log(qid + r" delivery to=<full@full\.test> relay="
                       r"mx\.full\.test\S+ delay=[0-9.]+s dsn=(\S+) "
                       r"status=(\w+) \(([^\n]*)\)$")
    assert m.group(2) == "deferred", m.group(0)
    assert m.group(1) == "4.2.2", m.group(0)        # 5.2.2, made temporary
    assert "552 5.2.2 full@full.test: mailbox full" in m.group(3), m.group(0)
    mine = [t for t in lab.full.transactions if tok.encode() in t[2]]
    assert [sorted(t[1]) for t in mine] == [["ok1@full.test",
                                            "ok2@full.test"]], mine
    assert "552 5.2.2" in queue_list(lab)
    time.sleep(2)                   # retry-max 2s: a retry has come
    assert not re.search(qid + r" delivery [^\n]*status=bounced",
                         lab.a.log())
    assert _no_bounce(lab, tok)
    delete_from_queue(lab, qid)


def test_a_stop_between_transactions_keeps_what_was_delivered(lab):
    """One recipient per transaction (452 4.5.3 to the next), from a
    server that then stops answering: postern is in the message's second
    transaction when it stops.  The first recipient has the message and
    that is recorded, so after the restart only the second one is sent
    again, not both."""
    srv = FakeSMTP(ip(21), 25, "plain", rcpt_limit=1, hang_after=1)
    a2 = Server(extra=[
        "queue-manager on", "retry-min 1s", "retry-max 2s",
        f"resolver 127.0.0.1:{lab.dns.port}", "remote-timeout 60s",
        "mynetworks 127.0.0.1/32"])
    try:
        a2.start()
        tok = token()
        with smtplib.SMTP("127.0.0.1", a2.smtp_port, timeout=10) as s:
            s.sendmail("x@example.org", ["one@hold.test", "two@hold.test"],
                       message(tok))
        a2.wait_log(r"remote relay=mx\.hold\.test\S+: 1 recipient refused "
                    r"as too many, sent again in a new transaction")
        assert wait_for(lambda: len(srv.transactions) == 1, 10), a2.log()
        (qid,) = a2.queue_ids()
        assert a2.terminate() == 0              # waits out the session
        status = (a2.spool / "status" / qid).read_text()
        assert "remote 0 remote:one@hold.test sent" in status, status
        assert "remote:two@hold.test" not in status, status
        srv.hang_after = None
        a2.start()
        a2.wait_log(qid + r" delivery to=<two@hold\.test> relay=\S+ "
                    r"delay=[0-9.]+s dsn=2\.\d\.\d+ status=sent")
        a2.wait_log(qid + r" removed$")
        assert [t[1] for t in srv.transactions] == [["one@hold.test"],
                                                   ["two@hold.test"]]
    finally:
        srv.close()
        problems = _finish_all([a2])
        assert not problems, problems


def test_nxdomain_bounces(lab):
    tok = token()
    send(lab, ["x@nx.test"], tok)
    dsn = bounce_for(lab, tok)
    assert "Final-Recipient: rfc822; x@nx.test" in dsn
    assert re.search(r"Status: 5\.1\.2", dsn), dsn
    lab.a.wait_log(r"delivery to=<x@nx\.test> relay=\S+ delay=[0-9.]+s "
                   r"dsn=5\.1\.2 status=bounced")


def test_null_mx_bounces(lab):
    tok = token()
    send(lab, ["x@nullmx.test"], tok)
    dsn = bounce_for(lab, tok)
    assert "Final-Recipient: rfc822; x@nullmx.test" in dsn
    assert re.search(r"Status: 5\.\d\.\d+", dsn), dsn
    assert "null MX" in dsn


@pytest.mark.parametrize("rcpt,why", [
    ("x@noaddr.test", "domain noaddr.test has no MX and no address"),
    ("x@deadmx.test", "cannot find the address of mx.nowhere.test"),
])
def test_a_domain_without_an_address_bounces_at_once(lab, rcpt, why):
    """RFC 5321 section 5.1: no MX and no A/AAAA, or MX hosts that do
    not exist, is an error of the domain's, not a reason to retry for
    days.  retry-max is 2s here, so a deferral would show within the
    15 s bounce_for waits only as a deferred line, never as a DSN."""
    tok = token()
    send(lab, [rcpt], tok)
    dsn = bounce_for(lab, tok)
    assert f"Final-Recipient: rfc822; {rcpt}" in dsn
    assert "Status: 5.4.4" in dsn, dsn
    assert why in dsn, dsn
    log = lab.a.log()
    assert re.search(r"delivery to=<" + re.escape(rcpt) + r"> relay=none "
                     r"delay=[0-9.]+s dsn=5\.4\.4 status=bounced", log), \
        log[-3000:]
    assert not re.search(r"delivery to=<" + re.escape(rcpt) +
                         r">[^\n]*status=deferred", log)


def test_mx_host_names_are_not_completed_from_the_search_list(lab):
    """An MX host that does not exist is not looked up again with the
    resolver's search domains appended (mx.nowhere.test.corp.test):
    the answer could be a host of the local network's, which would get
    the mail.  RFC 5321 section 5.1 looks up the names as they are."""
    tok = token()
    send(lab, ["y@deadmx.test"], tok)
    bounce_for(lab, tok)
    queries = open(lab.dns_log, errors="replace").read()
    assert re.search(r"query\[A+\] mx\.nowhere\.test from", queries), \
        queries[-3000:]
    assert f".{SEARCH_DOMAIN} from" not in queries, queries[-3000:]


def test_an_address_literal_goes_to_that_address(lab):
    """user@[192.0.2.1] (RFC 5321 section 4.1.3): no DNS, port 25 of
    that address; the log names the address alone."""
    before = len(lab.slow.datas)
    tok = token()
    rcpt = f"x@[{ip(14)}]"
    send(lab, [rcpt], tok)
    sent_line(lab, rcpt, r"\[" + ip_rx(14) + r"\]:25")
    assert len(lab.slow.datas) == before + 1
    assert lab.slow.datas[-1][1], lab.slow.datas[-1]   # the final "." came


@pytest.mark.parametrize("literal", ["[224.0.0.1]", "[0.0.0.0]",
                                     "[IPv6:ff02::1]"])
def test_an_address_literal_where_no_host_can_be_bounces(lab, literal):
    tok = token()
    send(lab, [f"x@{literal}"], tok)
    dsn = bounce_for(lab, tok)
    assert "Status: 5.1.2" in dsn, dsn
    # (destinations are kept in lower case: "[ipv6:...]")
    assert f"{literal.lower()} is not an address mail can go to" in dsn, dsn


def test_a_failed_starttls_handshake_is_retried_in_the_clear(lab):
    """STARTTLS is opportunistic for MX delivery: a server whose
    handshake fails (here: a protocol_version alert, as from a TLS-1.0
    only server) gets the message in the clear on a second connection,
    instead of deferring it until it bounces."""
    before, conns = lab.badtls.starttls, lab.badtls.connections
    tok = token()
    send(lab, ["x@badtls.test"], tok)
    m = sent_line(lab, "x@badtls.test",
                  r"mx\.badtls\.test\[" + ip_rx(16) + r"\]:25")
    assert lab.badtls.starttls == before + 1
    assert lab.badtls.connections == conns + 2
    assert lab.badtls.datas and lab.badtls.datas[-1][1]
    log = lab.a.log()
    assert re.search(r"TLS failed: .*protocol version", log, re.I), \
        log[-3000:]
    assert "trying mx.badtls.test again without TLS" in log
    assert m.group(1) not in re.findall(r"([0-9A-F]{16}) delivery[^\n]*"
                                        r"status=deferred", log)


def _copies(lab, tok):
    n = 0
    for qid in lab.a.queue_ids():
        try:
            n += tok.encode() in (lab.a.spool / "queue" / qid).read_bytes()
        except FileNotFoundError:
            pass
    return n


def _no_bounce(lab, tok):
    d = lab.a.mail / "alice" / "new"
    return not d.is_dir() or not any(tok.encode() in f.read_bytes()
                                     for f in d.iterdir())


def _kept_once(lab, tok, qid):
    """A never handed the message to itself (its own port 25), holds one
    copy, and sent no bounce; the message is then taken off the queue."""
    assert _copies(lab, tok) == 1
    assert f"listener=smtp {ip(17)}:25" not in lab.a.log()
    assert _no_bounce(lab, tok)
    delete_from_queue(lab, qid)


def test_a_backup_mx_does_not_send_to_itself(lab):
    """RFC 5321 section 5.1: A finds its own name as MX 20 of loop.test,
    so only MX 10 (busy: 421) may take the message; A keeps it."""
    tok = token()
    conns = lab.busy.connections
    send(lab, ["x@loop.test"], tok)
    qid = queued_qid(lab, tok)
    m = lab.a.wait_log(qid + r" delivery to=<x@loop\.test> relay=\S+ "
                       r"delay=[0-9.]+s dsn=4\.\d\.\d+ status=deferred "
                       r"\(([^)]*)", timeout=15)
    assert "421" in m.group(1), m.group(1)
    assert lab.busy.connections > conns
    log = lab.a.log()
    assert "mail.example.test is MX 20 for loop.test: 1 more preferred " \
        "host left" in log, log[-3000:]
    # retried, still one copy, never handed to itself, no bounce
    lab.a.wait_log(qid + r" delivery to=<x@loop\.test>[^\n]*deferred"
                   r"(?:.|\n)*" + qid + r" delivery to=<x@loop\.test>"
                   r"[^\n]*deferred", timeout=10)
    _kept_once(lab, tok, qid)


def test_the_best_mx_being_myself_is_deferred(lab):
    tok = token()
    send(lab, ["x@selfonly.test"], tok)
    qid = queued_qid(lab, tok)
    m = lab.a.wait_log(qid + r" delivery to=<x@selfonly\.test> relay=\S+ "
                       r"delay=[0-9.]+s dsn=4\.4\.6 status=deferred "
                       r"\(([^)]*)", timeout=15)
    assert "loops back to myself" in m.group(1), m.group(1)
    time.sleep(2)
    _kept_once(lab, tok, qid)


def test_a_connect_that_fails_at_once_is_not_waited_out(lab):
    """MX 10 is 255.255.255.255: connect(2) fails there at once
    (ENETUNREACH); MX 20 takes the message without the 2 s connect
    timeout having passed."""
    tok = token()
    send(lab, ["bob@unreach.test"], tok)
    spool_with(lab.b, tok)
    m = lab.a.wait_log(r"delivery to=<bob@unreach\.test> relay=mx\.b\.test"
                       r"\S* delay=([0-9.]+)s dsn=2", timeout=15)
    assert float(m.group(1)) < 1.5, m.group(0)
    assert "connecting (timeout)" not in lab.a.log()


def test_connection_refused_is_deferred(lab):
    tok = token()
    send(lab, ["x@refused.test"], tok)
    m = lab.a.wait_log(r"([0-9A-F]{16}) delivery to=<x@refused\.test> "
                       r"relay=\S+ delay=[0-9.]+s dsn=4\.\d\.\d+ "
                       r"status=deferred \(([^)]*)")
    qid = m.group(1)
    assert "refused" in m.group(2).lower(), m.group(2)
    # retried with back-off, and `postern queue list` says why
    lab.a.wait_log(qid + r" delivery to=<x@refused\.test>[^\n]*deferred"
                   r"(?:.|\n)*" + qid + r" delivery to=<x@refused\.test>"
                   r"[^\n]*deferred", timeout=10)
    out = queue_list(lab)
    assert qid in out and "refused" in out.lower(), out
    delete_from_queue(lab, qid)


def test_silent_server_times_out(lab):
    t0 = time.monotonic()
    tok = token()
    send(lab, ["x@silent.test"], tok)
    m = lab.a.wait_log(r"([0-9A-F]{16}) delivery to=<x@silent\.test> "
                       r"relay=\S+ delay=[0-9.]+s dsn=4\.\d\.\d+ "
                       r"status=deferred \(([^)]*)", timeout=15)
    assert time.monotonic() - t0 < 10          # remote-timeout 2s
    assert lab.silent.connections >= 1
    delete_from_queue(lab, m.group(1))


def test_a_slow_upload_is_not_a_timeout(lab):
    """A 94 KB message to a server that takes it at about 10 KB/s, with
    remote-timeout 2s: the upload is timed by its progress, not as one
    wait for a reply, so it goes through once and is recorded as sent
    (a reply timeout during it would defer the message while the server
    got all of it, then send it again)."""
    tok = token()
    body = message(tok) + b"".join(b"%06d " % i + b"y" * 90 + b"\r\n"
                                   for i in range(940))
    before = len(lab.slow.datas)        # other tests use this server too
    with smtplib.SMTP("127.0.0.1", lab.a.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        assert not s.sendmail("alice@example.test", ["x@slow.test"], body)
    m = lab.a.wait_log(r"delivery to=<x@slow\.test> relay=\S+ "
                       r"delay=[0-9.]+s dsn=(\S+) status=(\w+)", timeout=40)
    got = lab.slow.datas[before:]
    print(f"\nfigure: {m.group(0)}; the server got {got}")
    assert m.group(2) == "sent", lab.a.log()[-3000:]
    assert len(got) == 1 and got[0][1], got
    assert got[0][0] > len(body)


def test_outcomes_that_cannot_be_recorded_are_not_sent_again(lab):
    """The status file refuses the "sent" record (here: made immutable
    during the upload, as a full disk would refuse it): the queue
    manager keeps the record and runs no pass on the message until it
    is written, so the message is not sent a second time."""
    if not shutil.which("chattr"):
        pytest.skip("chattr is not installed (e2fsprogs)")
    tok = token()
    body = message(tok) + b"".join(b"%06d " % i + b"z" * 90 + b"\r\n"
                                   for i in range(300))
    before = len(lab.slow.datas)
    with smtplib.SMTP("127.0.0.1", lab.a.smtp_port, timeout=10) as s:
        assert not s.sendmail("alice@example.test", ["y@slow.test"], body)
    m = lab.a.wait_log(r"smtp queued qid=([0-9A-F]{16}) [^\n]*"
                       r"to=<y@slow\.test>")
    qid = m.group(1)
    lab.a.wait_log(qid + r" remote submit domain=slow\.test")
    status = lab.a.spool / "status" / qid
    r = subprocess.run(["chattr", "+i", str(status)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"chattr +i refused here: {r.stderr.strip()}")
    try:
        lab.a.wait_log(qid + r" queue: status file", timeout=20)
        time.sleep(3)                   # retry-min 1s: passes are due
    finally:
        subprocess.run(["chattr", "-i", str(status)], check=True)
    lab.a.wait_log(r"delivery to=<y@slow\.test> relay=\S+ delay=[0-9.]+s "
                   r"dsn=2\.\d\.\d+ status=sent", timeout=30)
    lab.a.wait_log(qid + r" removed$", timeout=15)
    time.sleep(1)
    got = lab.slow.datas[before:]
    assert len(got) == 1 and got[0][1], got
    assert "outcomes not recorded" in lab.a.log()


def test_a_stalled_upload_is_reset_not_completed(lab):
    """The server stops taking the message half-way for longer than
    remote-timeout: the connection is reset, so what the kernel still
    holds (the final "." among it) never reaches the server, which
    therefore never accepts a message recorded here as deferred."""
    tok = token()
    body = message(tok) + b"z" * 98 * 940 + b"\r\n"
    with smtplib.SMTP("127.0.0.1", lab.a.smtp_port, timeout=10) as s:
        s.ehlo("client.example")
        assert not s.sendmail("alice@example.test", ["x@stall.test"], body)
    m = lab.a.wait_log(r"([0-9A-F]{16}) delivery to=<x@stall\.test> "
                       r"relay=\S+ delay=[0-9.]+s dsn=\S+ status=(\w+) "
                       r"\(([^)]*)", timeout=20)
    assert m.group(2) == "deferred", m.group(0)
    assert "while sending the message (timeout" in m.group(3), m.group(0)
    time.sleep(6)               # the server reads again
    print(f"\nfigure: {m.group(0)}; the server got {lab.stall.datas}")
    assert lab.stall.datas and not any(done for _, done in lab.stall.datas)
    delete_from_queue(lab, m.group(1))


# ----------------------------------------------------------------------
# smarthosts

def test_relay_via_postern_587_with_auth(lab):
    tok = token()
    send(lab, ["friend@sub.test"], tok)
    ((env, _),) = spool_with(lab.b, tok)
    assert env["listener"] == "submission"
    assert env["protocol"] == "ESMTPSA", env      # STARTTLS, then AUTH
    assert env["rcpt"] == ["friend@sub.test"]
    assert re.search(r"smtp auth user=relay mech=\S+ result=ok",
                     lab.b.log())
    sent_line(lab, "friend@sub.test",
              ip_rx(9) + r"\[" + ip_rx(9) + r"\]:" + str(lab.sub_port))


def test_relay_via_postern_465_implicit_tls(lab):
    tok = token()
    send(lab, ["friend@subs.test"], tok)
    ((env, _),) = spool_with(lab.b, tok)
    assert env["listener"] == "submissions"
    assert env["protocol"] == "ESMTPSA", env
    sent_line(lab, "friend@subs.test",
              ip_rx(9) + r"\[" + ip_rx(9) + r"\]:" + str(lab.ssl_port))


def test_relay_via_postfix_submission_with_cyrus_sasl(lab):
    if lab.pf is None:
        pytest.skip("postfix/sasl2-bin not installed (scripts/deps.sh test)")
    tok = token()
    send(lab, ["friend@pfsub.test"], tok)
    assert wait_for(lambda: any(tok.encode() in h for h in lab.pf.held()),
                    15), lab.a.log()[-4000:] + lab.pf.log()[-3000:]
    assert re.search(r"sasl_method=\S+, sasl_username=relayuser@pf\.test",
                     lab.pf.log()), lab.pf.log()[-3000:]
    sent_line(lab, "friend@pfsub.test",
              ip_rx(4) + r"\[" + ip_rx(4) + r"\]:587")


def test_relay_wrong_password_defers_with_535(lab):
    """A 535 to AUTH means our credentials are wrong (a rotated
    password): the administrator's to mend, so the message waits in the
    queue, temporarily failed, instead of bouncing to its sender."""
    if lab.pf is None:
        pytest.skip("postfix/sasl2-bin not installed (scripts/deps.sh test)")
    tok = token()
    send(lab, ["friend@badauth.test"], tok)
    m = lab.a.wait_log(r"([0-9A-F]{16}) delivery to=<friend@badauth\.test> "
                       r"relay=\S+ delay=[0-9.]+s dsn=(4\.\d\.\d+) "
                       r"status=deferred \(([^\n]*)")
    qid, dsn, why = m.group(1), m.group(2), m.group(3)
    assert dsn.startswith("4.7."), dsn
    assert "the smarthost refused our credentials" in why, why
    assert "535" in why and "authentication failed" in why.lower(), why
    # retried, still deferred, and no DSN went to the sender
    lab.a.wait_log(qid + r" delivery to=<friend@badauth\.test>[^\n]*"
                   r"deferred(?:.|\n)*" + qid + r" delivery "
                   r"to=<friend@badauth\.test>[^\n]*deferred", timeout=10)
    out = queue_list(lab)
    assert qid in out and "refused our credentials" in out, out
    d = lab.a.mail / "alice" / "new"
    if d.exists():
        assert not any(tok.encode() in f.read_bytes() for f in d.iterdir())
    assert not any(tok.encode() in h for h in lab.pf.held())
    delete_from_queue(lab, qid)


def test_relay_scram_with_too_few_iterations_defers(lab):
    """A smarthost whose SCRAM challenge asks for fewer than the 4096
    iterations of RFC 7677 section 4 (i=1: anyone on the path could ask
    for it, and the proof would be cheap to crack) gets no proof: the
    exchange is called off, and the message waits with the reason."""
    tok = token()
    send(lab, ["friend@scram.test"], tok)
    m = lab.a.wait_log(r"([0-9A-F]{16}) delivery to=<friend@scram\.test> "
                       r"relay=\S+ delay=[0-9.]+s dsn=(4\.7\.0) "
                       r"status=deferred \(([^\n]*)")
    qid, why = m.group(1), m.group(3)
    assert "the server asks for 1 SCRAM iterations, fewer than the 4096 " \
        "RFC 7677 requires" in why, why
    out = queue_list(lab)
    assert qid in out and "fewer than the 4096" in out, out
    # Nothing but a cancel: no client-final-message, so no proof.
    assert lab.scram.auth_lines, "the smarthost never got that far"
    assert all(l in (b"*", None) for l in lab.scram.auth_lines), \
        lab.scram.auth_lines
    # One connection per delivery attempt, each attempt after the
    # back-off: no loop of reconnections.
    tries = len(re.findall(qid + r" delivery to=<friend@scram\.test>[^\n]*"
                           r"deferred", lab.a.log()))
    assert lab.scram.connections <= tries + 1, (lab.scram.connections, tries)
    delete_from_queue(lab, qid)


@pytest.mark.parametrize("which", ["via4", "via6"])
def test_relay_via_an_address_in_brackets(lab, which):
    """relay via [192.0.2.1]:PORT and [2001:db8::1]:PORT: the address is
    used as it is, not looked up in DNS (which would fail for it and
    defer all mail until it bounced)."""
    srv = getattr(lab, which)
    before = len(srv.datas)
    tok = token()
    rcpt = f"friend@{which}.test"
    send(lab, [rcpt], tok)
    host = ip(17) if which == "via4" else "::1"
    sent_line(lab, rcpt, r"\[" + re.escape(host) + r"\]:" + str(srv.port))
    assert len(srv.datas) == before + 1
    assert srv.datas[-1][1], srv.datas[-1]      # the final "." came


def test_smarthost_down_then_up(lab):
    tok = token()
    send(lab, ["friend@down.test"], tok)
    m = lab.a.wait_log(r"([0-9A-F]{16}) delivery to=<friend@down\.test> "
                       r"relay=\S+ delay=[0-9.]+s dsn=4\.\d\.\d+ "
                       r"status=deferred")
    qid = m.group(1)
    out = queue_list(lab)
    assert qid in out and "friend@down.test" in out, out
    # the smarthost comes up: a third postern on NET.11
    c = Server(extra=[f"listen submission on {ip(11)} port "
                      f"{lab.down_port} sender-check off"], users=[])
    try:
        user_add(c, "relay", RELAY_PASSWORD)
        c.start()
        assert wait_for(lambda: port_open(ip(11), lab.down_port), 10)
        ((env, _),) = spool_with(c, tok, timeout=20)
        assert env["protocol"] == "ESMTPSA"
        sent_line(lab, "friend@down.test",
                  ip_rx(11) + r"\[" + ip_rx(11) + r"\]:" + str(lab.down_port))
        lab.a.wait_log(qid + r" removed$")
    finally:
        problems = _finish_all([c])
        assert not problems, problems


def test_destinations_take_turns_under_the_total_limit(lab):
    """remote-connections 1 1: one session at a time for the whole queue
    manager.  A message to a server that never answers holds the slot
    first, so messages for four other domains wait their turn for it
    (and each destination is forgotten once served); every one is
    delivered once the slot is free."""
    d = Server(extra=[
        "queue-manager on", "retry-min 1s", "retry-max 2s",
        "mynetworks 127.0.0.1/32", f"resolver 127.0.0.1:{lab.dns.port}",
        "remote-timeout 5s", "remote-connect-timeout 2s",
        "remote-connections 1 1", "queue-managers 1",
    ], users=[])
    rcpts = ["bob@b.test", "bob@plain.test", "bob@nomx.test",
             "bob@twomx.test"]
    try:
        d.start()
        with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as s:
            assert not s.sendmail("alice@example.test", ["x@silent.test"],
                                  message(token()))
        d.wait_log(r"remote submit domain=silent\.test")
        toks = {}
        for r in rcpts:
            toks[r] = token()
            with smtplib.SMTP("127.0.0.1", d.smtp_port, timeout=10) as s:
                assert not s.sendmail("alice@example.test", [r],
                                      message(toks[r]))
        for r in rcpts:
            d.wait_log(r"delivery to=<" + re.escape(r) + r"> relay=\S+ "
                       r"delay=[0-9.]+s dsn=2\.\d\.\d+ status=sent",
                       timeout=20)
            ((env, _),) = spool_with(lab.b, toks[r])
            assert env["rcpt"] == [r]
        log = d.log()
        first_sent = log.index("status=sent")
        assert re.search(r"delivery to=<x@silent\.test>[^\n]*"
                         r"status=deferred", log[:first_sent]), log[-4000:]
    finally:
        problems = _finish_all([d])
        assert not problems, problems


def test_bounce_to_a_remote_sender_goes_out_by_smtp(lab):
    tok = token()
    send(lab, ["x@nx.test"], tok, sender="bob@b.test")
    # the DSN is a message from <> to bob@b.test, delivered to B's MX
    found = spool_with(lab.b, tok)
    envs = [e for e, d in found if b"multipart/report" in d]
    assert envs, found
    assert envs[0]["from"] == "" and envs[0]["rcpt"] == ["bob@b.test"]


def test_crash_while_in_flight_retries_the_recipient(lab):
    """While a message is in flight no other pass starts (a flush does
    not send it twice); after kill -9 the recipient has no recorded
    outcome and is simply sent again at start-up."""
    hang = FakeSMTP(ip(12), 25, "silent")
    a2 = Server(extra=[
        "queue-manager on", "retry-min 1s", "retry-max 2s",
        f"resolver 127.0.0.1:{lab.dns.port}", "remote-timeout 60s",
        "mynetworks 127.0.0.1/32"])
    try:
        with open(a2.conf, "a") as f:
            f.write(f"mailboxes {a2.dir / 'mail'}\n")
        a2.start()
        tok = token()
        with smtplib.SMTP("127.0.0.1", a2.smtp_port, timeout=10) as s:
            s.sendmail("x@example.org", ["y@hang.test"], message(tok))
        assert wait_for(lambda: hang.connections == 1, 10), a2.log()
        subprocess.run([BIN, "queue", "-c", str(a2.conf), "flush"],
                       capture_output=True, timeout=30)
        time.sleep(2.5)                 # retry-min 1s: would have fired
        assert hang.connections == 1, a2.log()
        (qid,) = a2.queue_ids()
        a2.kill9()
        status = a2.spool / "status" / qid
        if status.exists():
            assert "\nremote " not in "\n" + status.read_text()
        a2.start()
        assert wait_for(lambda: hang.connections == 2, 10), a2.log()
        # the server goes away: the outcome comes back, deferred
        hang.close()
        hang = None
        a2.wait_log(qid + r" delivery to=<y@hang\.test> relay=\S+ "
                    r"delay=[0-9.]+s dsn=4\.\d\.\d+ status=deferred")
        assert "remote 0 remote:y@hang.test deferred" in \
            (a2.spool / "status" / qid).read_text()
    finally:
        if hang is not None:
            hang.close()
        problems = _finish_all([a2])
        assert not problems, problems
