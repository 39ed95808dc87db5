"""Smarthost credentials files (`relay via HOST auth FILE`): `postern
config check` reports a file that is missing, readable by group or
others, or not one "LOGIN PASSWORD" line as "FILE: ...", and `postern
serve` refuses to start on it.  The same for CA files (`tls ca FILE`)
that do not load.  No network peers needed."""
import os
import re
import subprocess

import pytest

from conftest import BIN, EX_CONFIG, Server, server_env

TIMEOUT = 30


def config_with(tmp_dir_server, cred):
    with open(tmp_dir_server.conf, "a") as f:
        f.write(f"relay via 127.0.0.1:2587 auth {cred}\n"
                f"relay for other.test direct\n")


@pytest.fixture
def srv():
    s = Server()
    yield s
    s.cleanup()


def check(srv):
    return subprocess.run([BIN, "config", "-c", str(srv.conf), "check"],
                          capture_output=True, text=True, timeout=TIMEOUT)


def serve(srv):
    """serve must refuse before it binds anything: it exits by itself."""
    try:
        return subprocess.run([BIN, "serve", "-c", str(srv.conf)],
                              capture_output=True, text=True,
                              timeout=TIMEOUT, env=server_env())
    except subprocess.TimeoutExpired:
        pytest.fail("postern serve started despite a bad credentials file")


@pytest.mark.parametrize("case", ["mode", "missing", "malformed", "empty"])
def test_bad_credentials_file(srv, case):
    cred = srv.dir / "smarthost.auth"
    if case == "mode":
        cred.write_text("hoge secret password\n")
        os.chmod(cred, 0o640)
        want = "readable by others"
    elif case == "missing":
        want = "No such file"
    elif case == "malformed":
        cred.write_text("just-a-login\n")
        os.chmod(cred, 0o600)
        want = "LOGIN PASSWORD"
    else:
        cred.write_text("")
        os.chmod(cred, 0o600)
        want = "LOGIN PASSWORD"
    config_with(srv, cred)
    r = check(srv)
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert f"{cred}: " in out and want in out, out
    assert "secret" not in out
    r = serve(srv)
    assert r.returncode != 0
    assert f"{cred}: " in r.stderr and want in r.stderr, r.stderr
    assert "secret" not in r.stderr


def test_good_credentials_file(srv):
    cred = srv.dir / "smarthost.auth"
    cred.write_text("hoge@isp.example correct horse battery\n")
    os.chmod(cred, 0o600)
    config_with(srv, cred)
    r = check(srv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"relay via 127.0.0.1:2587 auth {cred}" in r.stdout
    assert "relay for other.test direct" in r.stdout
    assert "correct horse" not in r.stdout + r.stderr


@pytest.mark.parametrize("case", ["missing", "not-pem", "key-only", "fifo"])
def test_bad_tls_ca_file(srv, case):
    """A "tls ca" file that does not load stops config check and serve,
    naming the file, for relay and for submit; a FIFO in its place
    hangs neither."""
    ca = srv.dir / "relay-ca.pem"
    if case == "not-pem":
        ca.write_text("this is no certificate\n")
    elif case == "fifo":
        os.mkfifo(ca)
    elif case == "key-only":
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", str(ca)],
                       check=True, capture_output=True, timeout=TIMEOUT)
    with open(srv.conf, "a") as f:
        f.write(f"relay via 127.0.0.1:2587 tls ca {ca}\n")
    r = check(srv)
    out = r.stdout + r.stderr
    assert r.returncode == EX_CONFIG, out
    assert re.search(rf"^{re.escape(str(ca))}: ", out, re.M), out
    r = serve(srv)
    assert r.returncode != 0
    assert f"{ca}: " in r.stderr, r.stderr

    # the same file for the sendmail command's submit via
    srv.conf.write_text(f"domains example.test\nspool {srv.spool}\n"
                        f"listen smtp on 127.0.0.1 port {srv.smtp_port}\n"
                        f"submit via 127.0.0.1:2587 tls ca {ca}\n")
    r = check(srv)
    out = r.stdout + r.stderr
    assert r.returncode == EX_CONFIG, out
    assert f"{ca}: " in out, out


def test_tls_ca_file_and_its_warning(srv):
    """A loadable CA file passes; a rule with credentials and neither
    "tls verify" nor "tls ca" is warned about."""
    ca = srv.dir / "relay-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=relay CA", "-keyout",
                    str(srv.dir / "ca.key"), "-out", str(ca)],
                   check=True, capture_output=True, timeout=TIMEOUT)
    cred = srv.dir / "smarthost.auth"
    cred.write_text("hoge@isp.example correct horse battery\n")
    os.chmod(cred, 0o600)
    with open(srv.conf, "a") as f:
        f.write(f"relay via 127.0.0.1:2587 tls ca {ca} auth {cred}\n"
                f"relay for other.test via 127.0.0.1:2588 auth {cred}\n")
    r = check(srv)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert f"relay via 127.0.0.1:2587 auth {cred} tls ca {ca}" in r.stdout
    assert re.search(r"^warning: \S+ line \d+: relay via 127\.0\.0\.1: "
                     r"without 'tls verify' or 'tls ca FILE'", out, re.M), out
    assert out.count("without 'tls verify' or 'tls ca FILE'") == 1, out
    # a CA file others may write: they could add a CA of their own
    os.chmod(ca, 0o666)
    r = check(srv)
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert re.search(rf"^error: relay tls ca {re.escape(str(ca))} has mode "
                     r"0666", r.stdout, re.M), r.stdout
