"""The sendmail command (issue 7): real programs (s-nail, a cron-like
shell script using `sendmail -t`) hand mail to a running server through
the maildrop and it lands in a Maildir; `sendmail -bs` speaks SMTP; an
unprivileged user submits under its own name only; a read-only or full
maildrop gives EX_TEMPFAIL (75) and leaves nothing behind; `submit via`
submits over 587/465 with stored credentials."""
import email.header
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, free_port, umount, wait_for

USERS = ["bob:!:::bob@example.test:", "carol:!:::carol@example.test:",
         "dave:!:::dave@example.test:", "root:!:::root@example.test:",
         "nobody:!:::nobody@example.test:"]
FAST = ["queue-manager on", "retry-min 1s", "retry-max 2s"]
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_CONFIG = 64, 65, 67, 75, 78
RUN_TIMEOUT = 30
IS_ROOT = os.geteuid() == 0
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup",
             "--clear-groups"]


def mail_server(postern, extra=(), users=USERS, start=True):
    srv = postern(extra=list(FAST) + list(extra), users=users, start=False)
    srv.mail = srv.dir / "mail"
    with open(srv.conf, "a") as f:
        f.write(f"mailboxes {srv.mail}\n")
    # Programs find the MSP by the name "sendmail".
    srv.sendmail = srv.dir / "sendmail"
    srv.sendmail.symlink_to(BIN)
    return srv.start() if start else srv


def msp_env(srv):
    env = dict(os.environ)
    env["POSTERN_CONFIG"] = str(srv.conf)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def sendmail(srv, *args, data=b"", prefix=(), **kw):
    return subprocess.run([*prefix, str(srv.sendmail), *args], input=data,
                          capture_output=True, env=msp_env(srv),
                          timeout=RUN_TIMEOUT, **kw)


def maildir(srv, user):
    d = srv.mail / user / "new"
    try:
        return sorted(d.iterdir())
    except FileNotFoundError:
        return []


def wait_mail(srv, user, n=1, timeout=15):
    ok = wait_for(lambda: len(maildir(srv, user)) >= n, timeout)
    assert ok, f"{user}: {len(maildir(srv, user))} files\n{srv.log()[-4000:]}"
    return [p.read_bytes() for p in maildir(srv, user)]


def maildrop(srv):
    return sorted(os.listdir(srv.spool / "maildrop"))


def header(msg, name):
    """The first field called name, unfolded; None when absent."""
    head = msg.split(b"\r\n\r\n", 1)[0].decode()
    fields = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    for f in fields:
        key, sep, value = f.partition(":")
        if sep and key.lower() == name.lower():
            return value.strip()
    return None


def need_root(why):
    if not IS_ROOT:
        pytest.skip(f"needs root: {why}")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")


# ---------------------------------------------------------------------------

