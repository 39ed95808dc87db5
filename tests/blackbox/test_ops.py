"""Operations (issue 7): the pid file and systemd readiness, what
`postern config check` reports beyond syntax, the man pages render
without warnings, and `make install` puts everything in place."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import (BIN, DOMAIN, EX_CONFIG, NET_TIMEOUT, REPO, Server,
                      _finish_all, fd_links, umount, wait_for)

RUN_TIMEOUT = 60


def config_check(srv):
    return subprocess.run([BIN, "config", "-c", str(srv.conf), "check"],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)


def add_conf(srv, *lines):
    with open(srv.conf, "a") as f:
        f.write("".join(l + "\n" for l in lines))


@pytest.fixture
def conf_server():
    srv = Server()
    yield srv
    srv.cleanup()


# ---------------------------------------------------------------------------

def test_pid_file_and_systemd_notify(monkeypatch):
    srv = Server()
    pidfile = srv.dir / "postern.pid"
    add_conf(srv, f"pid-file {pidfile}")
    sock_path = srv.dir / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    notify.settimeout(15)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    try:
        srv.start()
        msg = notify.recv(4096).decode()
        assert "READY=1" in msg.split("\n"), msg
        assert f"MAINPID={srv.pid}" in msg.split("\n"), msg
        assert pidfile.read_text() == f"{srv.pid}\n"
        assert srv.terminate() == 0
        assert notify.recv(4096) == b"STOPPING=1"
        assert not pidfile.exists(), "the pid file must go at exit"
    finally:
        notify.close()
        problems = _finish_all([srv])
        assert not problems, problems


def test_config_check_clean(conf_server):
    r = config_check(conf_server)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error:" not in r.stdout


@pytest.mark.parametrize("case", [
    "users-readable", "submit-auth-readable", "open-relay",
    "submission-auth-optional", "submissions-auth-off", "mailboxes-mode",
    "missing-cert"])
def test_config_check_errors(conf_server, case):
    srv = conf_server
    if case == "users-readable":
        users = srv.dir / "users"
        users.write_text("hoge:!:::hoge@example.test:\n")
        users.chmod(0o644)
        add_conf(srv, f"users {users}")
        want = r"error: users \S+ has mode 0644: it holds password hashes"
    elif case == "submit-auth-readable":
        creds = srv.dir / "creds"
        creds.write_text("hoge secret\n")
        creds.chmod(0o640)
        add_conf(srv, f"submit via 127.0.0.1:587 auth {creds}")
        want = r"error: submit auth \S+ has mode 0640: others can read it"
    elif case == "open-relay":
        add_conf(srv, "mynetworks 0.0.0.0/0")
        want = (r"error: listen smtp \(line \d+, port \d+\): mynetworks "
                r"contains 0\.0\.0\.0/0.*open relay")
    elif case == "submission-auth-optional":
        text = srv.conf.read_text().replace(
            f"port {srv.sub_port}", f"port {srv.sub_port} auth optional")
        srv.conf.write_text(text)
        want = r"error: listen submission \(line \d+, port \d+\): auth optional"
    elif case == "submissions-auth-off":
        add_conf(srv, "listen submissions on 127.0.0.1 port 24650 auth off")
        want = r"error: listen submissions \(line \d+, port 24650\): auth off"
    elif case == "mailboxes-mode":
        mb = srv.dir / "mail"
        mb.mkdir()
        mb.chmod(0o777)
        add_conf(srv, f"mailboxes {mb}")
        want = r"error: mailboxes \S+ is writable by everyone"
    elif case == "missing-cert":
        add_conf(srv, f"tls cert {srv.dir}/none.pem key {srv.dir}/none.key")
        want = r"error: certificate \S+none\.pem: No such file"
    r = config_check(srv)
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert re.search(want, r.stdout), r.stdout


def make_cert(srv, days, cn="mail.example.test", name="cert"):
    cert, key = srv.dir / f"{name}.pem", srv.dir / f"{name}.key"
    args = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
            "-out", str(cert), "-subj", f"/CN={cn}"]
    if days < 0:
        # openssl req cannot back-date: python3-cryptography can
        expired_cert(cert, key, cn)
    else:
        args += ["-days", str(days)]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    key.chmod(0o600)
    add_conf(srv, f"tls cert {cert} key {key}")
    return cert


def expired_cert(cert, key, cn):
    try:
        import datetime
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        pytest.skip("python3-cryptography is needed for an expired "
                    "certificate")
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(datetime.datetime(2020, 1, 1))
         .not_valid_after(datetime.datetime(2020, 2, 1))
         .sign(k, hashes.SHA256()))
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))


@pytest.mark.parametrize("days,level,want", [
    (365, "warning", r"is self-signed"),
    (10, "warning", r"expires on \d{4}-\d\d-\d\d .*in less than 30 days"),
    (-1, "error", r"expired on 2020-02-01"),
])
def test_config_check_certificate(conf_server, days, level, want):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    srv = conf_server
    cert = make_cert(srv, days)
    r = config_check(srv)
    assert re.search(rf"^note: certificate {re.escape(str(cert))}: subject "
                     r"/CN=mail\.example\.test, expires ", r.stdout, re.M), \
        r.stdout
    assert re.search(rf"^{level}: certificate \S+ {want}", r.stdout, re.M), \
        r.stdout
    assert r.returncode == (EX_CONFIG if level == "error" else 0), r.stdout


def test_config_check_maildrop_mode(conf_server):
    srv = conf_server
    md = srv.spool / "maildrop"
    md.mkdir(parents=True)
    md.chmod(0o777)
    r = config_check(srv)
    assert re.search(r"^warning: \S+/maildrop has mode 0777, not 3733",
                     r.stdout, re.M), r.stdout


# ---------------------------------------------------------------------------

@pytest.fixture
def ext4_mounts():
    """Two small ext4 images mounted through loop devices, one made with
    a journal and one without: {"journal": path, "nojournal": path}.
    Under a 0755 directory of their own (not pytest's 0700 tmp_path), so
    that a server's workers can reach a spool there."""
    if os.geteuid() != 0:
        pytest.skip("SKIP: mounting file systems needs root")
    if not (shutil.which("mkfs.ext4") and shutil.which("mount")):
        pytest.skip("SKIP: mkfs.ext4 or mount is missing")
    mounted = []
    top = Path(tempfile.mkdtemp(prefix="postern-ext4-"))
    os.chmod(top, 0o755)
    tmp_path = top
    try:
        out = {}
        for name, opts in (("journal", []), ("nojournal", ["-O", "^has_journal"])):
            img, mnt = tmp_path / f"{name}.img", tmp_path / name
            with open(img, "wb") as f:
                f.truncate(64 << 20)
            subprocess.run(["mkfs.ext4", "-q", "-F", *opts, str(img)],
                           check=True, timeout=RUN_TIMEOUT)
            mnt.mkdir()
            r = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)],
                               capture_output=True, text=True,
                               timeout=RUN_TIMEOUT)
            if r.returncode != 0:
                pytest.skip(f"SKIP: cannot mount a loop device here: "
                            f"{r.stderr.strip()}")
            mounted.append(mnt)
            out[name] = mnt
        yield out
    finally:
        for mnt in mounted:
            umount(mnt)
        shutil.rmtree(top, ignore_errors=True)


