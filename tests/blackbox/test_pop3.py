"""POP3 (issue 6): RFC 1939 over the Maildir of local delivery, on 110
with STLS and 995 with implicit TLS.  Independent clients: poplib,
curl, fetchmail, openssl s_client; the raw client for what they cannot
say.  Logins go through the auth process like SMTP AUTH."""
import base64
import hashlib
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import (NET_TIMEOUT, CyrusClient, SMTPClient, _finish_all,
                      copies_in_memory, owned_server, trickle_until_closed,
                      wait_for)
from pop3_helpers import (PASSWORD, POP3Raw, box_files, make_box,
                          pop3_server, postern_user, seed, tls_context)

TOOL_TIMEOUT = 30

MSG1 = (b"Return-Path: <a@remote.example>\r\nSubject: one\r\n\r\n"
        b"first body line\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n")
MSG2 = (b"Subject: two\r\nX-8bit: \xe3\x81\x82\r\n\r\n"
        + b"".join(b"line %d \xff\r\n" % i for i in range(1, 21)))
MSG3 = b"Subject: three\r\n\r\n" + b"x" * 998 + b"\r\n" * 3


@pytest.fixture(scope="module")
def srv():
    s = pop3_server(extra=["apop on"], users=("hoge", "fuga", "lockd",
                                              "inuse", "tester", "carol",
                                              "bigbox", "mover",
                                              "lfbox", "hugebox"))
    # APOP needs the secret `postern user passwd` keeps when apop is on.
    assert "apop=" in s.users_path.read_text()
    seed(s, "hoge", "1700000001.M1P1Q1.test", MSG1)
    seed(s, "hoge", "1700000002.M2P1Q1.test", MSG2)
    seed(s, "hoge", "1700000003.M3P1Q1.test:2,S", MSG3, sub="cur")
    yield from owned_server(s)


def poplib_stls(srv, user="hoge"):
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=NET_TIMEOUT)
    p.stls(context=tls_context())
    p.user(user)
    p.pass_(PASSWORD)
    return p


def retr_bytes(p, n):
    resp, lines, octets = p.retr(n)
    return b"".join(l + b"\r\n" for l in lines), octets, resp


# ---------------------------------------------------------------------------

def test_capa_and_cleartext_refused_before_stls(srv):
    with POP3Raw(srv.pop3_port) as c:
        assert re.match(r"^\+OK .* <\d+\.[0-9a-f]{16}\.\d+@mail\.example\.test>$",
                        c.greeting), c.greeting
        assert c.cmd("CAPA").startswith("+OK")
        caps = c.multi()
        assert "STLS" in caps and "UIDL" in caps and "TOP" in caps, caps
        assert "RESP-CODES" in caps and "AUTH-RESP-CODE" in caps
        assert "USER" not in caps and not any(l.startswith("SASL")
                                              for l in caps), caps
        assert c.cmd("USER hoge") == ("-ERR [AUTH] Plaintext authentication "
                                      "is only allowed after STLS")
        assert c.cmd("PASS x").startswith("-ERR")
        assert c.cmd("AUTH PLAIN AGhvZ2UAeA==").startswith("-ERR [AUTH]")
        assert c.cmd("STAT") == "-ERR Command not valid in this state"
        assert c.cmd("XTND XMIT") == "-ERR Unknown command"
        c.starttls()
        assert c.cmd("CAPA").startswith("+OK")
        caps = c.multi()
        assert "STLS" not in caps and "USER" in caps, caps
        assert "SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256" in caps, caps
        assert c.cmd("STLS").startswith("-ERR")
        assert c.cmd("QUIT") == "+OK Bye"
    srv.wait_log(r"pop3 tls version=TLSv1\.[23]")


def test_stls_discards_pipelined_input(srv):
    """RFC 2595: what came in the clear after STLS is not a command."""
    with POP3Raw(srv.pop3_port) as c:
        c.send("STLS\r\nUSER hoge\r\n")
        assert c.line().startswith("+OK")
        c.sock = tls_context().wrap_socket(c.sock)
        # Had "USER hoge" survived, PASS would be accepted now.
        assert c.cmd(f"PASS {PASSWORD}") == "-ERR Send USER first"
        assert c.login().startswith("+OK")


