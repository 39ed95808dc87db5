"""Black-box harness for postern: the real binary on loopback, in a
temporary spool, driven by independent clients (STYLE.md section 10).

The binary is $POSTERN_BIN, or build-asan/postern in this work tree.
Every server a test starts is stopped with SIGTERM at teardown; the test
fails if the server exited non-zero or if its log holds a sanitizer
report.  All traffic stays on 127.0.0.0/8 and every socket has a timeout.
"""
import base64
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from fakeserver import FakeServer

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("POSTERN_BIN") or str(REPO / "build-asan" / "postern")
HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
NET_TIMEOUT = 10			# seconds, for every socket operation
# POSTERN_VALGRIND=1: run the server under valgrind memcheck (a build
# without sanitizers: `make memcheck`); a report fails the test.
VALGRIND = os.environ.get("POSTERN_VALGRIND") == "1"
VALGRIND_CMD = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--trace-children=yes",
                "--num-callers=30"]
VALGRIND_REPORT = re.compile(r"ERROR SUMMARY: [1-9]")
START_TIMEOUT = 60 if VALGRIND else 15
STOP_TIMEOUT = 30			# the master's own grace period is 20 s
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
EX_CONFIG = 78

LOG_EVENT = re.compile(r"\b([0-9a-f]{16}) smtp ([a-z-]+)(?: (.*))?$")


# Ports handed out come from below the kernel's ephemeral range, so that
# no client socket of this run can be sitting on one, and never twice in
# one run: the kernel's own pick (bind to port 0) may return a port just
# closed, which gave one configuration two listeners on the same port.
_PORT_LOW, _PORT_HIGH = 20000, 32000
_ports_given = set()
_next_port = _PORT_LOW + (os.getpid() * 7919) % (_PORT_HIGH - _PORT_LOW)


def _bindable(port, kind):
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(udp=False):
    """A loopback port nobody uses now and no earlier call returned; with
    udp=True, free for both UDP and TCP (a DNS server binds both)."""
    global _next_port
    for _ in range(_PORT_HIGH - _PORT_LOW):
        port = _next_port
        _next_port = _PORT_LOW + (_next_port + 1 - _PORT_LOW) % (
            _PORT_HIGH - _PORT_LOW)
        if port in _ports_given:
            continue
        if _bindable(port, socket.SOCK_STREAM) and (
                not udp or _bindable(port, socket.SOCK_DGRAM)):
            _ports_given.add(port)
            return port
    raise AssertionError("no free loopback port left in "
                         f"{_PORT_LOW}-{_PORT_HIGH}")


def umount(path, timeout=10):
    """Unmount path, retrying while it is busy: a server process may be
    reading the directory at that moment (the pickup scan, say)."""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run(["umount", str(path)], capture_output=True,
                           text=True, timeout=30)
        if r.returncode == 0:
            return
        if "busy" not in r.stderr or time.monotonic() > deadline:
            raise AssertionError(f"umount {path}: {r.stderr.strip()}")
        time.sleep(0.1)