def test_config_check_notes_a_spool_without_journal(conf_server, ext4_mounts):
    """The note appears for a spool on ext4 without a journal and not
    for one with a journal; it is a note, so the check still passes."""
    seen = {}
    for name, mnt in ext4_mounts.items():
        spool = mnt / "spool"
        spool.mkdir()
        add_conf(conf_server, f"spool {spool}")
        r = config_check(conf_server)
        assert r.returncode == 0, r.stdout + r.stderr
        seen[name] = [l for l in r.stdout.splitlines()
                      if l.startswith(f"note: spool {spool} is on ext4 "
                                      "without a journal")]
    assert seen["journal"] == []
    assert len(seen["nojournal"]) == 1, seen
    assert "a journaled file system avoids it" in seen["nojournal"][0]


def _spares_by_dir(srv):
    """{directory: number} of the unnamed files the workers hold open."""
    dirs = {}
    for pid in srv.workers():
        for _, link in fd_links(pid):
            m = re.match(r"(.*)/#\d+ \(deleted\)$", link)
            if m:
                dirs[m.group(1)] = dirs.get(m.group(1), 0) + 1
    return dirs


def test_spare_files_spread_only_without_journal(postern, ext4_mounts):
    """On ext4 without a journal the workers' spare files are made in
    incoming/0 .. incoming/255, which the file system was asked to place
    apart (the "T" attribute on incoming/); with a journal there are no
    such directories and the spares are in incoming/ itself.  Mail is
    accepted into queue/ either way."""
    import smtplib
    for name, mnt in ext4_mounts.items():
        srv = postern(start=False)
        old = srv.spool
        srv.spool = mnt / "spool"
        srv.conf.write_text(srv.conf.read_text().replace(
            f"spool {old}\n", f"spool {srv.spool}\n"))
        srv.start()
        try:
            incoming = srv.spool / "incoming"
            subdirs = sorted(p.name for p in incoming.iterdir() if p.is_dir())
            assert wait_for(lambda: sum(_spares_by_dir(srv).values()) >= 8,
                            10), _spares_by_dir(srv)
            spares = _spares_by_dir(srv)
            real = os.path.realpath(incoming)
            if name == "nojournal":
                assert subdirs == sorted(str(k) for k in range(256))
                attrs = subprocess.run(["lsattr", "-d", str(incoming)],
                                       capture_output=True, text=True,
                                       timeout=RUN_TIMEOUT)
                assert attrs.returncode == 0, attrs.stderr
                assert "T" in attrs.stdout.split()[0], attrs.stdout
                # each worker makes its spares in the directories in turn
                assert all(d.startswith(real + "/") for d in spares), spares
                assert len(spares) >= 8, spares
            else:
                assert subdirs == []
                assert set(spares) == {real}, spares
            with smtplib.SMTP("127.0.0.1", srv.smtp_port,
                              timeout=NET_TIMEOUT) as s:
                s.ehlo("client.example")
                s.mail("a@client.example")
                s.rcpt(f"hoge@{DOMAIN}")
                code, _ = s.data(b"Subject: spread\r\n\r\nhi\r\n")
                assert code == 250
            assert len(srv.queue_ids()) == 1
        finally:
            assert srv.terminate() == 0


