"""System accounts through PAM: a users-file entry with hash "pam" keeps
its addresses and lock in postern and its password in /etc/shadow."""
import base64
import os
import shutil
import subprocess
import time

import pytest

from conftest import NET_TIMEOUT, _finish_all
from test_auth import make_server, postern_user, settle, starttls

ACCOUNT = "postern-pamt"
SYSPASS = "Sys tem pw 7"


def plain(user, pw):
    return base64.b64encode(f"\0{user}\0{pw}".encode()).decode()


@pytest.fixture
def system_account():
    if os.geteuid() != 0:
        pytest.skip("PAM accounts need root to create a system user")
    if not shutil.which("useradd") or not shutil.which("chpasswd"):
        pytest.skip("useradd/chpasswd are not installed")
    subprocess.run(["userdel", ACCOUNT], capture_output=True, timeout=30)
    subprocess.run(["useradd", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", ACCOUNT], check=True, timeout=30)
    try:
        subprocess.run(["chpasswd"], input=f"{ACCOUNT}:{SYSPASS}\n",
                       text=True, check=True, timeout=30)
        yield ACCOUNT
    finally:
        subprocess.run(["userdel", ACCOUNT], capture_output=True, timeout=30)


def test_pam_user_authenticates_with_system_password(system_account):
    srv = make_server(users=())
    try:
        r = postern_user(srv, "add", ACCOUNT, "--pam", "--address",
                         "pamt@example.test")
        assert r.returncode == 0, r.stderr
        assert f"{ACCOUNT}:pam:" in srv.users_path.read_text()
        r = postern_user(srv, "show", ACCOUNT)
        assert "through PAM" in r.stdout, r.stdout
        settle(srv, ACCOUNT, lambda l: l is not None)
        with starttls(srv.connect(srv.sub_port)) as c:
            c.ehlo()
            code, text = c.cmd(f"AUTH PLAIN {plain(ACCOUNT, 'wrong')}")
            assert code == 535, text
        with starttls(srv.connect(srv.sub_port)) as c:
            c.ehlo()
            code, text = c.cmd(f"AUTH PLAIN {plain(ACCOUNT, SYSPASS)}")
            assert code == 235, text
            # The addresses are postern's: the sender check applies.
            assert c.cmd("MAIL FROM:<pamt@example.test>")[0] == 250
        # Locking the system account (passwd -l) locks the mail login.
        subprocess.run(["usermod", "-L", ACCOUNT], check=True, timeout=30)
        with starttls(srv.connect(srv.sub_port)) as c:
            c.ehlo()
            code, text = c.cmd(f"AUTH PLAIN {plain(ACCOUNT, SYSPASS)}")
            assert code == 535, text
        srv.wait_log(rf"authd: auth failed user={ACCOUNT} ")
    finally:
        problems = _finish_all([srv])
        assert not problems, problems


def test_a_slow_pam_check_does_not_hold_other_logins(system_account):
    """PAM runs on a thread of the auth process's own: a system account
    whose check takes about a second (a SHA-512 crypt hash with millions
    of rounds in /etc/shadow) holds no other login."""
    from test_auth_verify import Login, slow_hash, started
    subprocess.run(["usermod", "-p", slow_hash(SYSPASS), ACCOUNT],
                   check=True, timeout=30)
    srv = make_server()
    try:
        r = postern_user(srv, "add", ACCOUNT, "--pam", "--address",
                         "pamt@example.test")
        assert r.returncode == 0, r.stderr
        settle(srv, ACCOUNT, lambda l: l is not None)
        t0 = time.monotonic()
        slow = Login(srv, ACCOUNT, SYSPASS)
        started(srv, slow)
        # A users-file login, its hash on the verification threads:
        # answered while PAM still runs.
        fast = Login(srv, "hoge")
        started(srv, fast)
        fast.join(NET_TIMEOUT)
        slow.join(NET_TIMEOUT)
        for l in (fast, slow):
            assert l.error is None, l.error
            assert l.reply[0] == 235, (l.user, l.reply)
        print(f"\nfigure: PAM login answered {slow.at - t0:.2f}s in, the "
              f"file user's {fast.at - t0:.2f}s in")
        assert fast.at < slow.at, (
            f"the file user was answered {fast.at - t0:.2f} s in, the PAM "
            f"login {slow.at - t0:.2f} s in: it waited for PAM")
    finally:
        problems = _finish_all([srv])
        assert not problems, problems