def test_poplib_user_pass_stat_list_retr_top_uidl(srv):
    p = poplib_stls(srv)
    try:
        count, size = p.stat()
        assert (count, size) == (3, len(MSG1) + len(MSG2) + len(MSG3))
        resp, listing, _ = p.list()
        assert [l.split() for l in listing] == [
            [b"1", str(len(MSG1)).encode()], [b"2", str(len(MSG2)).encode()],
            [b"3", str(len(MSG3)).encode()]]
        assert p.list(2) == f"+OK 2 {len(MSG2)}".encode()
        for n, msg in ((1, MSG1), (2, MSG2), (3, MSG3)):
            data, octets, resp = retr_bytes(p, n)
            assert data == msg, (n, data)
            assert resp == f"+OK {len(msg)} octets".encode()
        resp, lines, _ = p.top(2, 3)
        assert lines == [b"Subject: two", b"X-8bit: \xe3\x81\x82", b"",
                         b"line 1 \xff", b"line 2 \xff", b"line 3 \xff"]
        resp, lines, _ = p.top(1, 0)
        assert lines == [b"Return-Path: <a@remote.example>", b"Subject: one",
                         b""]
        resp, uids, _ = p.uidl()
        assert [u.split()[1] for u in uids] == [
            b"1700000001.M1P1Q1.test", b"1700000002.M2P1Q1.test",
            b"1700000003.M3P1Q1.test"]
        assert p.uidl(3) == b"+OK 3 1700000003.M3P1Q1.test"
        with pytest.raises(poplib.error_proto, match=r"No such message"):
            p.retr(4)
        with pytest.raises(poplib.error_proto, match=r"No such message"):
            p.retr(0)
        p.noop()
    finally:
        p.quit()
    # Reading moved new/ to cur/ with the info suffix; nothing deleted.
    assert box_files(srv, "hoge", "new") == []
    assert box_files(srv, "hoge") == ["1700000001.M1P1Q1.test:2,",
                                      "1700000002.M2P1Q1.test:2,",
                                      "1700000003.M3P1Q1.test:2,S"]
    srv.wait_log(r"pop3 login user=hoge mech=USER messages=3 octets=\d+")
    srv.wait_log(rf"pop3 retr msg=1 uid=1700000001\.M1P1Q1\.test "
                 rf"octets={len(MSG1)}")
    srv.wait_log(r"pop3 quit user=hoge deleted=0 kept=3")


def test_pop3s_implicit_tls(srv):
    p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, context=tls_context(),
                        timeout=NET_TIMEOUT)
    try:
        assert p.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert "STLS" not in p.capa() and "USER" in p.capa()
        p.user("hoge")
        p.pass_(PASSWORD)
        assert p.stat()[0] == 3
        assert retr_bytes(p, 1)[0] == MSG1
    finally:
        p.quit()


def test_apop(srv):
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=NET_TIMEOUT)
    try:
        # APOP sends no password: allowed without TLS (RFC 1939 7).
        p.apop("hoge", PASSWORD)
        assert p.stat()[0] == 3
    finally:
        p.quit()
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=NET_TIMEOUT)
    try:
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p.apop("hoge", "wrong password")
        with pytest.raises(poplib.error_proto, match=r"Syntax"):
            p._shortcmd("APOP hoge nothex")
    finally:
        p.quit()
    srv.wait_log(r"pop3 login user=hoge mech=APOP")
    srv.wait_log(r"authd: auth failed user=hoge address=127\.0\.0\.1 "
                 r"mech=APOP")


def test_sasl_auth_plain_login_and_cancel(srv):
    with POP3Raw(srv.pop3s_port, tls=True) as c:
        assert c.cmd("AUTH PLAIN") == "+ "
        assert c.cmd("*") == "-ERR Authentication cancelled"
        assert c.cmd("AUTH LOGIN").startswith("+ ")
        assert c.cmd(base64.b64encode(b"hoge").decode()).startswith("+ ")
        assert c.cmd(base64.b64encode(b"wrong").decode()) == \
            "-ERR [AUTH] Authentication failed"
        assert c.cmd("AUTH PLAIN !!!") == "-ERR Invalid base64 data"
        ir = base64.b64encode(f"\0hoge\0{PASSWORD}".encode()).decode()
        assert c.cmd(f"AUTH PLAIN {ir}").startswith("+OK Logged in, 3 ")
        assert c.cmd("STAT").startswith("+OK 3 ")
        assert c.cmd("AUTH PLAIN").startswith("-ERR Command not valid")
        assert c.cmd("QUIT").startswith("+OK")
    log = srv.log()
    assert PASSWORD not in log and ir not in log
    srv.wait_log(r"pop3 login user=hoge mech=PLAIN")