def test_snail_delivers_to_maildir(postern):
    if not shutil.which("s-nail"):
        pytest.skip("s-nail is not installed (Debian package s-nail)")
    srv = mail_server(postern)
    env = msp_env(srv)
    env["HOME"] = str(srv.dir)
    r = subprocess.run(["s-nail", "-:/", "-S", f"mta={srv.sendmail}",
                        "-s", "hello from s-nail", "bob@example.test"],
                       input=b"first line\n.\nafter a dot line\n",
                       capture_output=True, env=env, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stderr
    (msg,) = wait_mail(srv, "bob")
    assert header(msg, "Subject") == "hello from s-nail"
    assert header(msg, "User-Agent").startswith("s-nail")
    # s-nail passes -i: the lone dot is message text, not the end.
    assert msg.endswith(b"\r\nfirst line\r\n.\r\nafter a dot line\r\n"), msg
    assert re.match(r"<\d{14}\.[0-9A-F]{16}@mail\.example\.test>",
                    header(msg, "Message-ID"))
    assert b"\r\nReceived: from local (uid %d)" % os.getuid() in msg
    srv.wait_log(r"[0-9A-F]{16} pickup queued uid=%d user=\S+ "
                 r"from=<\S+@example\.test> nrcpt=1" % os.getuid())
    assert maildrop(srv) == []


def test_cron_script_with_sendmail_t(postern):
    srv = mail_server(postern)
    script = srv.dir / "cronjob.sh"
    script.write_text(
        "#!/bin/sh\n"
        "# what cron and periodic jobs do: headers on stdin, -t\n"
        "{\n"
        "  echo 'To: Bob <bob@example.test>, carol'\n"
        "  echo 'Cc: \"Dave, the admin\" <dave@example.test>'\n"
        "  echo 'Bcc: root'\n"
        "  echo 'Subject: nightly backup'\n"
        "  echo\n"
        "  echo 'backup finished'\n"
        "} | \"$SENDMAIL\" -t -oi\n")
    script.chmod(0o755)
    env = msp_env(srv)
    env["SENDMAIL"] = str(srv.sendmail)
    r = subprocess.run([str(script)], capture_output=True, env=env,
                       timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stderr
    for user in ("bob", "carol", "dave", "root"):
        (msg,) = wait_mail(srv, user)
        assert header(msg, "Subject") == "nightly backup"
        assert header(msg, "Bcc") is None, "Bcc: must not be delivered"
        assert msg.endswith(b"\r\n\r\nbackup finished\r\n"), msg
        assert header(msg, "Date") and header(msg, "From")
        assert b"\n" not in msg.replace(b"\r\n", b"")


def test_a_full_name_of_any_bytes_is_encoded(postern):
    """-F takes what a web form passes on: a run of bytes that are not
    UTF-8 (continuation octets only) must be encoded like any other name
    and the message queued, not loop or overflow."""
    srv = mail_server(postern)
    names = [b"A" + b"\x80" * 50, b"\x80" * 50,
             ("J\u00fcrgen M\u00fcller " * 6).encode()]
    # A cap on memory, should a name send it looping again: 1 GiB of
    # address space, or of RSS under AddressSanitizer, whose shadow
    # memory alone is more address space than that.
    env = msp_env(srv)
    prefix = ("prlimit", "--as=1073741824", "--")
    if b"__asan_init" in Path(BIN).read_bytes():
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                               ":hard_rss_limit_mb=1024").lstrip(":")
        prefix = ()
    for name in names:
        r = subprocess.run([*prefix, str(srv.sendmail), "-F", name, "bob"],
                           input=b"Subject: n\n\nhi\n", capture_output=True,
                           env=env, timeout=RUN_TIMEOUT)
        assert r.returncode == 0, (name, r.returncode, r.stderr)
    got = wait_mail(srv, "bob", n=3)
    froms = sorted(header(m, "From") for m in got)
    assert all("=?UTF-8?B?" in f for f in froms), froms
    decoded = [b"".join(p if isinstance(p, bytes) else p.encode()
                        for p, _ in email.header.decode_header(f))
               for f in froms]
    for name in names:
        assert any(name in d for d in decoded), (name, froms)


def test_headers_added_and_line_ends(postern):
    srv = mail_server(postern)
    r = sendmail(srv, "-F", "Backup Robot", "bob",
                 data=b"Subject: plain LF\n\nline 1\nline 2\n.\nnot read\n")
    assert r.returncode == 0, r.stderr
    (msg,) = wait_mail(srv, "bob")
    assert re.match(r"\"?Backup Robot\"? <\S+@example\.test>",
                    header(msg, "From")), header(msg, "From")
    assert re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$",
                    header(msg, "Date"))
    assert header(msg, "Message-ID").endswith("@mail.example.test>")
    # Without -i a lone "." ends the message (as sendmail does).
    assert msg.endswith(b"\r\n\r\nline 1\r\nline 2\r\n"), msg
    # Existing fields are kept as they are.
    r = sendmail(srv, "-i", "carol", data=b"From: Me <bob@example.test>\n"
                 b"Date: Mon, 1 Jan 2029 00:00:00 +0000\n"
                 b"Message-ID: <fixed@example.test>\n\n.\nbody\n")
    assert r.returncode == 0, r.stderr
    (msg,) = wait_mail(srv, "carol")
    assert header(msg, "From") == "Me <bob@example.test>"
    assert header(msg, "Message-ID") == "<fixed@example.test>"
    assert msg.count(b"\r\nDate: ") == 1
    assert msg.endswith(b"\r\n\r\n.\r\nbody\r\n")


