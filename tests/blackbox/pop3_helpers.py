"""Helpers for the POP3 black-box tests (test_pop3*.py): a server with
pop3/pop3s listeners, Maildirs and users made with `postern user`, a
raw POP3 client, and seeding of Maildir files."""
import os
import pwd
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from conftest import (BIN, NET_TIMEOUT, LineClient, Server, SMTPClient,
                      free_port, wait_for)

PASSWORD = "correct horse 42"


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def postern_user(srv, *args, password=None):
    return subprocess.run([BIN, "user", "-c", str(srv.conf), *args],
                          input=password, capture_output=True, text=True,
                          timeout=60)


def pop3_server(extra=(), users=("hoge", "fuga"), pop3_opts="",
                start=True, workers=2):
    """A Server with `listen pop3` (STLS) and `listen pop3s`, local
    delivery into its own mailboxes directory, and users whose password
    is PASSWORD."""
    srv = Server(users=[], workers=workers)
    srv.pop3_port = free_port()
    srv.pop3s_port = free_port()
    srv.mail = srv.dir / "mail"
    with open(srv.conf, "a") as f:
        f.write("\n".join([
            f"listen pop3 on 127.0.0.1 port {srv.pop3_port} {pop3_opts}",
            f"listen pop3s on 127.0.0.1 port {srv.pop3s_port}",
            "queue-manager on",
            f"mailboxes {srv.mail}",
        ] + list(extra)) + "\n")
    for name in users:
        r = postern_user(srv, "add", name, "--password-stdin", "--address",
                         f"{name}@example.test", password=PASSWORD + "\n")
        assert r.returncode == 0, r.stderr
    return srv.start() if start else srv


def _owner():
    """(uid, gid) the workers run as: postern when we are root."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("postern")
    return pw.pw_uid, pw.pw_gid


def make_box(srv, user):
    """<mailboxes>/<user>/ with its three directories, as delivery makes
    it (owned by the workers' user); returns its path."""
    box = srv.mail / user
    owner = _owner()
    for d in (srv.mail, box, box / "tmp", box / "new", box / "cur"):
        d.mkdir(mode=0o700, exist_ok=True)
        if owner:
            os.chown(d, *owner)
    return box


def seed(srv, user, name, data, sub="new"):
    """Put a message file into <mailboxes>/<user>/<sub>/ as delivery
    would (owned by the workers' user)."""
    owner = _owner()
    path = make_box(srv, user) / sub / name
    path.write_bytes(data)
    os.chmod(path, 0o600)
    if owner:
        os.chown(path, *owner)
    return path


def box_files(srv, user, sub="cur"):
    try:
        return sorted(p.name for p in (srv.mail / user / sub).iterdir())
    except FileNotFoundError:
        return []


class POP3Raw(LineClient):
    """Bytes in, lines out; for the dialogues poplib cannot have."""

    def __init__(self, port, source=None, timeout=NET_TIMEOUT, tls=False):
        super().__init__(port, source, timeout,
                         wrap=tls_context().wrap_socket if tls else None)
        self.greeting = self.line()

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def multi(self):
        """The lines of a multi-line response, dot-unstuffed."""
        out = []
        while True:
            line = self.line()
            if line == ".":
                return out
            out.append(line[1:] if line.startswith(".") else line)

    def starttls(self):
        assert self.cmd("STLS").startswith("+OK")
        self.sock = tls_context().wrap_socket(self.sock)

    def login(self, user="hoge", password=PASSWORD):
        assert self.cmd(f"USER {user}").startswith("+OK")
        return self.cmd(f"PASS {password}")

    def closed(self, timeout=NET_TIMEOUT):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False


def greeted_while(srv, work, got, at_least, longest_allowed=None):
    """Run work() on a thread (it sets got["sent"] and got["done"]) while
    new SMTP connections to the same worker are greeted one after the
    other, and check that the worker kept greeting all along: had work
    waited on the event loop, every greeting would have waited too.  No
    wait between greetings may be longer than longest_allowed (a third
    of the work's time if None)."""
    t = threading.Thread(target=work)
    t.start()
    answered = []
    deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < deadline:
        # A new SMTP connection's greeting: the loop accepted and wrote.
        smtp = SMTPClient(srv.smtp_port)
        assert smtp.greeting[0] == 220, smtp.greeting
        answered.append(time.monotonic())
        smtp.sock.close()
        time.sleep(0.005)
    t.join(NET_TIMEOUT)
    assert not t.is_alive()
    took = got["done"] - got["sent"]
    assert took > at_least, f"the work took {took:.3f} s: too little to tell"
    during = [a for a in answered if got["sent"] <= a <= got["done"]]
    times = [got["sent"]] + during + [got["done"]]
    longest = max(b - a for a, b in zip(times, times[1:]))
    if longest_allowed is None:
        longest_allowed = took / 3
    assert len(during) >= 5 and longest < longest_allowed, \
        (f"work {took:.3f} s; {len(during)} greetings meanwhile, "
         f"longest wait {longest:.3f} s")