def _disk_after_crash(img, dest):
    """The file system in img as a power cut now would leave it: a copy
    of what has reached the (loop) disk, repaired by e2fsck -y as at the
    next boot.  Returns the copy's path."""
    shutil.copyfile(img, dest)
    r = subprocess.run(["e2fsck", "-f", "-y", str(dest)], capture_output=True,
                       text=True, timeout=RUN_TIMEOUT)
    # 0: clean, 1: errors corrected (expected: unsynced metadata).
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return dest


def _debugfs(img, request):
    r = subprocess.run(["debugfs", "-R", request, str(img)],
                       capture_output=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _on_image(srv, mnt, spool="spool", extra_lines=()):
    """Move srv's spool onto the mounted image, adding extra_lines."""
    old = srv.spool
    srv.spool = mnt / spool
    srv.conf.write_text(srv.conf.read_text().replace(
        f"spool {old}\n", f"spool {srv.spool}\n") +
        "".join(line + "\n" for line in extra_lines))


def test_acknowledged_mail_survives_a_crash(postern, ext4_mounts):
    """What postern has acknowledged is on the disk at that moment: a
    message answered with 250, and a Maildir delivery.  A copy of the
    file system taken right then (what a power cut would leave), checked
    by e2fsck as at the next boot, still has both, whole.  On ext4
    without a journal this needs the file's link count synced after it
    is linked: otherwise the inode is on disk with no links, and the
    check takes it for a deleted file and removes the new entry.  On
    ext4 postern does not fsync queue/ or new/ after the link: the
    file's own fsync writes the new entry too (lib/fsio.h), which is
    what this checks on both kinds of ext4."""
    import smtplib
    if not (shutil.which("e2fsck") and shutil.which("debugfs")):
        pytest.skip("SKIP: e2fsck or debugfs is missing")
    for name, mnt in ext4_mounts.items():
        img = mnt.parent / f"{name}.img"
        token = f"crash-test-{name}-{os.getpid()}"
        msg = (f"From: a@client.example\r\nSubject: {token}\r\n\r\n"
               f"{token}\r\n").encode()

        # The queue: acceptance only, as the fixture's default.
        srv = postern(start=False)
        _on_image(srv, mnt)
        srv.start()
        try:
            with smtplib.SMTP("127.0.0.1", srv.smtp_port,
                              timeout=NET_TIMEOUT) as s:
                s.ehlo("client.example")
                s.mail("a@client.example")
                s.rcpt(f"hoge@{DOMAIN}")
                code, reply = s.data(msg)
                assert code == 250, reply
            qid = reply.decode().split()[-1]
            snap = _disk_after_crash(img, mnt.parent / "crash.img")
            body = _debugfs(snap, f"cat /spool/queue/{qid}")
            assert token.encode() in body, (name, qid, body[:300])
        finally:
            assert srv.terminate() == 0

        # A Maildir delivery, with the queue manager on.
        srv = postern(start=False, users=[f"demo:!:::demo@{DOMAIN}:"])
        _on_image(srv, mnt, "spool2",
                  ["queue-manager on", f"mailboxes {mnt}/mail"])
        srv.start()
        try:
            with smtplib.SMTP("127.0.0.1", srv.smtp_port,
                              timeout=NET_TIMEOUT) as s:
                s.sendmail("a@client.example", [f"demo@{DOMAIN}"], msg)
            new = mnt / "mail" / "demo" / "new"
            # The file shows in new/ at its link, before its fsyncs; the
            # queue file goes only once the delivery is done.
            assert wait_for(lambda: new.is_dir() and any(new.iterdir())
                            and not srv.queue_ids(), 15), srv.log()[-3000:]
            (mail,) = list(new.iterdir())
            snap = _disk_after_crash(img, mnt.parent / "crash.img")
            body = _debugfs(snap, f"cat /mail/demo/new/{mail.name}")
            assert token.encode() in body, (name, mail.name, body[:300])
        finally:
            assert srv.terminate() == 0


@pytest.mark.parametrize("page", ["postern.8", "postern.conf.5"])
def test_man_pages_render_without_warnings(page):
    if not shutil.which("man"):
        pytest.skip("man-db is not installed")
    env = dict(os.environ, MANWIDTH="80")
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l",
                        str(REPO / "docs" / page)], capture_output=True,
                       text=True, env=env, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    assert "postern" in r.stdout