def test_sendmail_bs_speaks_smtp(postern):
    srv = mail_server(postern)
    dialogue = (b"EHLO localhost\r\n"
                b"MAIL FROM:<bob@example.test>\r\n"
                b"RCPT TO:<carol@example.test>\r\n"
                b"RCPT TO:<dave>\r\n"
                b"DATA\r\n"
                b"Subject: over -bs\r\n\r\n..stuffed dot\r\nend\r\n.\r\n"
                b"RCPT TO:<x@example.test>\r\n"
                b"QUIT\r\n")
    r = sendmail(srv, "-bs", data=dialogue)
    assert r.returncode == 0, r.stderr
    codes = [int(l[:3]) for l in r.stdout.decode().split("\r\n")
             if re.match(r"\d{3} ", l)]
    assert codes == [220, 250, 250, 250, 250, 354, 250, 503, 221], r.stdout
    assert re.search(rb"250 2\.0\.0 Ok: queued as M[0-9a-f]{32}", r.stdout)
    for user in ("carol", "dave"):
        (msg,) = wait_mail(srv, user)
        assert msg.endswith(b"\r\n\r\n.stuffed dot\r\nend\r\n"), msg
        assert header(msg, "Message-ID")


def test_sendmail_bs_refuses_a_line_it_would_cut(postern):
    """-bs reads lines of at most MSP_SMTP_LINE_MAX octets: a longer
    line in DATA is refused with the message, never cut and queued."""
    srv = mail_server(postern)
    dialogue = (b"EHLO localhost\r\nMAIL FROM:<bob@example.test>\r\n"
                b"RCPT TO:<carol@example.test>\r\nDATA\r\n"
                b"Subject: long\r\n\r\n" + b"x" * 6000 + b"END\r\n.\r\n"
                b"QUIT\r\n")
    r = sendmail(srv, "-bs", data=dialogue)
    assert r.returncode == 0, r.stderr
    assert re.search(rb"\r\n552 5\.3\.4 A line of the message is over "
                     rb"\d+ octets\r\n221 ", r.stdout), r.stdout
    assert maildrop(srv) == []
    time.sleep(1)
    assert maildir(srv, "carol") == []