def test_digest_md5_names_the_pop_service():
    """POP3's SASL service is "pop" (RFC 5034 section 4): a DIGEST-MD5
    response Cyrus' client made for it logs in, one made for SMTP on the
    same server does not."""
    srv = pop3_server(extra=["auth-mechanisms PLAIN DIGEST-MD5"])
    try:
        for service, want in (("pop", "+OK Logged in"),
                              ("smtp", "-ERR [AUTH] Authentication failed")):
            cl = CyrusClient("DIGEST-MD5", service, "127.0.0.1", "hoge",
                             PASSWORD)
            try:
                with POP3Raw(srv.pop3s_port, tls=True) as c:
                    line = c.cmd("AUTH DIGEST-MD5")
                    while line.startswith("+ "):
                        line = c.cmd(cl.step(line[2:]))
            finally:
                cl.close()
            assert line.startswith(want), (service, line)
        srv.wait_log(r"authd: auth refused address=127\.0\.0\.1 "
                     r"mech=DIGEST-MD5: digest-uri \"smtp/127\.0\.0\.1\" "
                     r"names another service")
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_retr_after_another_reader_renamed_or_removed_the_file(srv):
    """Another reader of the Maildir (an IMAP server, a second node over
    NFS) may give a message new flags (a new name) or remove it while
    this session holds the list: RETR and TOP follow the new name, the
    removed one gets -ERR, and the session goes on."""
    seed(srv, "mover", "1700002001.M1P5Q5.test",
         b"Subject: a\r\n\r\nalpha\r\n")
    seed(srv, "mover", "1700002002.M2P5Q5.test",
         b"Subject: b\r\n\r\nbeta\r\n")
    with POP3Raw(srv.pop3s_port, tls=True) as c:
        assert c.login("mover").startswith("+OK")
        c.cmd("UIDL")
        num = {uid: n for n, uid in (l.split() for l in c.multi())}
        cur = srv.mail / "mover" / "cur"
        on_disk = {name.split(":")[0]: name for name in os.listdir(cur)}
        renamed, removed = "1700002001.M1P5Q5.test", "1700002002.M2P5Q5.test"
        os.rename(cur / on_disk[renamed], cur / (renamed + ":2,S"))
        os.unlink(cur / on_disk[removed])

        assert c.cmd(f"RETR {num[renamed]}").startswith("+OK")
        assert c.multi() == ["Subject: a", "", "alpha"]
        assert c.cmd(f"RETR {num[removed]}") == (
            f"-ERR Message {num[removed]} has been removed from the mailbox")
        assert c.cmd(f"TOP {num[renamed]} 0").startswith("+OK")
        assert c.multi() == ["Subject: a", ""]
        assert c.cmd("NOOP").startswith("+OK")
        # Renamed once more: QUIT's update follows that name too.
        os.rename(cur / (renamed + ":2,S"), cur / (renamed + ":2,RS"))
        assert c.cmd(f"DELE {num[renamed]}").startswith("+OK")
        assert c.cmd("QUIT").startswith("+OK")
    srv.wait_log(r"pop3 disconnect reason=quit user=mover retr=1 dele=1")
    assert box_files(srv, "mover") == []


def test_dele_rset_drop_and_quit(srv):
    for i in range(3):
        seed(srv, "fuga", f"1700000{i}00.M{i}P9Q9.test", b"Subject: %d\r\n\r\n"
             b"body\r\n" % i)
    # Deleted, then undeleted by RSET, then deleted, then the connection
    # drops: RFC 1939 section 6, nothing is removed.
    with POP3Raw(srv.pop3s_port, tls=True) as c:
        assert c.login("fuga").startswith("+OK")
        assert c.cmd("DELE 1") == "+OK Message 1 deleted"
        assert c.cmd("DELE 1") == "-ERR Message 1 is deleted"
        assert c.cmd("RETR 1") == "-ERR Message 1 is deleted"
        assert c.cmd("STAT").startswith("+OK 2 ")
        assert c.cmd("RSET").startswith("+OK 3 messages")
        assert c.cmd("STAT").startswith("+OK 3 ")
        assert c.cmd("DELE 2") == "+OK Message 2 deleted"
        c.cmd("LIST")
        assert [l.split()[0] for l in c.multi()] == ["1", "3"]
    srv.wait_log(r"pop3 disconnect reason=\S+ user=fuga retr=0 dele=1")
    assert len(box_files(srv, "fuga")) == 3
    # DELE then QUIT: gone from the disk before the +OK.
    with POP3Raw(srv.pop3s_port, tls=True) as c:
        assert c.login("fuga").startswith("+OK")
        assert c.cmd("DELE 2") == "+OK Message 2 deleted"
        assert c.cmd("QUIT") == "+OK Bye, 2 messages left"
        files = box_files(srv, "fuga")
        assert len(files) == 2 and not any("M1P9Q9" in f for f in files)
    srv.wait_log(r"pop3 quit user=fuga deleted=1 kept=2")


