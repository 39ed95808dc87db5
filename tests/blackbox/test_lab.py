"""The OP25B lab (issue 8): the story of the source documents played end
to end in network namespaces (tests/lab/lab.py draws the map).  An ISP
blocks outbound port 25 from its dynamic customers with the rules of
`postern op25b-rules`; a home user and a home server get their mail out
through the ISP's submission port with AUTH; a travelling user submits
on 587/465 or, with an old client, through POP before SMTP; `postern
check` tells a good server from a bad one.

Needs root, `ip netns`, nft and dnsmasq: otherwise every scenario is
SKIPped with the reason.  A scenario whose feature is not in this build
(checked with `postern config check` and by the listener answering) is
SKIPped naming what is missing, never passed.  Everything is torn down
(processes by PID, then the namespaces) even when a step fails."""
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import BIN

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
import lab as labmod                                    # noqa: E402
from lab import A, HOME, ISPMAIL, OUTSIDE, PASSWORD      # noqa: E402

POP_BEFORE_SMTP = 4             # seconds a POP3 login opens relay on 25


@pytest.fixture(scope="module")
def lab():
    why = labmod.unavailable()
    if why:
        pytest.skip(f"SKIP: {why}")
    L = labmod.Lab(BIN)
    problems = []
    try:
        L.build()
        L.mx = L.server("mx", OUTSIDE, A["mx"], [
            "hostname mx.remote.test", "domains remote.test",
            f"listen smtp on {A['mx']} port 25",
            f"listen submission on {A['mx']} port 587",
            f"listen submissions on {A['mx']} port 465",
            "mynetworks 127.0.0.1/32", "queue-manager on",
        ], users=[("carol", ["carol@remote.test"])])
        L.isp = L.server("isp", ISPMAIL, A["isp"], [
            "hostname mail.isp.test", "domains isp.test",
            f"tls cert {L.dir / 'isp.pem'} key {L.dir / 'isp.key'}",
            f"listen smtp on {A['isp']} port 25",
            f"listen submission on {A['isp']} port 587",
            f"listen submissions on {A['isp']} port 465",
            "mynetworks 127.0.0.1/32", "queue-manager on",
            "retry-min 1s", "retry-max 2s",
        ], users=[("alice", ["alice@isp.test", "alice@home.test"]),
                  ("bob", ["bob@isp.test"])],
            optional={
                "remote delivery": [f"resolver {A['dns']}:53",
                                    "relay direct",
                                    "remote-connect-timeout 3s"],
                "POP3 and pop-before-smtp": [
                    f"listen pop3 on {A['isp']} port 110",
                    f"pop-before-smtp {POP_BEFORE_SMTP}s"],
            })
        cred = L.dir / "home-relay.auth"
        cred.write_text(f"alice {PASSWORD['alice']}\n")
        os.chmod(cred, 0o600)
        L.home = L.server("home", HOME, "127.0.0.1", [
            "hostname pc.home.test", "domains home.test",
            "listen smtp on 127.0.0.1 port 25",
            "mynetworks 127.0.0.0/8", "queue-manager on",
            "retry-min 1s", "retry-max 2s",
        ], optional={"relay via ... auth FILE": [
            f"relay via {A['isp']}:submission auth {cred}"]})
        L.bad = L.server("bad", OUTSIDE, A["bad"], [
            "hostname open.bad.test", "domains bad.test",
            "mynetworks 0.0.0.0/0",
            f"listen smtp on {A['bad']} port 25",
            f"listen submission on {A['bad']} port 587 auth optional",
            "queue-manager off",
        ], users=[("eve", ["eve@bad.test"])], audited=False)
        for srv in (L.mx, L.isp, L.home, L.bad):
            L.start(srv)
        if "POP3 and pop-before-smtp" not in L.missing:
            w = L.client(ISPMAIL, op="wait", host=A["isp"], port=110,
                         timeout=10)
            if not w or w.get("result") != "banner":
                L.missing["POP3 and pop-before-smtp"] = \
                    f"`listen pop3` does not answer on 110: {w}"
        yield L
    finally:
        problems = L.teardown()
        print(f"\nlab: set up, scenarios and teardown took "
              f"{L.elapsed():.1f}s; logs in {L.dir}")
        if problems:
            sys.stdout.write("\n".join(L.log(n)[-4000:] for n in
                                       ("isp", "home", "mx", "bad")))
        L.cleanup()
        if problems:
            pytest.fail("lab teardown: " + "; ".join(problems),
                        pytrace=False)


def need(L, *features):
    for f in features:
        if f in L.missing:
            msg = f"SKIP: {f} is missing in this build: {L.missing[f]}"
            print(msg)
            pytest.skip(msg)


