"""The key process (docs/privsep.md "TLS key"): the TLS private key is
held by keyd alone; the workers' TLS contexts forward every private-key
operation to it.  Checked here: the workers cannot sign without keyd (a
stopped keyd fails handshakes cleanly, a restarted one serves again),
ECDSA and RSA certificates work with TLS 1.2 and 1.3, no worker has the
key file open, and (as root) no worker's memory holds the private key."""
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (NET_TIMEOUT, build_shim, finish_checked, owned_server,
                      wait_for)
from test_auth import make_server, starttls, tls_context

TOOL_TIMEOUT = 30


def keyd_pid(srv):
    """The running key process: the last one that said it serves."""
    return srv.helper_pid("keyd", "keyd: serving")


def implicit_tls(srv, version=None, timeout=NET_TIMEOUT):
    ctx = tls_context()
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", srv.ssl_port),
                                  timeout=timeout) as raw:
        with ctx.wrap_socket(raw) as t:
            assert t.recv(512).startswith(b"220 ")
            return t.version(), t.cipher()[0]


@pytest.fixture
def srv():
    s = make_server(extra=["workers 1"])
    yield from owned_server(s)


def test_workers_cannot_sign_without_keyd(srv):
    assert wait_for(lambda: keyd_pid(srv) is not None, 10), srv.log()
    pid = keyd_pid(srv)
    implicit_tls(srv)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            implicit_tls(srv)
        # The worker gives up after its 2 s timeout, not the client's.
        assert time.monotonic() - t0 < 8
        srv.wait_log(r"tls: the key process did not answer")
        # Plain SMTP on the same worker is not held up meanwhile.
        with srv.connect() as c:
            assert c.cmd("NOOP")[0] == 250
    finally:
        os.kill(pid, signal.SIGCONT)
    implicit_tls(srv)
    # Killed: the master restarts it and the worker reconnects.
    os.kill(pid, signal.SIGKILL)
    srv.wait_log(r"master: key process 0 \(pid %d\) killed by signal 9" % pid)
    assert wait_for(lambda: keyd_pid(srv) not in (None, pid), 10), srv.log()
    assert implicit_tls(srv)[0] in ("TLSv1.2", "TLSv1.3")
    with srv.connect(srv.sub_port) as c:
        starttls(c)
        assert c.cmd("NOOP")[0] == 250


def test_a_child_that_cannot_be_forked_is_started_later(tmp_path):
    """The key process dies while fork(2) fails (the process limit, no
    memory): the master tries again until it can, instead of leaving the
    server without TLS until a reload."""
    shim = build_shim("failfork", tmp_path)
    flag = tmp_path / "fail"
    srv = make_server(extra=["workers 1"], start=False)
    srv.wrap = ["env", f"LD_PRELOAD={shim}", f"FAILFORK_FLAG={flag}",
                "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0"]
    srv.start()
    try:
        assert wait_for(lambda: keyd_pid(srv) is not None, 10), srv.log()
        pid = keyd_pid(srv)
        flag.touch()
        os.kill(pid, signal.SIGKILL)
        srv.wait_log(r"master: fork key process")
        time.sleep(2)                   # a few more tries fail
        assert keyd_pid(srv) in (None, pid)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            implicit_tls(srv)
        flag.unlink()
        assert wait_for(lambda: keyd_pid(srv) not in (None, pid), 10), \
            srv.log()[-2000:]
        assert implicit_tls(srv)[0] in ("TLSv1.2", "TLSv1.3")
        srv.wait_log(r"master: owed children started: 1")
    finally:
        if flag.exists():
            flag.unlink()
        finish_checked(srv)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_worker_killed_leaves_its_helpers_idle(srv):
    """The auth and key processes notice a worker's connection closing
    and drop it.  (They used to read its end of file as "nothing yet"
    and spin on the dead socket at full CPU.)"""
    assert wait_for(lambda: keyd_pid(srv) is not None, 10), srv.log()
    implicit_tls(srv)
    with srv.connect(srv.sub_port) as c:
        starttls(c)
        assert c.cmd("NOOP")[0] == 250
    (authd,) = [int(p) for p in re.findall(
        r"postern/authd\[(\d+)\]: authd: verifying", srv.log())
        if int(p) in srv.children()]
    keyd = keyd_pid(srv)
    (victim,) = srv.workers()
    os.kill(victim, signal.SIGKILL)
    srv.wait_log(r"master: worker 0 \(pid %d\) killed by signal 9" % victim)
    before = {p: cpu_seconds(p) for p in (authd, keyd)}
    time.sleep(2)
    used = {p: cpu_seconds(p) - before[p] for p in (authd, keyd)}
    assert all(u < 0.5 for u in used.values()), used
    # and they still serve the restarted worker
    assert wait_for(lambda: len(srv.workers()) == 1, 10)
    assert implicit_tls(srv)[0] in ("TLSv1.2", "TLSv1.3")