def test_in_use_and_locked_user(srv):
    with POP3Raw(srv.pop3s_port, tls=True) as a:
        assert a.login("inuse").startswith("+OK")
        with POP3Raw(srv.pop3s_port, tls=True) as b:
            assert b.login("inuse") == ("-ERR [IN-USE] Mailbox is in use by "
                                        "another session")
            # Still in AUTHORIZATION: it may try again later.
            a.cmd("QUIT")
            assert b.login("inuse").startswith("+OK")
    # The auth process notices a changed users file within a second.
    def login_lockd():
        with POP3Raw(srv.pop3s_port, tls=True) as c:
            return c.login("lockd")
    assert postern_user(srv, "lock", "lockd").returncode == 0
    time.sleep(1.1)       # the auth process reads the users file itself
    assert login_lockd() == "-ERR [AUTH] Authentication failed"
    assert postern_user(srv, "unlock", "lockd").returncode == 0
    assert wait_for(lambda: login_lockd().startswith("+OK"), 5)
    srv.wait_log(r"pop3 login user=inuse mech=USER result=in-use")


def test_curl_pop3_stls_and_pop3s(srv):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    r = subprocess.run(["curl", "-sS", "--ssl-reqd", "-k",
                        f"pop3://127.0.0.1:{srv.pop3_port}/1",
                        "-u", f"hoge:{PASSWORD}"],
                       capture_output=True, timeout=TOOL_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == MSG1
    r = subprocess.run(["curl", "-sS", "-k", f"pop3s://127.0.0.1:{srv.pop3s_port}/",
                        "-u", f"hoge:{PASSWORD}"],
                       capture_output=True, timeout=TOOL_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(b"\r\n")[:3] == [
        b"1 %d" % len(MSG1), b"2 %d" % len(MSG2), b"3 %d" % len(MSG3)]
    # curl's own SASL: it picks a mechanism from CAPA.
    r = subprocess.run(["curl", "-sS", "-k", f"pop3s://127.0.0.1:{srv.pop3s_port}/2",
                        "--login-options", "AUTH=SCRAM-SHA-256",
                        "-u", f"hoge:{PASSWORD}"],
                       capture_output=True, timeout=TOOL_TIMEOUT)
    if r.returncode == 0:
        assert r.stdout == MSG2
    r = subprocess.run(["curl", "-sS", "-k", f"pop3s://127.0.0.1:{srv.pop3s_port}/1",
                        "--login-options", "AUTH=CRAM-MD5",
                        "-u", f"hoge:{PASSWORD}"],
                       capture_output=True, timeout=TOOL_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == MSG1


def test_openssl_s_client(srv):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    script = f"USER hoge\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode()
    for args in (["-starttls", "pop3", "-connect",
                  f"127.0.0.1:{srv.pop3_port}"],
                 ["-connect", f"127.0.0.1:{srv.pop3s_port}"]):
        r = subprocess.run(["openssl", "s_client", "-quiet"] + args,
                           input=script, capture_output=True,
                           timeout=TOOL_TIMEOUT)
        out = r.stdout.decode(errors="replace")
        assert "+OK Logged in, 3 messages" in out, out + r.stderr.decode()
        assert "+OK 3 " in out and "+OK Bye" in out, out


def test_fetchmail_into_an_mda(srv, tmp_path):
    if not shutil.which("fetchmail"):
        pytest.skip("fetchmail is not installed (scripts/deps.sh test)")
    for i in range(2):
        seed(srv, "tester", f"1700001{i}00.M{i}P7Q7.test",
             b"Subject: fetch %d\r\n\r\n.dot line\r\nbody %d\r\n" % (i, i))
    out = tmp_path / "mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll 127.0.0.1 service {srv.pop3s_port} protocol pop3 '
                  f'user "tester" password "{PASSWORD}" ssl no sslcertck '
                  f'mda "/bin/sh -c \'cat >> {out}\'"\n')
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog",
                        "--nodetach", "-v"], capture_output=True,
                       env=env, timeout=TOOL_TIMEOUT)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    text = out.read_bytes()
    assert b"Subject: fetch 0" in text and b"Subject: fetch 1" in text
    assert b"\n.dot line" in text and b"\n..dot line" not in text
    # fetchmail deletes what it fetched (no "keep"): at QUIT.
    assert box_files(srv, "tester") == []
    srv.wait_log(r"pop3 quit user=tester deleted=2 kept=0")