def test_man_page_names_every_directive():
    """postern.conf(5) documents every keyword of the parser's table."""
    src = (REPO / "src" / "conf" / "conf_parse.c").read_text()
    table = re.search(r"conf_keywords\[\] = \{(.*?)\n\};", src, re.S).group(1)
    keywords = re.findall(r'\{ "([a-z0-9-]+)"', table)
    page = (REPO / "docs" / "postern.conf.5").read_text().replace("\\-", "-")
    missing = [k for k in keywords
               if not re.search(rf"^\.(?:BI?|BR|TP\n\.BI?) {re.escape(k)}\b",
                                page, re.M)]
    assert not missing, f"not in postern.conf(5): {missing}"


def test_make_install(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-C", str(REPO), "install-files",
                        f"DESTDIR={dest}", "PREFIX=/usr",
                        f"INSTALL_BIN={BIN}"], capture_output=True,
                       text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    sbin = dest / "usr" / "sbin"
    assert os.access(sbin / "postern", os.X_OK)
    for name in ("sendmail", "mailq", "newaliases"):
        assert os.readlink(sbin / name) == "postern"
    assert (dest / "usr/share/man/man8/postern.8").exists()
    assert (dest / "usr/share/man/man5/postern.conf.5").exists()
    assert (dest / "usr/share/doc/postern/postern.conf").exists()
    conf = dest / "etc/postern/postern.conf"
    assert "listen submission" in conf.read_text()
    unit = (dest / "lib/systemd/system/postern.service").read_text()
    assert "Type=notify" in unit
    assert "ExecStart=/usr/sbin/postern serve" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # An administrator's configuration is never overwritten.
    conf.write_text("# mine\n")
    r = subprocess.run(["make", "-C", str(REPO), "install-files",
                        f"DESTDIR={dest}", "PREFIX=/usr",
                        f"INSTALL_BIN={BIN}"], capture_output=True,
                       text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert conf.read_text() == "# mine\n"
    # The installed binary answers as sendmail.
    r = subprocess.run([str(sbin / "sendmail"), "-Z"], capture_output=True,
                       text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 64 and "usage: sendmail" in r.stderr


def example_conf(tmp_path):
    """etc/postern.conf with its system paths moved under tmp_path."""
    text = (REPO / "etc" / "postern.conf").read_text()
    text = text.replace("/var/spool/postern", str(tmp_path / "spool"))
    text = text.replace("/var/mail/postern", str(tmp_path / "mail"))
    text = text.replace("/etc/postern/", str(tmp_path) + "/")
    text = text.replace("/run/postern.pid", str(tmp_path / "postern.pid"))
    conf = tmp_path / "postern.conf"
    conf.write_text(text)
    return conf


def test_default_configuration_is_safe(tmp_path):
    """etc/postern.conf parses, and its only problems are the files an
    installation has not made yet."""
    (tmp_path / "users").write_text("")
    (tmp_path / "users").chmod(0o600)
    (tmp_path / "aliases").write_text("root: hoge\n")
    conf = example_conf(tmp_path)
    r = subprocess.run([BIN, "config", "-c", str(conf), "check"],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error:" not in r.stdout
    assert re.search(r"^listen submission on \* port 587 auth required", r.stdout, re.M)
    assert re.search(r"^listen submissions on \* port 465 auth required tls implicit",
                     r.stdout, re.M)
    assert re.search(r"^listen smtp on \* port 25 ", r.stdout, re.M)
    assert "mynetworks 127.0.0.0/8 ::1/128\n" in r.stdout


def test_default_configuration_after_install_steps(tmp_path):
    """The README's installation, on etc/postern.conf as installed: once
    `postern user add` has made the first user, `postern config check`
    (the unit's ExecStartPre) passes with no file made by hand, and the
    role addresses have somewhere to go."""
    conf = example_conf(tmp_path)
    r = subprocess.run([BIN, "user", "-c", str(conf), "add", "hoge",
                        "--password-stdin", "--address", "hoge@example.jp"],
                       input="secret\n", capture_output=True, text=True,
                       timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([BIN, "config", "-c", str(conf), "check"],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error:" not in r.stdout
    r = subprocess.run([BIN, "aliases", "-c", str(conf)],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(postmaster, abuse, root, ...) to 'hoge'" in r.stdout
