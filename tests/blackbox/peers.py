"""Real peers for the remote delivery tests (notes in
/work/shared/notes/test-peers.md): dnsmasq serving MX/A/AAAA records on a
loopback port, a private Postfix instance with Cyrus SASL, and two tiny
misbehaving SMTP servers (a 421 greeting, a silent one).  Everything
listens on 127.0.0.0/8 only, every wait is bounded, and every process is
stopped by its own PID."""
import base64
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from conftest import free_port, wait_for
from fakeserver import FakeServer

TOOL_TIMEOUT = 30


def require_root(what):
    """Binding port 25 on 127.0.0.x needs root."""
    import pytest
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (port 25 on 127.0.0.x); "
                    "run the suite as root as CI does")


def port_open(addr, port, timeout=0.5):
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


def stop_pid(pid, timeout=10):
    """SIGTERM one process we started; SIGKILL it if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_for(lambda: not _alive(pid), timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# ----------------------------------------------------------------------
# DNS: dnsmasq from dnsmasq-base

def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   timeout=TOOL_TIMEOUT)


class PrivateCA:
    """A private certificate authority made with the openssl command, for
    servers whose certificates only it vouches for: cert(name, sans)
    issues a P-256 leaf (sans as "IP:127.0.0.1,DNS:relay.test") and
    returns its (certificate, key) paths."""

    def __init__(self, directory, name):
        self.dir = Path(directory)
        self.name = name
        self.pem = self.dir / f"{name}-ca.pem"
        self.key = self.dir / f"{name}-ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                 "-subj", f"/CN={name} test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign",
                 "-keyout", str(self.key), "-out", str(self.pem))

    def cert(self, name, sans):
        key, csr = self.dir / f"{name}.key", self.dir / f"{name}.csr"
        pem, ext = self.dir / f"{name}.pem", self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={sans}\n"
                       "basicConstraints=critical,CA:FALSE\n"
                       "extendedKeyUsage=serverAuth\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", str(key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.pem),
                 "-CAkey", str(self.key), "-CAcreateserial", "-days", "2",
                 "-extfile", str(ext), "-out", str(pem))
        os.chmod(key, 0o600)
        return pem, key


def self_signed_cert(directory, name, sans):
    """A self-signed server certificate that is no CA (what a server
    makes for itself), and its key: (certificate, key) paths."""
    d = Path(directory)
    pem, key = d / f"{name}.pem", d / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-addext", f"subjectAltName={sans}",
             "-addext", "basicConstraints=critical,CA:FALSE",
             "-keyout", str(key), "-out", str(pem))
    os.chmod(key, 0o600)
    return pem, key


class DNS:
    """dnsmasq answering only from its command line: --mx-host and
    --host-record; every other name under .test is NXDOMAIN (--local)."""

    def __init__(self, mx=(), hosts=(), local="test", txt=(),
                 log_queries=False):
        self.bin = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.port = free_port(udp=True)
        self.args = [self.bin, "--keep-in-foreground", f"--port={self.port}",
                     "--listen-address=127.0.0.1", "--bind-interfaces",
                     "--no-resolv", "--no-hosts", "--pid-file=",
                     f"--local=/{local}/", "--user=root", "--log-facility=-"]
        self.args += [f"--mx-host={m}" for m in mx]
        self.args += [f"--host-record={h}" for h in hosts]
        self.args += [f"--txt-record={t}" for t in txt]
        if log_queries:         # "query[A] NAME from ADDR" in the log
            self.args.append("--log-queries")
        self.proc = None

    def start(self, logpath):
        import pytest
        if not os.access(self.bin, os.X_OK):
            pytest.skip("dnsmasq is not installed (Debian: dnsmasq-base)")
        self.log = open(logpath, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        ok = wait_for(lambda: self.proc.poll() is not None or
                      self._answers(), 10)
        assert ok and self.proc.poll() is None, \
            "dnsmasq did not start:\n" + Path(logpath).read_text()
        return self

    def _answers(self):
        # a query for the root's SOA: any answer means it is up
        q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            try:
                s.sendto(q, ("127.0.0.1", self.port))
                return len(s.recv(512)) >= 12
            except OSError:
                return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            stop_pid(self.proc.pid)
            self.proc.wait(10)
        if self.proc:
            self.log.close()


# ----------------------------------------------------------------------
# misbehaving SMTP servers, in a thread of the test process

class FakeSMTP(FakeServer):
    """mode "silent": accept and say nothing; "421": greet with 421 and
    close; "slow": a plain SMTP server that takes the message at about
    10 KB/s (a slow link) and records each DATA it got (octets, whether
    the final "." came); "stall": the same, but it stops reading for 6 s
    after the first 8 KB of a message; "badtls": a plain SMTP server
    that offers STARTTLS and, when asked, answers 220 and then a TLS
    protocol_version alert, as a TLS-1.0-only server would (counted in
    starttls); "plain": a plain SMTP server with PIPELINING that takes
    messages at once, says "452 4.5.3 Too many recipients" to the RCPTs
    of a transaction past rcpt_limit (if given; RFC 5321 section
    4.5.3.1.10) and rcpt_replies[address] (a reply line) to that
    address's RCPT, counting its 452s in too_many; once it has taken
    hang_after messages (if given) it answers nothing more until
    hang_after is raised or None; "gate": a plain SMTP server that takes
    connections but greets none until open_gate() is called, then takes
    every message at once.  Every mode that takes messages records each
    in transactions as (RCPT commands, addresses accepted, the data).
    "scram": a smarthost that offers STARTTLS, then AUTH SCRAM-SHA-256,
    and answers the client-first-message with `iterations` (RFC 5802
    "i="), keeping in auth_lines what the client sent after it.  Counts
    connections, and MAIL commands in mails.  The modes that take
    messages wait dot_delay seconds before their reply to the final "."
    and, with max_sessions, greet that many sessions at once and answer
    any more "421 4.7.0" at once (a limit per client).  addr may be IPv4
    or IPv6."""

    def __init__(self, addr, port, mode, rcpt_limit=None, rcpt_replies=None,
                 hang_after=None, iterations=4096, dot_delay=0,
                 max_sessions=None):
        self.addr, self.port, self.mode = addr, port, mode
        self.dot_delay = dot_delay
        self.max_sessions = max_sessions
        self.sessions = 0
        self.refused = 0
        self.mails = 0
        self.lock = threading.Lock()
        self.rcpt_limit = rcpt_limit
        self.hang_after = hang_after
        self.rcpt_replies = {a.lower(): r for a, r in
                             (rcpt_replies or {}).items()}
        self.transactions = []
        self.too_many = 0
        self.iterations = iterations
        self.auth_lines = []
        self.tls = self._tls_context() if mode == "scram" else None
        self.connections = 0
        self.datas = []
        self.starttls = 0
        self.gate = threading.Event()
        slow = mode in ("slow", "stall")    # the kernel must not take it all
        super().__init__(addr, port, rcvbuf=4096 if slow else None)

    def accepted(self, c):
        self.connections += 1
        if self.mode == "421":
            try:
                c.sendall(b"421 4.3.2 busy.example.test Service not "
                          b"available, try the next one\r\n")
            except OSError:
                pass
            c.close()
        elif self.mode in ("slow", "stall", "badtls", "plain", "gate",
                           "scram"):
            with self.lock:
                full = self.max_sessions is not None and \
                    self.sessions >= self.max_sessions
                self.sessions += not full
            if full:
                self.refused += 1
                try:
                    c.sendall(b"421 4.7.0 too many sessions from your "
                              b"address\r\n")
                except OSError:
                    pass
                c.close()
                return
            # Not spawn(): close() does not wait for a session, which
            # may be in a 30 s read; its socket is closed under it.
            threading.Thread(target=self._session, args=(c,),
                             daemon=True).start()
        # silent: keep it open, say nothing

    def _rcpt(self, cmd, tx):
        """The reply to one RCPT in "plain" mode; tx is the transaction's
        [RCPT commands, addresses accepted]."""
        addr = cmd.split(b"<", 1)[-1].split(b">", 1)[0].decode().lower()
        tx[0] += 1
        if addr in self.rcpt_replies:
            return self.rcpt_replies[addr].encode() + b"\r\n"
        if self.rcpt_limit is not None and len(tx[1]) >= self.rcpt_limit:
            self.too_many += 1
            return b"452 4.5.3 Too many recipients\r\n"
        tx[1].append(addr)
        return b"250 2.1.5 ok\r\n"

    @staticmethod
    def _tls_context():
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                            "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-days", "2", "-subj", "/CN=fake.example.test",
                            "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"],
                           check=True, capture_output=True,
                           timeout=TOOL_TIMEOUT)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
        return ctx

    def _session(self, c):
        try:
            self._slow(c)
        finally:
            with self.lock:
                self.sessions -= 1

    def _slow(self, c):
        c.settimeout(30)
        buf = b""
        tx = [0, []]
        raw = [b""]                     # the last line, as it came

        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                chunk = c.recv(1024)
                if not chunk:
                    raise EOFError
                buf += chunk
            raw[0], buf = buf.split(b"\r\n", 1)
            return raw[0].upper()

        try:
            while self.mode == "gate" and not self.gate.wait(0.2):
                if self.stopping:
                    return
            c.sendall(b"220 slow.example ESMTP\r\n")
            while not self.stopping:
                while not self.stopping and self.hang_after is not None \
                        and len(self.transactions) >= self.hang_after:
                    time.sleep(0.05)
                cmd = line()
                if self.mode == "scram" and (cmd.startswith((b"EHLO",
                                                             b"STARTTLS",
                                                             b"AUTH"))):
                    c = self._scram(c, cmd, line, raw)
                    if c is None:
                        return
                    buf = b""
                elif cmd.startswith(b"EHLO") and self.mode == "badtls":
                    c.sendall(b"250-badtls.example\r\n250 STARTTLS\r\n")
                elif cmd.startswith(b"EHLO") and self.mode == "plain":
                    c.sendall(b"250-plain.example\r\n250 PIPELINING\r\n")
                elif cmd.startswith((b"EHLO", b"HELO")):
                    c.sendall(b"250 slow.example\r\n")
                elif cmd == b"STARTTLS" and self.mode == "badtls":
                    self.starttls += 1
                    # alert(21), TLS 1.0, fatal(2) protocol_version(70)
                    c.sendall(b"220 go ahead\r\n\x15\x03\x01\x00\x02\x02\x46")
                    c.close()
                    return
                elif cmd.startswith(b"RCPT") and self.mode == "plain":
                    c.sendall(self._rcpt(cmd, tx))
                elif cmd.startswith((b"MAIL", b"RCPT", b"RSET")):
                    self.mails += cmd.startswith(b"MAIL")
                    if cmd.startswith(b"RCPT"):
                        self._rcpt(cmd, tx)     # every one taken
                    else:
                        tx = [0, []]
                    c.sendall(b"250 ok\r\n")
                elif cmd == b"DATA":
                    c.sendall(b"354 go on\r\n")
                    data, done = buf, False
                    while not done and not self.stopping:
                        if b"\r\n.\r\n" in data:
                            done = True
                            break
                        try:
                            chunk = c.recv(1024)
                        except OSError:         # reset
                            chunk = b""
                        if not chunk:
                            break
                        data += chunk
                        if self.mode == "stall" and len(data) >= 8192 and \
                                len(data) - len(chunk) < 8192:
                            time.sleep(6)
                        elif self.mode == "slow":
                            time.sleep(0.1)
                    self.datas.append((len(data), done))
                    if not done:
                        return
                    data, buf = data.split(b"\r\n.\r\n", 1)
                    self.transactions.append((tx[0], tx[1], data))
                    tx = [0, []]
                    time.sleep(self.dot_delay)
                    c.sendall(b"250 2.0.0 taken\r\n")
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"502 no\r\n")
        except (OSError, EOFError):
            return

    def open_gate(self):
        """mode "gate": greet the connections held, and every later one."""
        self.gate.set()

    def _scram(self, c, cmd, line, raw):
        """One command of the "scram" smarthost: the connection (wrapped
        in TLS after STARTTLS), or None when it is over."""
        if cmd.startswith(b"EHLO"):
            c.sendall(b"250-scram.example\r\n" + (
                b"250 AUTH SCRAM-SHA-256\r\n" if isinstance(c, ssl.SSLSocket)
                else b"250 STARTTLS\r\n"))
            return c
        if cmd == b"STARTTLS":
            c.sendall(b"220 go ahead\r\n")
            t = self.tls.wrap_socket(c, server_side=True)
            self.conns.append(t)
            return t
        # AUTH SCRAM-SHA-256 base64(n,,n=USER,r=NONCE)
        first = base64.b64decode(raw[0].split(b" ")[2])
        nonce = first.split(b",r=", 1)[1]
        c.sendall(b"334 " + base64.b64encode(
            b"r=" + nonce + b"fakeSERVERnonce,s=" +
            base64.b64encode(b"0123456789abcdef") +
            b",i=%d" % self.iterations) + b"\r\n")
        try:
            line()
            self.auth_lines.append(raw[0])
        except (OSError, EOFError):
            self.auth_lines.append(None)      # it hung up instead
            return None
        c.sendall(b"535 5.7.8 no\r\n")
        return c


# ----------------------------------------------------------------------
# Postfix: a private instance (postfix -c DIR) with Cyrus SASL

POSTFIX_DIR = Path(f"/tmp/postern-bb-postfix-{os.getpid()}")
DEFAULT_MAIN_CF = Path("/etc/postfix/main.cf")


class Postfix:
    """smtpd on ADDR:25 (STARTTLS offered) takes mail for relay_domains;
    ADDR:587 requires TLS and SASL (sasldb).  Every accepted message is
    put on hold (check_client_access static:HOLD), so tests read it in
    queue/hold/ and nothing is ever delivered onward.  Its directory is
    this run's own and is listed in the default instance's
    alternate_config_directories only while it runs."""

    def __init__(self, addr, relay_domains, sasl_users):
        self.addr = addr
        self.dir = POSTFIX_DIR
        self.relay_domains = relay_domains
        self.sasl_users = sasl_users        # [(user, realm, password)]
        self.master_pid = None

    @staticmethod
    def available():
        return shutil.which("postfix") and shutil.which("saslpasswd2") and \
            os.path.exists("/usr/lib/postfix/sbin/master")

    def _register(self):
        """Postfix only runs a config directory that the default
        instance lists in alternate_config_directories."""
        text = DEFAULT_MAIN_CF.read_text() if DEFAULT_MAIN_CF.exists() \
            else ""
        if str(self.dir) in text:
            return
        DEFAULT_MAIN_CF.parent.mkdir(parents=True, exist_ok=True)
        lines = [ln for ln in text.splitlines()
                 if not ln.startswith("alternate_config_directories")]
        old = [x for ln in text.splitlines()
               if ln.startswith("alternate_config_directories")
               for x in re.split(r"[,\s]+", ln.split("=", 1)[1]) if x]
        dirs = " ".join(old + [str(self.dir)])
        lines.append(f"alternate_config_directories = {dirs}")
        DEFAULT_MAIN_CF.write_text("\n".join(lines) + "\n")

    def start(self):
        d = self.dir
        if d.exists():
            shutil.rmtree(d)
        (d / "sasl").mkdir(parents=True)
        (d / "queue").mkdir()
        (d / "data").mkdir()
        shutil.chown(d / "data", "postfix")
        self._register()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-days", "2", "-subj",
                        "/CN=pf.example.test", "-keyout", str(d / "key.pem"),
                        "-out", str(d / "cert.pem")], check=True,
                       capture_output=True, timeout=TOOL_TIMEOUT)
        os.chmod(d / "key.pem", 0o600)
        (d / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = pf.example.test
mydestination =
relay_domains = {" ".join(self.relay_domains)}
mynetworks = 127.0.0.254/32
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
    reject_unauth_destination
smtpd_data_restrictions = check_client_access static:HOLD
in_flow_delay = 0
smtpd_error_sleep_time = 0
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
biff = no
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
smtpd_tls_cert_file = {d}/cert.pem
smtpd_tls_key_file = {d}/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {d}/sasl
smtpd_sasl_auth_enable = no
""")
        dist = Path("/usr/share/postfix/master.cf.dist").read_text()
        keep = [ln for ln in dist.splitlines()
                if not (ln.startswith("smtp ") and " inet " in ln)]
        keep += [
            f"{self.addr}:25 inet n - n - - smtpd",
            f"{self.addr}:587 inet n - n - - smtpd",
            "  -o smtpd_tls_security_level=encrypt",
            "  -o smtpd_sasl_auth_enable=yes",
            "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
            "  -o smtpd_recipient_restrictions=permit_sasl_authenticated,"
            "reject",
        ]
        (d / "master.cf").write_text("\n".join(keep) + "\n")
        sasldb = d / "sasldb2"
        (d / "sasl" / "smtpd.conf").write_text(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
            "mech_list: PLAIN LOGIN CRAM-MD5 DIGEST-MD5\n"
            f"sasldb_path: {sasldb}\n")
        for user, realm, password in self.sasl_users:
            subprocess.run(["saslpasswd2", "-f", str(sasldb), "-c", "-p",
                            "-u", realm, user], input=password + "\n",
                           text=True, check=True, capture_output=True,
                           timeout=TOOL_TIMEOUT)
        shutil.chown(sasldb, "postfix")
        os.chmod(sasldb, 0o600)
        r = subprocess.run(["postfix", "-c", str(d), "start"],
                           capture_output=True, text=True,
                           timeout=TOOL_TIMEOUT)
        assert r.returncode == 0, f"postfix start: {r.stdout}{r.stderr}" + \
            self.log()
        pidfile = d / "queue" / "pid" / "master.pid"
        assert wait_for(lambda: pidfile.exists() and
                        pidfile.read_text().strip(), 10), "no master.pid"
        self.master_pid = int(pidfile.read_text().split()[0])
        assert wait_for(lambda: port_open(self.addr, 25) and
                        port_open(self.addr, 587), 10), \
            "postfix is not listening\n" + self.log()
        return self

    def stop(self):
        if self.master_pid:
            stop_pid(self.master_pid, timeout=15)
            self.master_pid = None
        self._unregister()
        if not os.environ.get("POSTERN_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def _unregister(self):
        try:
            text = DEFAULT_MAIN_CF.read_text()
        except OSError:
            return
        out = []
        for ln in text.splitlines():
            if ln.startswith("alternate_config_directories"):
                dirs = [x for x in re.split(r"[,\s]+", ln.split("=", 1)[1])
                        if x and x != str(self.dir)]
                if not dirs:
                    continue
                ln = "alternate_config_directories = " + " ".join(dirs)
            out.append(ln)
        DEFAULT_MAIN_CF.write_text("\n".join(out) + "\n")

    def log(self):
        try:
            return (self.dir / "maillog").read_text(errors="replace")
        except OSError:
            return ""

    def held(self):
        """The raw bytes of every message on hold."""
        out = []
        for root, _, files in os.walk(self.dir / "queue" / "hold"):
            for f in files:
                try:
                    out.append((Path(root) / f).read_bytes())
                except OSError:
                    pass
        return out