def test_submit_deliver_retrieve_byte_identical(srv):
    """587 with AUTH -> queue manager -> Maildir -> POP3 RETR."""
    body = (b"From: hoge@example.test\r\nTo: fuga@example.test\r\n"
            b"Subject: round trip\r\n\r\n.one dot\r\n..two dots\r\n.\r\n"
            b"8-bit \xe3\x81\x82 \xff\xfe\r\n" + b"y" * 990 + b"\r\nlast\r\n")
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=NET_TIMEOUT) as s:
        s.starttls(context=tls_context())
        s.login("hoge", PASSWORD)
        s.sendmail("hoge@example.test", ["carol@example.test"], body,
                   mail_options=["BODY=8BITMIME"])
    ok = wait_for(lambda: box_files(srv, "carol", "new"), 20)
    assert ok, srv.log()[-5000:]
    new = box_files(srv, "carol", "new")[0]
    on_disk = (srv.mail / "carol" / "new" / new).read_bytes()
    p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, context=tls_context(),
                        timeout=NET_TIMEOUT)
    try:
        p.user("carol")
        p.pass_(PASSWORD)
        resp, uids, _ = p.uidl()
        n = [u.split()[0] for u in uids if u.split()[1] ==
             maildir_uid(new).encode()][0]
        data, octets, resp = retr_bytes(p, int(n))
    finally:
        p.quit()
    assert data == on_disk
    assert resp == f"+OK {len(on_disk)} octets".encode()
    assert data.endswith(body), data[-300:]
    assert data.startswith(b"Return-Path: <hoge@example.test>\r\n"
                           b"Delivered-To: carol@example.test\r\n")


def maildir_uid(name):
    """UIDL's id of a Maildir file (maildir_read.h): the name before ':',
    or the hex of its SHA-256 cut to 70 characters if it is longer or
    not printable."""
    base = name.split(":")[0]
    if 0 < len(base) <= 70 and all(0x21 <= c <= 0x7e for c in base.encode()):
        return base
    return hashlib.sha256(base.encode()).hexdigest()[:70]


def test_sizes_are_what_retr_sends(srv):
    """RFC 1939: STAT, LIST and RETR's "+OK n octets" give the size the
    message has on the wire (CRLF line ends, before dot-stuffing).  A
    file written by another program with bare LF line ends is counted as
    sent; postern's own deliveries carry that size in their name
    (Maildir++ ",S=n,W=n") so that no login has to read them."""
    foreign = b"Subject: lf\n\nline one\n.dot line\r\nno end"
    seed(srv, "lfbox", "1700000020.M1P1Q1.test", foreign)
    body = b"Subject: delivered\r\n\r\n" + b"z" * 500 + b"\r\n"
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=NET_TIMEOUT) as c:
        c.starttls(context=tls_context())
        c.login("hoge", PASSWORD)
        c.sendmail("hoge@example.test", ["lfbox@example.test"], body)
    assert wait_for(lambda: len(box_files(srv, "lfbox", "new")) == 2, 20), \
        srv.log()[-3000:]
    (mine,) = [f for f in box_files(srv, "lfbox", "new")
               if not f.startswith("1700000020.")]
    size = (srv.mail / "lfbox" / "new" / mine).stat().st_size
    assert mine.endswith(f",S={size},W={size}"), mine

    p = poplib_stls(srv, "lfbox")
    try:
        count, total = p.stat()
        _, listing, _ = p.list()
        sizes = {int(a): int(b) for a, b in (l.split() for l in listing)}
        sent = {}
        for n in sizes:
            resp, lines, octets = p.retr(n)
            sent[n] = octets
            assert resp == f"+OK {sizes[n]} octets".encode(), (resp, n)
    finally:
        p.quit()
    assert count == 2
    assert sizes == sent, (sizes, sent)
    assert total == sum(sent.values())
    # the foreign file: a CR before each of 3 bare LFs, and a CRLF after
    # the last line, which has none
    assert sorted(sent.values())[0] == len(foreign) + 3 + 2