def test_exit_codes(postern):
    srv = mail_server(postern)
    r = sendmail(srv, "-Z", "bob")
    assert r.returncode == EX_USAGE and b"unknown option -Z" in r.stderr
    r = sendmail(srv, data=b"Subject: x\n\nno one\n")
    assert r.returncode == EX_NOUSER and b"no recipients" in r.stderr
    r = sendmail(srv, "-t", data=b"Subject: x\n\nno one\n")
    assert r.returncode == EX_NOUSER, r.stderr
    r = sendmail(srv, "bad address@@x", data=b"x\n")
    assert r.returncode == EX_DATAERR, r.stderr
    r = sendmail(srv, "bob", data=b"nul \0 inside\n")
    assert r.returncode == EX_DATAERR and b"NUL" in r.stderr
    r = sendmail(srv, "-bd")
    assert r.returncode == EX_USAGE and b"postern serve" in r.stderr
    # An option after a recipient is not the address "-v@ORIGIN".
    r = sendmail(srv, "bob", "-v", data=b"Subject: late\n\nx\n")
    assert r.returncode == EX_USAGE, r.stderr
    assert b"'-v': options go before the recipients" in r.stderr
    assert maildrop(srv) == []
    # After "--" such a word is a recipient, as the caller meant.
    r = sendmail(srv, "--", "bob", "-odd@example.org",
                 data=b"Subject: dash\n\nx\n")
    assert r.returncode == 0, r.stderr
    bad = srv.dir / "bad.conf"
    bad.write_text("frobnicate yes\n")
    r = subprocess.run([str(srv.sendmail), "-C", str(bad), "bob"],
                       input=b"x\n", capture_output=True, timeout=RUN_TIMEOUT)
    assert r.returncode == EX_CONFIG, r.stderr
    # Ignored options are accepted (a note only with -v).
    r = sendmail(srv, "-odi", "-oem", "-N", "never", "-v", "--", "bob",
                 data=b"Subject: opts\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert b"note: option -o em ignored" in r.stderr
    wait_mail(srv, "bob")
    # -bp is mailq, -q is a flush.
    r = sendmail(srv, "-bp")
    assert r.returncode == 0, r.stderr
    r = sendmail(srv, "-q")
    assert r.returncode == 0, r.stderr
    assert maildrop(srv) == []


def test_unprivileged_user_submits_as_itself(postern):
    need_root("to run the MSP as user nobody")
    srv = mail_server(postern)
    r = sendmail(srv, "-f", "root@example.test", "bob", prefix=AS_NOBODY,
                 data=b"Subject: from nobody\n\nhi\n")
    assert r.returncode == 0, r.stderr
    (msg,) = wait_mail(srv, "bob")
    # The envelope sender is nobody's own, whatever -f asked for.
    assert msg.startswith(b"Return-Path: <nobody@example.test>\r\n"), msg
    assert b"Received: from local (uid 65534)" in msg
    srv.wait_log(r"pickup: uid 65534 \(nobody\) may not use the sender "
                 r"<root@example\.test>")
    # Its own address with -f is fine.
    r = sendmail(srv, "-f", "nobody@mail.example.test", "carol",
                 prefix=AS_NOBODY, data=b"Subject: own\n\nhi\n")
    assert r.returncode == 0, r.stderr
    (msg,) = wait_mail(srv, "carol")
    assert msg.startswith(b"Return-Path: <nobody@mail.example.test>\r\n")
    # root may name any sender.
    r = sendmail(srv, "-f", "daemon@example.org", "dave",
                 data=b"Subject: root\n\nhi\n")
    assert r.returncode == 0, r.stderr
    (msg,) = wait_mail(srv, "dave")
    assert msg.startswith(b"Return-Path: <daemon@example.org>\r\n")


def test_maildrop_is_private_and_survives_a_stopped_server(postern):
    need_root("to check what user nobody can see")
    srv = mail_server(postern)
    md = srv.spool / "maildrop"
    st = md.stat()
    assert stat.S_IMODE(st.st_mode) == 0o3733, oct(st.st_mode)
    assert srv.terminate() == 0
    # Server down: root's message waits in the maildrop.
    r = sendmail(srv, "bob", data=b"Subject: secret\n\nroot's mail\n")
    assert r.returncode == 0, r.stderr
    (name,) = maildrop(srv)
    assert name.startswith("M")
    assert stat.S_IMODE((md / name).stat().st_mode) == 0o640
    r = subprocess.run([*AS_NOBODY, "ls", str(md)], capture_output=True,
                       timeout=RUN_TIMEOUT)
    assert r.returncode != 0 and b"Permission denied" in r.stderr
    r = subprocess.run([*AS_NOBODY, "cat", str(md / name)],
                       capture_output=True, timeout=RUN_TIMEOUT)
    assert r.returncode != 0 and b"Permission denied" in r.stderr
    r = subprocess.run([*AS_NOBODY, "rm", "-f", str(md / name)],
                       capture_output=True, timeout=RUN_TIMEOUT)
    assert (md / name).exists(), "the sticky bit must protect it"
    # Started again, the server picks it up.
    srv.start()
    (msg,) = wait_mail(srv, "bob")
    assert b"root's mail" in msg
    assert wait_for(lambda: maildrop(srv) == [], 10)


def test_maildrop_file_that_cannot_be_taken_is_not_queued(postern):
    """A maildrop file the pickup could queue but not remove (here: the
    directory made immutable) would be queued again at every scan and
    every start.  It is taken (renamed) before it is queued, so one that
    cannot be taken is left alone, and queued once when it can.  (The
    file is made immutable, which forbids both its rename and its
    removal, even to root.)"""
    if not shutil.which("chattr"):
        pytest.skip("chattr is not installed (e2fsprogs)")
    srv = mail_server(postern)
    md = srv.spool / "maildrop"
    assert srv.terminate() == 0
    r = sendmail(srv, "bob", data=b"Subject: stuck\n\nonce only\n")
    assert r.returncode == 0, r.stderr
    (name,) = maildrop(srv)
    r = subprocess.run(["chattr", "+i", str(md / name)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"chattr +i refused here: {r.stderr.strip()}")
    try:
        srv.start()
        srv.wait_log(rf"pickup: cannot take maildrop/{name}; it stays "
                     r"there, not queued")
        time.sleep(1)
        assert maildir(srv, "bob") == []
        assert srv.queue_ids() == []
        assert srv.terminate() == 0
    finally:
        subprocess.run(["chattr", "-i", str(md / name)], check=True)
    srv.start()
    (msg,) = wait_mail(srv, "bob")
    assert b"once only" in msg
    assert wait_for(lambda: maildrop(srv) == [], 10)
    srv.wait_log(rf"pickup queued uid=\d+ user=\S+ from=<\S+> nrcpt=1 "
                 rf"size=\d+ maildrop={name}")
    time.sleep(1)
    assert len(maildir(srv, "bob")) == 1


def test_real_and_effective_uid_differ(postern):
    """Run with a real uid other than its effective one (a set-uid
    wrapper), the sendmail command names the effective user, who owns
    the maildrop file, in its envelope and its From: field; the pickup
    then takes the file instead of setting it aside as a forgery."""
    need_root("to run with real uid nobody and effective uid root")
    srv = mail_server(postern)
    r = sendmail(srv, "bob", prefix=["setpriv", "--ruid=nobody"],
                 data=b"Subject: wrapped\n\nvia a wrapper\n")
    assert r.returncode == 0, r.stderr
    (msg,) = wait_mail(srv, "bob")
    assert b"via a wrapper" in msg
    assert header(msg, "From").startswith("root@") or \
        "<root@" in header(msg, "From"), header(msg, "From")
    assert "corrupt" not in srv.log()


def test_read_only_maildrop_is_a_temporary_failure(postern):
    srv = mail_server(postern)
    md = srv.spool / "maildrop"
    # Root ignores modes: the submitter is then user nobody.
    prefix = AS_NOBODY if IS_ROOT else ()
    if IS_ROOT and not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    old = stat.S_IMODE(md.stat().st_mode)
    md.chmod(0o1755 if IS_ROOT else 0o555)
    try:
        r = sendmail(srv, "bob", prefix=prefix, data=b"Subject: ro\n\nx\n")
    finally:
        md.chmod(old)
    assert r.returncode == EX_TEMPFAIL, r
    assert b"maildrop" in r.stderr and b"not sent" in r.stderr
    assert maildrop(srv) == []


def _fsize_limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_full_maildrop_is_a_temporary_failure(postern):
    """A write that fails half-way (EFBIG from a file size limit stands in
    for a full disk) leaves no file at all, complete-looking or not."""
    srv = mail_server(postern)
    big = b"Subject: big\n\n" + b"x" * 70 + b"\n"
    r = sendmail(srv, "bob", data=big * 200, preexec_fn=_fsize_limit)
    assert r.returncode == EX_TEMPFAIL, r
    assert b"File too large" in r.stderr, r.stderr
    assert maildrop(srv) == []
    time.sleep(0.5)
    assert maildir(srv, "bob") == [] and srv.queue_ids() == []


def test_full_tmpfs_maildrop(postern):
    """The same with a real full file system: a 16 KiB tmpfs over the
    maildrop (needs root and mount)."""
    need_root("to mount a tmpfs")
    srv = mail_server(postern)
    md = srv.spool / "maildrop"
    st = md.stat()
    # The server greets before its pickup process has opened the
    # maildrop: mounted over first, the tmpfs would be what it holds
    # open, and could not be unmounted while the server runs.
    srv.wait_log(r"pickup: watching ")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=16k,mode=3733,uid=%d,gid=%d" % (st.st_uid,
                                                              st.st_gid),
                        "tmpfs", str(md)], capture_output=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        big = b"Subject: big\n\n" + (b"y" * 70 + b"\n") * 1000
        r = sendmail(srv, "bob", prefix=AS_NOBODY, data=big)
        assert r.returncode == EX_TEMPFAIL, r
        assert b"No space left on device" in r.stderr, r.stderr
        assert os.listdir(md) == []
    finally:
        umount(md)