def token():
    return "lab-" + uuid.uuid4().hex[:12]


def message(sender, rcpt, tok):
    return (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {tok}\r\n\r\n"
            f"OP25B lab message {tok}\r\n")


def submit(L, ns, host, port, user=None, sender=None, rcpt=None, tok=None,
           tls="starttls", source=None):
    spec = dict(op="smtp", host=host, port=port, tls=tls, source=source,
                **{"from": sender}, to=[rcpt])
    if user:
        spec.update(user=user, password=PASSWORD[user])
    if tok:
        spec["data"] = message(sender, rcpt, tok)
    r = L.client(ns, **spec)
    assert "exception" not in r, r
    return r


# ----------------------------------------------------------------------
# 1. OP25B: from home, the remote MX's port 25 is dropped

def test_1_home_cannot_reach_remote_mx_on_25(lab):
    L = lab
    # the MX is up: from outside it greets
    r = L.client(OUTSIDE, op="connect", host=A["mx"], port=25,
                 source=A["traveller"], timeout=3)
    assert r["result"] == "banner", r
    # from home the SYN vanishes at the ISP's router
    r = L.client(HOME, op="connect", host=A["mx"], port=25, timeout=2)
    assert r["result"] == "timeout", r
    # ... while the submission port of the same host answers
    r = L.client(HOME, op="connect", host=A["mx"], port=587, timeout=3)
    assert r["result"] == "banner", r
    # the router counted the drop
    rules = L.in_ns("isp", "nft", "list", "table", "inet", "postern_op25b")
    assert re.search(r"ip saddr @customers4 tcp dport 25 counter packets "
                     r"[1-9]", rules.stdout), rules.stdout
    # and postern probe says so, with the advice
    p = L.postern(HOME, "probe", A["mx"], "--timeout", "2")
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"25/smtp +timeout", p.stdout), p.stdout
    assert re.search(r"587/submission +banner", p.stdout), p.stdout
    assert "blocked from this network (OP25B)" in p.stdout
    assert "relay via SMARTHOST:submission auth" in p.stdout
    # the ISP's own mail server stays reachable on 25 from home
    p = L.postern(HOME, "probe", A["isp"], "--timeout", "2")
    assert p.returncode == 0, p.stdout + p.stderr


# ----------------------------------------------------------------------
# 2. submission on the ISP's 587 with AUTH, delivered to the remote MX

def test_2_home_user_submits_on_587_and_mail_arrives(lab):
    L = lab
    tok = token()
    r = submit(L, HOME, A["isp"], 587, user="alice", sender="alice@isp.test",
               rcpt="carol@remote.test", tok=tok)
    assert r["auth"][0] == 235, r
    assert r["rcpt"][0][0] == 250, r
    assert r["data"][0] == 250, r
    need(L, "remote delivery")
    hits = L.maildir_with(L.mx, "carol", tok)
    assert hits, ("not delivered to carol's Maildir\n" + L.log("isp")[-4000:]
                  + L.log("mx")[-2000:])
    assert b"Return-Path: <alice@isp.test>" in hits[0].read_bytes()


# ----------------------------------------------------------------------
# 3. without AUTH: 530 on 587, 554 relay denied on 25

def test_3_no_auth_530_on_587_and_no_relay_on_25(lab):
    L = lab
    r = submit(L, HOME, A["isp"], 587, sender="alice@isp.test",
               rcpt="carol@remote.test")
    assert r["mail"][0] == 530 and "5.7.0" in r["mail"][1], r
    r = submit(L, HOME, A["isp"], 25, sender="alice@isp.test",
               rcpt="carol@remote.test", tls=None)
    assert r["mail"][0] == 250, r
    assert r["rcpt"][0][0] == 554 and "5.7.1" in r["rcpt"][0][1], r
    # but mail for the ISP's own domain is welcome on 25
    r = submit(L, HOME, A["isp"], 25, sender="alice@isp.test",
               rcpt="bob@isp.test", tls=None)
    assert r["rcpt"][0][0] == 250, r


# ----------------------------------------------------------------------
# 4. the home server relays via the ISP's 587 with stored credentials

def test_4_home_server_relays_via_isp_submission(lab):
    L = lab
    need(L, "relay via ... auth FILE", "remote delivery")
    tok = token()
    r = submit(L, HOME, "127.0.0.1", 25, sender="alice@home.test",
               rcpt="carol@remote.test", tok=tok, tls=None)
    assert r["rcpt"][0][0] == 250 and r["data"][0] == 250, r
    hits = L.maildir_with(L.mx, "carol", tok)
    assert hits, ("home -> ISP:587 -> MX failed\n" + L.log("home")[-4000:]
                  + L.log("isp")[-3000:])
    # it went through the ISP with AUTH, not straight to the MX
    assert re.search(rf"relay={re.escape(A['isp'])}|{re.escape(A['isp'])}",
                     L.log("home")), L.log("home")[-3000:]
    assert re.search(r"smtp auth user=alice mech=\S+ result=ok",
                     L.log("isp")), L.log("isp")[-3000:]