def test_a_mailbox_over_the_snapshot_limit_shows_its_oldest(srv):
    """A session sees at most 50,000 messages (maildir_read.h).  Past
    that it must be the oldest ones, whatever order the directory lists
    them in: a client that downloads and deletes then works through the
    mailbox in order instead of leaving some old mail behind."""
    cur = make_box(srv, "hugebox") / "cur"
    owner = os.stat(cur.parent)
    total, limit = 52000, 50000
    for i in range(total):
        p = cur / f"{1700000000 + i}.M{i}P1Q1.test,S=2,W=2:2,"
        with open(p, "wb") as f:
            f.write(b"\r\n")
        os.chown(p, owner.st_uid, owner.st_gid)
    p = poplib_stls(srv, "hugebox")
    try:
        count, total_octets = p.stat()
        _, uids, _ = p.uidl()
    finally:
        p.quit()
    assert count == limit and total_octets == 2 * limit
    got = [u.split()[1].decode() for u in uids]
    assert got == [f"{1700000000 + i}.M{i}P1Q1.test,S=2,W=2"
                   for i in range(limit)], (got[:3], got[-3:])
    assert re.search(r"holds more than 50000 messages; this session sees "
                     r"the oldest 50000, 2000 newer wait", srv.log()), \
        "\n".join(l[:300] for l in srv.log().splitlines() if "hugebox" in l)
    shutil.rmtree(cur.parent)


def test_protocol_edges(srv):
    with POP3Raw(srv.pop3s_port, tls=True) as c:
        assert c.cmd("") == "-ERR Unknown command"
        assert c.cmd("USER " + "u" * 70) == "-ERR Syntax error in arguments"
        c.send("NOOP " + "x" * 5000 + "\r\n")
        assert c.line() == "-ERR Line too long"
        assert c.login().startswith("+OK")
        for bad in ("RETR", "RETR x", "RETR -1", "TOP 1", "TOP 1 -1",
                    "LIST 1 2"):
            assert c.cmd(bad) == "-ERR Syntax error in arguments", bad
        # Ten protocol errors (max-errors) end the session.
        assert c.cmd("RETR 99") == "-ERR No such message"
        assert c.cmd("STAT 1") == "-ERR Syntax error in arguments"
        assert c.cmd("DELE") == ("-ERR Too many errors, closing connection")
        assert c.closed()
    with POP3Raw(srv.pop3s_port, tls=True) as c:
        assert c.login().startswith("+OK")
        # Pipelined: every reply comes, in order (RFC 2449 PIPELINING).
        c.send("STAT\r\nUIDL 1\r\nTOP 1 0\r\nNOOP\r\n")
        assert c.line().startswith("+OK 3 ")
        assert c.line().startswith("+OK 1 1700000001")
        assert c.line() == "+OK Top of message follows"
        c.multi()
        assert c.line() == "+OK"
        assert c.cmd("QUIT").startswith("+OK Bye")


def test_large_message_streams_byte_identical(srv):
    """A message bigger than any buffer: streamed, over STLS (a TLS
    filter) and over 995, with the octet count LIST gave."""
    line = b".dotted \xe3\x81\x82 " + b"z" * 200 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * 25000          # about 5 MB
    seed(srv, "bigbox", "1700002000.M1P1Q1.test", big)
    for tls in ("stls", "pop3s"):
        if tls == "stls":
            p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=NET_TIMEOUT)
            p.stls(context=tls_context())
        else:
            p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port,
                                context=tls_context(), timeout=NET_TIMEOUT)
        try:
            p.user("bigbox")
            p.pass_(PASSWORD)
            assert p.list(1) == f"+OK 1 {len(big)}".encode()
            data, octets, resp = retr_bytes(p, 1)
            assert len(data) == len(big) and data == big
        finally:
            p.quit()