def test_corrupt_maildrop_file_is_moved_aside(postern):
    srv = mail_server(postern)
    name = "M" + "ab" * 16
    # written under a temporary name, as the MSP does (the set-gid
    # directory gives it the server's group), then renamed
    tmp = srv.spool / "maildrop" / ("T" + "ab" * 16)
    tmp.write_bytes(b"postern-maildrop 1\nrcpt bob@example.test\n"
                    b"body 7BIT\nsize 999\n\nshort\n")
    tmp.chmod(0o640)
    os.rename(tmp, srv.spool / "maildrop" / name)
    m = srv.wait_log(rf"pickup: maildrop/{name} from uid \d+: .*; moved to "
                     rf"\S+/corrupt/{name}")
    assert "envelope says 999" in m.group(0)
    assert (srv.spool / "corrupt" / name).exists()
    assert srv.queue_ids() == []


def test_a_stray_maildrop_file_never_replaces_a_file_in_corrupt(postern):
    """Anyone may name a file in maildrop/ (it is world-writable, like
    Postfix's): one named like a damaged queue file kept in corrupt/
    must not replace it when it is moved aside."""
    srv = mail_server(postern)
    qid = "0123456789ABCDEF"
    kept = srv.spool / "corrupt" / qid
    kept.write_bytes(b"a damaged queue file, left for a person\n")
    for n in range(2):
        tmp = srv.spool / "maildrop" / f"T{n}{'ef' * 15}"
        tmp.write_bytes(b"not a maildrop file %d\n" % n)
        os.rename(tmp, srv.spool / "maildrop" / qid)
        # Other names than maildrop files' are found by a scan: the one
        # a new pickup makes at its start (a reload starts one).
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(rf"pickup: maildrop/maildrop-{qid} from uid \d+: not a "
                     rf"maildrop file name; moved to \S+/corrupt/"
                     rf"maildrop-{qid}{'.1' if n else ''}$")
    assert kept.read_bytes() == b"a damaged queue file, left for a person\n"
    assert (srv.spool / "corrupt" / f"maildrop-{qid}").read_bytes() == \
        b"not a maildrop file 0\n"
    assert (srv.spool / "corrupt" / f"maildrop-{qid}.1").read_bytes() == \
        b"not a maildrop file 1\n"