def server_env():
    env = dict(os.environ)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until it is true or timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def proc_state(pid):
    """'R', 'S', 'Z', ... or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def child_pids(pid):
    """Children of pid, from /proc/PID/task/*/children (or ps)."""
    kids = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.update(int(x) for x in f.read().split())
        return sorted(kids)
    except OSError:
        pass
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="],
                         capture_output=True, text=True, timeout=10).stdout
    return sorted(int(x) for x in out.split())


def copies_in_memory(pids, needles):
    """{pid: total count of the needles (bytes) in its readable memory}.
    Needs root (the workers run as another user)."""
    found = {}
    for pid in pids:
        n = 0
        with open(f"/proc/{pid}/maps") as maps, \
                open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for line in maps:
                span, perm = line.split()[:2]
                lo, hi = (int(x, 16) for x in span.split("-"))
                if "r" not in perm or hi - lo > 1 << 30:
                    continue
                try:
                    mem.seek(lo)
                    data = mem.read(hi - lo)
                except (OSError, ValueError):
                    continue        # [vvar] and the like
                n += sum(data.count(x) for x in needles)
        found[pid] = n
    return found


def build_shim(name, tmp_path):
    """tests/blackbox/shims/NAME.c built as an LD_PRELOAD library in
    tmp_path; the test is SKIPped where there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip(f"SKIP: no C compiler to build the {name} shim")
    shim = tmp_path / f"{name}.so"
    src = Path(__file__).parent / "shims" / f"{name}.c"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(shim), str(src),
                    "-ldl"], check=True, timeout=60)
    return shim


def trickle_until_closed(sock, data, wait):
    """Send data one octet at a time, reading up to wait seconds after
    each; the seconds until the server closed, or None if it never did."""
    t0 = time.monotonic()
    sock.settimeout(wait)
    for b in data:
        try:
            sock.sendall(bytes([b]))
            if sock.recv(4096) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
    return None


class TrickleServer(FakeServer):
    """A server on 127.0.0.1 for one client that sends data one octet at
    a time, waiting up to `wait` seconds after each
    (trickle_until_closed): as its greeting, or, with after (b"EHLO"),
    as its answer to the first line that starts with it, once it has
    greeted.  closed: the seconds from the first octet until the client
    hung up, or None if it never did."""

    def __init__(self, data, wait, after=None, timeout=120):
        self.data, self.wait, self.after = data, wait, after
        self.timeout = timeout
        self.closed = "not connected"
        super().__init__(backlog=1)

    def accepted(self, c):
        self.stopping = True            # one client: accept no other
        with c:
            try:
                if self.after is not None:
                    c.sendall(b"220 trickle.example ESMTP\r\n")
                    c.settimeout(self.timeout)
                    f = c.makefile("rb")
                    while True:
                        line = f.readline()
                        if not line:
                            self.closed = "left before " + repr(self.after)
                            return
                        if line.upper().startswith(self.after):
                            break
                self.closed = trickle_until_closed(c, self.data, self.wait)
            except OSError:
                self.closed = "lost"

    def close(self):
        """Wait for the trickle to end (it may outlast a client that
        never hangs up), then stop listening."""
        super().close(len(self.data) * self.wait + 10)


class CyrusClient:
    """Cyrus SASL's own client library, through its sample program
    (sasl-sample-client, from sasl2-bin), for one exchange: service and
    fqdn are what an application gives sasl_client_new(), and DIGEST-MD5
    makes its digest-uri "service/fqdn" of them.  step() takes the
    server's challenge and returns the client's response, both in
    base64.  The program talks "S: "/"C: " lines on stdin/stdout, and
    asks for the password at the first challenge."""

    def __init__(self, mech, service, fqdn, user, password, timeout=30):
        if not (shutil.which("sasl-sample-client") and shutil.which("stdbuf")):
            pytest.skip("sasl-sample-client (sasl2-bin) is not installed")
        self.password, self.timeout, self.out = password, timeout, b""
        # Line-buffered, or its lines would come only at its exit.
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "sasl-sample-client", "-m", mech, "-s",
             service, "-n", fqdn, "-u", user, "-a", user],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        self._say(b"S: " + base64.b64encode(mech.encode()))  # its list
        self._client_line()                          # the one it takes
        self.asked = False

    def _say(self, *lines):
        self.proc.stdin.write(b"".join(l + b"\n" for l in lines))
        self.proc.stdin.flush()

    def _client_line(self):
        deadline = time.monotonic() + self.timeout
        while True:
            m = re.search(rb"C: ([A-Za-z0-9+/=]*)\n", self.out)
            if m:
                self.out = self.out[m.end():]
                return m.group(1)
            ready = select.select([self.proc.stdout], [], [],
                                  max(0, deadline - time.monotonic()))[0]
            chunk = os.read(self.proc.stdout.fileno(), 4096) if ready else b""
            assert chunk, "sasl-sample-client: " + self.out.decode(
                errors="replace")
            self.out += chunk

    def step(self, challenge):
        lines = [b"S: " + challenge.encode()]
        if not self.asked:
            lines.append(self.password.encode())
            self.asked = True
        self._say(*lines)
        return self._client_line().decode()

    def close(self):
        self.proc.kill()
        self.proc.wait(self.timeout)
        self.proc.stdin.close()
        self.proc.stdout.close()


def fd_links(pid):
    """(/proc/PID/fd/N, what it points to) for each open descriptor."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            yield path, os.readlink(path)
        except OSError:
            continue


def listen_inodes(port):
    """Socket inodes of the TCP listeners on 127.0.0.1:port."""
    want = f"0100007F:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


# ----------------------------------------------------------------------
# spool helpers

def split_spool_file(data):
    """(envelope dict, content bytes).  The envelope is text records up
    to the first empty line (src/queue/README); 'rcpt' is a list."""
    head, sep, content = data.partition(b"\n\n")
    assert sep, "spool file without the empty line after the envelope"
    env = {"rcpt": []}
    for line in head.decode("utf-8", "replace").split("\n"):
        key, _, value = line.partition(" ")
        if key == "rcpt":
            env["rcpt"].append(value)
        else:
            env[key] = value
    return env, content


def split_received(content):
    """(our Received: header with its continuation lines, the rest)."""
    assert content.startswith(b"Received: "), content[:200]
    pos = 0
    while True:
        eol = content.index(b"\r\n", pos) + 2
        pos = eol
        if content[pos:pos + 1] not in (b" ", b"\t"):
            return content[:pos], content[pos:]


class Server:
    """One postern master (and its workers) in its own temporary tree."""

    def __init__(self, extra=(), users=None, workers=2, listen=True):
        self.dir = Path(tempfile.mkdtemp(prefix="postern-bb-"))
        # pytest's tmp_path is under a 0700 directory: the workers, as
        # user postern, could not reach the spool there.
        os.chmod(self.dir, 0o755)
        self.spool = self.dir / "spool"
        self.conf = self.dir / "postern.conf"
        self.logpath = self.dir / "postern.log"
        self.smtp_port = free_port()
        self.sub_port = free_port()
        self.users_path = None
        lines = [
            f"hostname {HOSTNAME}",
            f"domains {DOMAIN}",
            f"spool {self.spool}",
            "mynetworks 127.0.0.2/32",
        ]
        if listen:
            lines += [
                f"listen smtp on 127.0.0.1 port {self.smtp_port}",
                f"listen submission on 127.0.0.1 port {self.sub_port}",
            ]
        lines.append(f"workers {workers}")
        # Keep accepted mail in queue/ for the tests to read: no delivery.
        lines.append("queue-manager off")
        if users is not None:
            self.users_path = self.dir / "users"
            self.users_path.write_text("".join(u + "\n" for u in users))
            lines.append(f"users {self.users_path}")
        lines += list(extra)
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc = None
        self.logf = None
        self.killed = False
        # A command the server is started through (it must exec it, so
        # that the PID stays the server's): see test_state_async.py.
        self.wrap = []

    # -- process control -------------------------------------------------

    def start(self):
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            self.wrap + (VALGRIND_CMD if VALGRIND else [])
            + [BIN, "serve", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
            stdout=self.logf, stderr=self.logf, env=server_env())
        self.killed = False
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"postern exited with {self.proc.returncode} at start:\n"
                    + self.log())
            if self._greets():
                # The master starts the pickup last, after the workers
                # that greet; once it runs, every child has closed the
                # listening sockets it does not serve (workers() counts
                # who holds them).
                wait_for(lambda: "pickup: watching" in self.log(), 5)
                return self
            if time.monotonic() > deadline:
                raise AssertionError("postern did not start listening:\n"
                                     + self.log())
            time.sleep(0.05)

    def _greets(self):
        """True once a worker answers on the smtp port with 220."""
        try:
            with socket.create_connection(("127.0.0.1", self.smtp_port),
                                          timeout=2) as s:
                s.settimeout(2)
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(512)
                    if not chunk:
                        return False
                    data += chunk
                if not data.startswith(b"220 "):
                    return False
                s.sendall(b"QUIT\r\n")
                return True
        except OSError:
            return False

    @property
    def pid(self):
        return self.proc.pid

    def children(self):
        """Every process the master started (workers, auth process...)."""
        return child_pids(self.proc.pid)

    def helper_pid(self, name, says):
        """The running child process NAME (authd, keyd...): the last one
        whose log line "postern/NAME[PID]: ..." began with says."""
        pids = re.findall(rf"postern/{name}\[(\d+)\]: {re.escape(says)}",
                          self.log())
        children = self.children()
        for pid in reversed(pids):
            if int(pid) in children:
                return int(pid)
        return None

    def workers(self):
        """The children that hold the smtp listening socket: the workers
        (the master's other helpers close the listeners)."""
        inodes = listen_inodes(self.smtp_port)
        return [pid for pid in self.children()
                if any(link.startswith("socket:[") and link[8:-1] in inodes
                       for _, link in fd_links(pid))]

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM the master (only it: it signals its workers) and wait.
        Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"postern did not stop within {timeout}s"
                                 "\n" + self.log())

    def kill9(self):
        """SIGKILL the master and its workers, as a crash would.  The
        master is stopped first so that it cannot start new workers."""
        master = self.proc.pid
        if self.proc.poll() is None:
            os.kill(master, signal.SIGSTOP)
            kids = self.children()
            for k in kids:
                os.kill(k, signal.SIGKILL)
            os.kill(master, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
            for k in kids:
                wait_for(lambda k=k: proc_state(k) in (None, "Z"), 10)
        self.killed = True

    def finish(self):
        """Stop the server; return a list of problems (empty if none)."""
        problems = []
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.terminate()
                except AssertionError as e:
                    problems.append(str(e))
            rc = self.proc.returncode
            if not self.killed and rc != 0:
                problems.append(f"postern exited with status {rc}")
        if self.logf:
            self.logf.close()
        text = self.log()
        if VALGRIND and VALGRIND_REPORT.search(text):
            problems.append("valgrind memcheck report in the log")
        for m in SANITIZER_MARKERS:
            if m in text:
                problems.append(f"sanitizer report ({m!r}) in the log")
                break
        if problems:
            problems.append("log:\n" + text[-20000:])
        return problems

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- observation -----------------------------------------------------

    def log(self):
        try:
            return self.logpath.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, kind=None, sid=None):
        """Parsed session log lines: (session id, event, rest)."""
        out = []
        for line in self.log().splitlines():
            m = LOG_EVENT.search(line)
            if m and (kind is None or m.group(2) == kind) and \
                    (sid is None or m.group(1) == sid):
                out.append((m.group(1), m.group(2), m.group(3) or ""))
        return out

    def wait_log(self, pattern, timeout=10):
        """The first match of regex pattern in the log, waiting for it."""
        rx = re.compile(pattern, re.M)
        m = wait_for(lambda: rx.search(self.log()), timeout)
        assert m, f"no log line matching {pattern!r}:\n{self.log()}"
        return m

    def queue_ids(self):
        try:
            return sorted(os.listdir(self.spool / "queue"))
        except FileNotFoundError:
            return []

    def incoming(self):
        """Messages being received: the named files in incoming/, and the
        unnamed ones (O_TMPFILE, shown by /proc as "incoming/N/#INODE
        (deleted)", N one of the subdirectories the spares are spread
        over, or "incoming/#INODE") that the server's processes hold
        open.  The empty unnamed files are the workers' spares
        (src/queue/qpool.h); a message's file is empty too until its
        first 32 KiB (the spool writer's buffer, envelope included)
        have come in."""
        top = self.spool / "incoming"
        try:
            names = [n for n in os.listdir(top) if not (top / n).is_dir()]
        except FileNotFoundError:
            names = []
        unnamed = re.compile(
            re.escape(os.path.realpath(top)) + r"/(?:\d+/)?(#\d+) \(deleted\)$")
        alive = self.proc is not None and self.proc.poll() is None
        for pid in self.children() if alive else []:
            for path, link in fd_links(pid):
                m = unnamed.match(link)
                if not m:
                    continue
                try:
                    size = os.stat(path).st_size
                except OSError:
                    continue
                if size > 0:
                    names.append(m.group(1))
        return sorted(names)

    def read_queued(self, qid):
        """(envelope, content after our Received: header, Received:)."""
        data = (self.spool / "queue" / qid).read_bytes()
        env, content = split_spool_file(data)
        received, body = split_received(content)
        return env, body, received

    def connect(self, port=None, source=None):
        return SMTPClient(port or self.smtp_port, source=source)


# ----------------------------------------------------------------------
# raw line clients: bytes in, CRLF lines out (SMTP here, POP3 in
# pop3_helpers.py)

class LineClient:
    def __init__(self, port, source=None, timeout=NET_TIMEOUT, wrap=None):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        if wrap:
            self.sock = wrap(self.sock)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; pending {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")


class SMTPClient(LineClient):
    """(code, text) replies."""

    def __init__(self, port, source=None, timeout=NET_TIMEOUT,
                 greet=True):
        super().__init__(port, source, timeout)
        self.greeting = self.reply() if greet else None

    def reply(self):
        """One (possibly multi-line) reply: (code, text of all lines)."""
        lines = []
        while True:
            line = self.line()
            assert re.match(r"^\d{3}[ -]", line), f"bad reply line {line!r}"
            lines.append(line)
            if line[3] == " ":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def ehlo(self, name="client.example"):
        code, text = self.cmd(f"EHLO {name}")
        assert code == 250, text
        return text

    def closed(self, timeout=NET_TIMEOUT):
        """True if the server closes the connection (EOF or reset) within
        timeout seconds with nothing more to say."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return self.buf == b""
                self.buf += chunk
        except ConnectionResetError:
            return self.buf == b""
        except socket.timeout:
            return False


def queued_id(text):
    m = re.search(r"queued as ([0-9A-F]{16})\b", text)
    assert m, f"no queue id in {text!r}"
    return m.group(1)


# ----------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="session", autouse=True)
def postern_environment():
    if not os.access(BIN, os.X_OK):
        pytest.exit(f"postern binary {BIN} not found: build it or set "
                    "POSTERN_BIN", returncode=2)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postern")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", "postern"],
                           check=True, timeout=60)


def user_add(srv, name, password, *addrs):
    """`postern user add` NAME with this password and addresses."""
    args = [BIN, "user", "-c", str(srv.conf), "add", name,
            "--password-stdin"]
    for a in addrs:
        args += ["--address", a]
    r = subprocess.run(args, input=password + "\n", capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _finish_all(servers):
    """Stop the servers; the failure text carries their logs.  The temp
    trees are removed unless POSTERN_KEEP is set (to look at a spool)."""
    problems = []
    for srv in servers:
        p = srv.finish()
        if p:
            problems.append(f"server in {srv.dir}:\n" + "\n".join(p))
        if not os.environ.get("POSTERN_KEEP"):
            srv.cleanup()
    return problems


@pytest.fixture
def postern():
    """Factory: postern(extra=[config lines], users=[users file lines],
    workers=N, start=True) returns a running Server."""
    servers = []

    def make(extra=(), users=None, workers=2, start=True):
        srv = Server(extra=extra, users=users, workers=workers)
        servers.append(srv)
        return srv.start() if start else srv

    yield make
    problems = _finish_all(servers)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def server(postern):
    """A server with the default configuration."""
    return postern()


def finish_checked(srv):
    """Stop srv and fail the test on what its end checks find (exit
    status, sanitizer reports)."""
    problems = _finish_all([srv])
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def owned_server(srv, start=False):
    """The body of a fixture that owns srv (`yield from owned_server(s)`):
    started here if start, handed to the tests, then finish_checked."""
    try:
        if start:
            srv.start()
        yield srv
    finally:
        finish_checked(srv)


def module_server(**kw):
    """The body of a module-scoped fixture (`yield from module_server()`):
    one server for a module's tests, with the same end checks."""
    yield from owned_server(Server(**kw), start=True)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "memcheck: a representative test also run under valgrind "
        "memcheck by `make memcheck` (POSTERN_VALGRIND=1)")