def test_connection_limit_per_address_shared_with_smtp():
    """max-connections-per-ip counts POP3 and SMTP sessions together,
    across workers, and a closed session frees its place."""
    srv = pop3_server(extra=["max-connections-per-ip 2"], users=("hoge",))

    def hold_two():
        """An SMTP and a POP3 session, once earlier ones have been
        released (the server frees a place when it sees the close)."""
        smtp_c, p1 = SMTPClient(srv.smtp_port), POP3Raw(srv.pop3_port)
        if smtp_c.greeting[0] == 220 and p1.greeting.startswith("+OK"):
            return smtp_c, p1
        smtp_c.close()
        p1.close()
        return None
    try:
        held = wait_for(hold_two, 10)
        assert held, "two places never came free"
        smtp_c, p1 = held
        try:
            with POP3Raw(srv.pop3_port) as p3:
                assert p3.greeting.startswith("-ERR [SYS/TEMP]"), p3.greeting
            assert smtp_c.cmd("NOOP")[0] == 250
        finally:
            smtp_c.close()
            p1.close()
        srv.wait_log(r"pop3 connection-limit address=127\.0\.0\.1 limit=2")
        # Both places are free again once the sessions have closed.
        again = wait_for(hold_two, 10)
        assert again, "the places were not given back"
        for c in again:
            c.close()
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_a_password_does_not_stay_in_the_servers_memory():
    """USER/PASS in the clear and under STLS, AUTH PLAIN and LOGIN on
    995: afterwards no process of the server holds the password in any
    form (test_auth.py has the same for SMTP AUTH)."""
    if os.geteuid() != 0:
        pytest.skip("SKIP: reading the workers' memory needs root")
    from test_auth import password_forms
    secret = "Zq8-unique-" + base64.b32encode(os.urandom(10)).decode()
    srv = pop3_server(users=("hoge",), pop3_opts="cleartext-auth loopback",
                      start=False)
    r = postern_user(srv, "passwd", "hoge", "--password-stdin",
                     password=secret + "\n")
    assert r.returncode == 0, r.stderr
    srv.start()
    try:
        for stls in (False, True):
            p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=NET_TIMEOUT)
            if stls:
                p.stls(context=tls_context())
            p.user("hoge")
            assert p.pass_(secret).startswith(b"+OK")
            p.quit()
        ir = base64.b64encode(f"\0hoge\0{secret}".encode()).decode()
        with POP3Raw(srv.pop3s_port, tls=True) as c:
            assert c.cmd(f"AUTH PLAIN {ir}").startswith("+OK")
            assert c.cmd("QUIT").startswith("+OK")
        with POP3Raw(srv.pop3s_port, tls=True) as c:
            assert c.cmd("AUTH LOGIN").startswith("+ ")
            assert c.cmd(base64.b64encode(b"hoge").decode()).startswith("+ ")
            assert c.cmd(base64.b64encode(secret.encode()).decode()) \
                .startswith("+OK")
            assert c.cmd("QUIT").startswith("+OK")
        pids = [srv.pid] + srv.children()
        left = copies_in_memory(pids, password_forms("hoge", secret))
        assert len(pids) >= 3 and not any(left.values()), left
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


# ---------------------------------------------------------------------------
# slow clients: the 10-minute idle timer restarts with every octet; the
# line deadline (smtp-timeout, as for SMTP) counts from a line's first

@pytest.fixture(scope="module")
def slow_srv():
    yield from owned_server(pop3_server(extra=["smtp-timeout 2s"],
                                        users=("hoge",)))


def test_a_trickled_line_is_dropped_at_the_deadline(slow_srv):
    from test_hostile import trickle
    with POP3Raw(slow_srv.pop3_port) as c:
        assert c.greeting.startswith("+OK")
        took = trickle(c, b"U" + b"x" * 200, 0.5, 10)
        assert took is not None, "still open after 10 s of trickling"
        assert 1.5 <= took <= 5.0, took
        assert "-ERR Timeout" in c.buf.decode(errors="replace")
    slow_srv.wait_log(r"pop3 disconnect reason=line-deadline")


@pytest.mark.parametrize("stls", [False, True], ids=["pop3s", "stls"])
def test_a_trickled_tls_handshake_is_dropped_at_the_deadline(slow_srv, stls):
    """On 995 the handshake is the first line, and after STLS the next."""
    hello = bytes.fromhex("160301020001") + b"\x03\x03" + os.urandom(60)
    ended = len(re.findall(r"pop3 disconnect reason=line-deadline",
                           slow_srv.log()))
    if stls:
        c = POP3Raw(slow_srv.pop3_port)
        assert c.cmd("STLS").startswith("+OK")
        s = c.sock
    else:
        s = socket.create_connection(("127.0.0.1", slow_srv.pop3s_port))
    with s:
        closed = trickle_until_closed(s, hello, 0.5)
        assert closed is not None and 1.5 <= closed <= 5.0, closed
    assert wait_for(lambda: len(re.findall(
        r"pop3 disconnect reason=line-deadline", slow_srv.log())) ==
        ended + 1, 5)