# ----------------------------------------------------------------------
# 5. the travelling user: no relay on 25, submission with AUTH works

def test_5_traveller_no_relay_on_25_but_587_and_465(lab):
    L = lab
    src = A["traveller"]
    r = submit(L, OUTSIDE, A["isp"], 25, sender="bob@isp.test",
               rcpt="carol@remote.test", tls=None, source=src)
    assert r["rcpt"][0][0] == 554 and "5.7.1" in r["rcpt"][0][1], r
    toks = []
    for port, tls in ((587, "starttls"), (465, "implicit")):
        tok = token()
        r = submit(L, OUTSIDE, A["isp"], port, user="bob",
                   sender="bob@isp.test", rcpt="carol@remote.test", tok=tok,
                   tls=tls, source=src)
        assert r["auth"][0] == 235 and r["data"][0] == 250, (port, r)
        toks.append(tok)
    need(L, "remote delivery")
    for tok in toks:
        assert L.maildir_with(L.mx, "carol", tok), L.log("isp")[-4000:]


# ----------------------------------------------------------------------
# 6. POP before SMTP: a POP3 login opens relay on 25, for a while only

def test_6_pop_before_smtp(lab):
    L = lab
    need(L, "POP3 and pop-before-smtp")
    src = A["traveller"]

    def relay_code():
        r = submit(L, OUTSIDE, A["isp"], 25, sender="bob@isp.test",
                   rcpt="carol@remote.test", tls=None, source=src)
        return r["rcpt"][0][0] if r["rcpt"] else r["mail"][0]

    assert relay_code() == 554
    r = L.client(OUTSIDE, op="pop3", host=A["isp"], port=110, stls=True,
                 user="bob", password=PASSWORD["bob"], source=src)
    assert r.get("login", [False])[0], r
    t_login = time.monotonic()
    assert relay_code() == 250
    # another address of the same network has no grant
    r = submit(L, OUTSIDE, A["isp"], 25, sender="bob@isp.test",
               rcpt="carol@remote.test", tls=None, source=A["bad"])
    assert r["rcpt"][0][0] == 554, r
    # after the configured time, relay is closed again
    time.sleep(max(0.0, POP_BEFORE_SMTP + 1.0 -
                   (time.monotonic() - t_login)))
    assert relay_code() == 554


# ----------------------------------------------------------------------
# 7. postern check: the ISP passes, the misconfigured server fails

def test_7_check_isp_passes_and_bad_server_fails(lab):
    L = lab
    ports = "25,587,465"
    if "POP3 and pop-before-smtp" not in L.missing:
        ports += ",110"
    else:
        print("SKIP: the POP3 part of the check: "
              + L.missing["POP3 and pop-before-smtp"])
    r = L.postern(HOME, "check", A["isp"], "--ports", ports, "--user",
                  "alice", "--password-stdin", "--from", "alice@isp.test",
                  "--local-rcpt", "bob@isp.test", "--cafile", L.ca,
                  "--timeout", "5", input=PASSWORD["alice"] + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [l for l in r.stdout.splitlines()
             if re.match(r"^(PASS|INFO|WARN|FAIL) ", l)]
    assert lines and not [l for l in lines if l.startswith(("FAIL", "WARN"))], \
        r.stdout
    for want in (r"25/smtp +local-rcpt", r"25/smtp +open-relay",
                 r"587/submission +mail-before-auth",
                 r"587/submission +auth-login",
                 r"587/submission +test-transaction",
                 r"465/submissions +implicit-tls",
                 r"587/submission +cert-trust +verified",
                 r"587/submission +cert-name"):
        assert re.search(r"^PASS +" + want, r.stdout, re.M), (want, r.stdout)

    r = L.postern(OUTSIDE, "check", A["bad"], "--ports", "25,587",
                  "--local-rcpt", "eve@bad.test", "--timeout", "5", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    res = json.loads(r.stdout)
    fails = {(x["service"], x["check"]) for x in res
             if x["verdict"] == "FAIL"}
    assert ("smtp", "open-relay") in fails, r.stdout
    assert ("submission", "mail-before-auth") in fails, r.stdout
    # nothing was sent by the check, even through the open relay
    q = L.bad["dir"] / "spool" / "queue"
    assert not q.exists() or not list(q.iterdir())