def test_maildrop_file_with_bare_line_ends_is_moved_aside(postern):
    """A maildrop file written by hand, not by the sendmail command, with
    a bare LF: relayed as it is, "LF . LF" could end the DATA early at a
    server that takes a bare LF for a line end and smuggle a second
    message (as SMTP refuses it, smtp_data.c)."""
    srv = mail_server(postern)
    name = "M" + "cd" * 16
    body = (b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<ceo@example.test>\r\n")
    tmp = srv.spool / "maildrop" / ("T" + "cd" * 16)
    tmp.write_bytes(b"postern-maildrop 1\nrcpt bob@example.test\n"
                    b"body 7BIT\nsize %d\n\n" % len(body) + body)
    tmp.chmod(0o640)
    os.rename(tmp, srv.spool / "maildrop" / name)
    m = srv.wait_log(rf"pickup: maildrop/{name} from uid \d+: .*; moved to "
                     rf"\S+/corrupt/{name}")
    assert "bare LF at octet 19 of the message" in m.group(0), m.group(0)
    assert (srv.spool / "corrupt" / name).exists()
    assert srv.queue_ids() == []


# ---------------------------------------------------------------------------
# submit via: the sendmail command talks to 587/465 itself

PASSWORD = "s3cret sub"


def submit_server(postern, implicit=False, mode=0o600):
    srv = postern(extra=list(FAST), users=[], start=False)
    srv.mail = srv.dir / "mail"
    srv.ssl_port = free_port()
    creds = srv.dir / "submit-auth"
    creds.write_text(f"hoge {PASSWORD}\n")
    creds.chmod(mode)
    target = (f"127.0.0.1:{srv.ssl_port} tls implicit" if implicit
              else f"127.0.0.1:{srv.sub_port}")
    with open(srv.conf, "a") as f:
        f.write(f"mailboxes {srv.mail}\n"
                f"listen submissions on 127.0.0.1 port {srv.ssl_port}\n"
                f"submit via {target} auth {creds}\n")
    for name in ("hoge", "bob"):
        r = subprocess.run([BIN, "user", "-c", str(srv.conf), "add", name,
                            "--password-stdin", "--address",
                            f"{name}@example.test"], input=PASSWORD + "\n",
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    srv.sendmail = srv.dir / "sendmail"
    srv.sendmail.symlink_to(BIN)
    return srv.start()


@pytest.mark.parametrize("implicit", [False, True], ids=["587", "465"])
def test_submit_via_with_stored_credentials(postern, implicit):
    srv = submit_server(postern, implicit=implicit)
    r = sendmail(srv, "-v", "-f", "hoge@example.test", "bob",
                 data=b"Subject: via submission\n\nhello\n")
    assert r.returncode == 0, r.stderr
    assert b"AUTH PLAIN" not in r.stderr.split(b"<<<")[0] or \
        b"(credentials)" in r.stderr
    assert PASSWORD.encode() not in r.stderr
    (msg,) = wait_mail(srv, "bob")
    assert msg.startswith(b"Return-Path: <hoge@example.test>\r\n")
    assert b"with ESMTPSA" in msg, msg[:400]
    assert srv.events("auth")
    assert maildrop(srv) == []


def test_submit_via_refuses_readable_credentials(postern):
    srv = submit_server(postern, mode=0o644)
    r = sendmail(srv, "bob", data=b"Subject: x\n\nx\n")
    assert r.returncode == EX_CONFIG, r
    assert b"readable by others" in r.stderr
    r = subprocess.run([BIN, "config", "-c", str(srv.conf), "check"],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == EX_CONFIG
    assert re.search(r"^error: submit auth \S+ has mode 0644", r.stdout,
                     re.M), r.stdout


def test_submit_via_wrong_password_is_refused(postern):
    srv = submit_server(postern)
    (srv.dir / "submit-auth").write_text("hoge wrong password\n")
    r = sendmail(srv, "-f", "hoge@example.test", "bob", data=b"x\n")
    assert r.returncode == 77, r      # EX_NOPERM
    assert b"refused the credentials" in r.stderr