def test_slow_but_complete_lines_are_served(slow_srv):
    """The deadline is per line, and not an idle limit: pauses between
    lines longer than it are fine, within the 10-minute idle timer."""
    with POP3Raw(slow_srv.pop3_port) as c:
        for _ in range(2):
            c.send("CA")
            time.sleep(1.0)
            c.send("PA\r\n")
            assert c.line().startswith("+OK")
            assert c.multi()
            time.sleep(3.0)  # past the deadline, idle
        assert c.cmd("QUIT").startswith("+OK")


# ---------------------------------------------------------------------------
# half-closed clients (a POP3 dialogue written in one go: printf | nc -N)

@pytest.fixture(scope="module")
def plain_srv():
    """Plaintext logins allowed on loopback; "gone" has a password hash
    that takes about a second to check (test_auth_verify.py)."""
    from test_auth_verify import slow_down
    s = pop3_server(users=("pipe", "gone"),
                    pop3_opts="cleartext-auth loopback", start=False)
    slow_down(s, ["gone"])
    s.start()
    yield from owned_server(s)


def read_all(sock, timeout=NET_TIMEOUT):
    sock.settimeout(timeout)
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out.decode(errors="replace").split("\r\n")
        out += chunk


def test_pipelined_login_then_half_close_gets_every_reply(plain_srv):
    """The whole dialogue pipelined (RFC 2449 PIPELINING), then the
    client shuts its side: the login is finished and every command
    after it answered, the DELE done by QUIT, before the close."""
    seed(plain_srv, "pipe", "1700003001.M1P6Q6.test",
         b"Subject: p\r\n\r\npiped\r\n")
    s = socket.create_connection(("127.0.0.1", plain_srv.pop3_port),
                                 timeout=NET_TIMEOUT)
    s.sendall(f"USER pipe\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\n"
              "DELE 1\r\nQUIT\r\n".encode())
    s.shutdown(socket.SHUT_WR)
    lines = read_all(s)
    s.close()
    status = [l for l in lines if l.startswith(("+OK", "-ERR"))]
    assert [l.split()[0] for l in status] == ["+OK"] * 7, lines
    assert status[3].startswith("+OK 1 "), status          # STAT
    assert "piped" in lines, lines                          # RETR
    assert status[5] == "+OK Message 1 deleted", status
    assert box_files(plain_srv, "pipe") == []


def test_a_client_gone_during_its_login_is_not_logged_in(plain_srv):
    """A client that leaves while its password is checked (about a
    second), replies still unread: the check is called off and the
    session ends; it does not log in after all (holding the mailbox,
    whose next login would get [IN-USE])."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", plain_srv.pop3_port))
    s.sendall(b"CAPA\r\n" * 300 + f"USER gone\r\nPASS {PASSWORD}\r\n"
              .encode())
    time.sleep(0.3)
    s.shutdown(socket.SHUT_WR)
    plain_srv.wait_log(r"pop3 disconnect reason=eof user=-")
    s.close()
    with POP3Raw(plain_srv.pop3_port) as c:
        assert c.login("gone").startswith("+OK"), "mailbox held"
        assert c.cmd("QUIT").startswith("+OK")
    assert len(re.findall(r"pop3 login user=gone ", plain_srv.log())) == 1


def test_a_stop_during_a_login_check_does_not_log_in():
    """The server stops while a password is being checked: the session
    is told so and closed, and the check's answer, when it comes, does
    not log it in on the way out."""
    from test_auth_verify import slow_down
    srv = pop3_server(users=("gone",), pop3_opts="cleartext-auth loopback",
                      start=False)
    slow_down(srv, ["gone"])
    srv.start()
    try:
        with POP3Raw(srv.pop3_port) as c:
            c.send(f"USER gone\r\nPASS {PASSWORD}\r\n")
            assert c.line().startswith("+OK")
            time.sleep(0.3)             # the check is under way
            srv.proc.send_signal(signal.SIGTERM)
            assert c.line().startswith("-ERR [SYS/TEMP]"), "no stop reply"
            assert c.closed()
        assert srv.proc.wait(30) == 0
        assert "pop3 login user=gone" not in srv.log(), srv.log()
    finally:
        problems = _finish_all([srv])
        assert not problems, problems