def test_key_file_open_in_no_worker(srv):
    key = str(srv.spool / "tls" / "selfsigned-key.pem")
    implicit_tls(srv)
    workers = srv.workers()
    assert workers
    for pid in workers + [keyd_pid(srv)]:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                assert os.readlink(f"/proc/{pid}/fd/{fd}") != key, pid
            except FileNotFoundError:
                pass


def private_scalar(keyfile):
    """The private part of a key as bytes (EC: the scalar, RSA: d)."""
    out = subprocess.run(["openssl", "pkey", "-in", str(keyfile), "-noout",
                          "-text"], capture_output=True, text=True,
                         check=True, timeout=TOOL_TIMEOUT).stdout
    m = re.search(r"^(?:priv|privateExponent):\s*\n((?:\s+[0-9a-f:]+\n)+)",
                  out, re.M)
    return bytes.fromhex(re.sub(r"[\s:]", "", m.group(1))).lstrip(b"\0")


def memory_holds(pid, needle):
    """Search the process's writable private mappings for needle, in
    either byte order: a big number in memory (OpenSSL's BIGNUM) is
    words of the machine's order, least significant first, so on x86
    the scalar is there reversed once the decoder's buffers are
    cleansed."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read().splitlines()
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            # heap, stacks, anonymous memory; not the huge sanitizer
            # shadow reservations, which are never written
            if "rw" not in fields[1] or hi - lo > 256 << 20:
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            if needle in data or needle[::-1] in data:
                return True
    return False


def test_worker_memory_holds_no_key(srv):
    if os.geteuid() != 0:
        pytest.skip("needs root to read a worker's memory once it has "
                    "dropped privileges")
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    secret = private_scalar(srv.spool / "tls" / "selfsigned-key.pem")
    assert len(secret) >= 24
    implicit_tls(srv)
    # The check can find it: keyd has it.
    assert memory_holds(keyd_pid(srv), secret)
    for pid in srv.workers():
        assert not memory_holds(pid, secret), f"worker {pid} holds the key"


def make_cert(d, kind):
    cert, key = d / f"{kind}.pem", d / f"{kind}.key"
    newkey = (["-newkey", "rsa:2048"] if kind == "rsa" else
              ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", f"/CN={kind}.example.test"], check=True,
                   capture_output=True, timeout=TOOL_TIMEOUT)
    return cert, key


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_configured_certificates_tls12_and_13(kind):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    srv = make_server(start=False)
    try:
        cert, key = make_cert(srv.dir, kind)
        srv.conf.write_text(srv.conf.read_text() +
                            f"tls cert {cert} key {key}\n")
        srv.start()
        srv.wait_log(r"keyd: serving the %s key" % kind.upper())
        assert "cannot sign" not in srv.log()
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            got, cipher = implicit_tls(srv, v)
            assert got == v.name.replace("v1_", "v1."), got
            assert not cipher.startswith(("AES", "DES")), cipher  # no kRSA
        # TLS 1.3 with RSA signs with RSA-PSS; TLS 1.2 is asked for
        # PKCS#1 v1.5 explicitly.
        sigalgs = ["ECDSA+SHA256"] if kind == "ec" else [
            "RSA-PSS+SHA256", "RSA-PSS+SHA384", "RSA-PSS+SHA512",
            "RSA+SHA256"]
        for alg in sigalgs:
            for proto in ("-tls1_2", "-tls1_3"):
                if alg == "RSA+SHA256" and proto == "-tls1_3":
                    continue    # not allowed in TLS 1.3
                r = subprocess.run(
                    ["openssl", "s_client", proto, "-sigalgs", alg,
                     "-starttls", "smtp", "-connect",
                     f"127.0.0.1:{srv.sub_port}", "-verify_return_error",
                     "-CAfile", str(cert)],
                    input=b"QUIT\r\n", capture_output=True,
                    timeout=TOOL_TIMEOUT)
                out = r.stdout.decode(errors="replace")
                assert "Verify return code: 0 (ok)" in out, (alg, proto,
                                                            out, r.stderr)
        with smtplib.SMTP("127.0.0.1", srv.sub_port,
                          timeout=NET_TIMEOUT) as s:
            s.starttls(context=tls_context())
            assert s.noop()[0] == 250
    finally:
        finish_checked(srv)


def test_the_key_process_decrypts_nothing():
    """With an RSA key, the raw private operation (no padding) is what
    RSA-PSS signing needs, and a decryption too.  The key process takes
    it only for a block shaped as a PSS encoding: a ciphertext sent to
    its socket (by code running as the server, the only one who can
    reach it) gets a failure, not the plaintext.  PKCS#1 v1.5 signing
    and TLS with RSA-PSS keep working (test above)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    import hashlib
    import struct
    srv = make_server(start=False)
    try:
        cert, key = make_cert(srv.dir, "rsa")
        srv.conf.write_text(srv.conf.read_text() +
                            f"tls cert {cert} key {key}\n")
        srv.start()
        srv.wait_log(r"keyd: serving the RSA key")
        pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey",
                              "-noout"], check=True, capture_output=True,
                             timeout=TOOL_TIMEOUT).stdout
        (srv.dir / "pub.pem").write_bytes(pub)
        der = subprocess.run(["openssl", "pkey", "-pubin", "-in",
                              str(srv.dir / "pub.pem"), "-outform", "DER"],
                             check=True, capture_output=True,
                             timeout=TOOL_TIMEOUT).stdout
        secret = b"premaster secret: 0123456789abcdef0123456789ab"
        (srv.dir / "secret").write_bytes(secret)
        ct = subprocess.run(["openssl", "pkeyutl", "-encrypt", "-pubin",
                             "-inkey", str(srv.dir / "pub.pem"), "-in",
                             str(srv.dir / "secret")], check=True,
                            capture_output=True, timeout=TOOL_TIMEOUT).stdout

        def data(b):
            return struct.pack(">I", len(b)) + b

        # MSG_VERSION 4, MSG_KEY_OP 7, KEY_OP_RSA_SIGN 2, RSA_NO_PADDING 3
        # (src/proc/msg.h, openssl/rsa.h)
        msg = (struct.pack(">HHQ", 4, 7, 42) + struct.pack(">II", 2, 3) +
               data(hashlib.sha256(der).digest()) + data(ct))
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as so:
            so.settimeout(NET_TIMEOUT)
            so.connect(str(srv.spool / "private" / "keyd"))
            so.send(msg)
            r = so.recv(16384)
        status = struct.unpack(">I", r[12:16])[0]
        assert status == 1, status              # KEY_STATUS_FAIL
        assert secret not in r
        srv.wait_log(r"keyd: operation 2 failed")
        # and the key still signs for TLS 1.3 (RSA-PSS)
        assert implicit_tls(srv, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
    finally:
        finish_checked(srv)
