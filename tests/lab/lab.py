"""The OP25B lab (issue 8): a small Internet in network namespaces.

    home  10.77.1.2 ---- 10.77.1.1  isp (router: nftables from
    (client, home          |         `postern op25b-rules`, forwarding)
     postern on lo)    10.77.3.1 ---- 10.77.3.2  ispmail (the ISP's
                           |                     postern: 25 587 465 110)
                       10.77.2.1 ---- 10.77.2.2   outside: remote MX postern
                                      10.77.2.3   the travelling user
                                      10.77.2.4   a misconfigured postern
                                      10.77.2.53  dnsmasq (lab DNS)

Addresses exist only inside the namespaces made here; the host's own
interfaces and routes are never touched.  Every process is started here
and stopped by its PID; Lab.teardown() also deletes the namespaces and
is safe to call after a partial setup.  Needs root, iproute2 (`ip
netns`), nft and dnsmasq; Lab.unavailable() says what is missing.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "labclient.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
CMD_TIMEOUT = 60
STOP_TIMEOUT = 25

HOME, ROUTER, ISPMAIL, OUTSIDE = "home", "isp", "ispmail", "outside"
A = {
    "home": "10.77.1.2", "router_home": "10.77.1.1",
    "router_mail": "10.77.3.1", "isp": "10.77.3.2",
    "router_out": "10.77.2.1", "mx": "10.77.2.2", "traveller": "10.77.2.3",
    "bad": "10.77.2.4", "dns": "10.77.2.53",
}
CUSTOMERS = ["10.77.1.0/24", "fd00:77:1::/64"]
STATIC = ["10.77.1.200/32"]
PASSWORD = {"alice": "alice pass 1", "bob": "bob pass 2",
            "carol": "carol pass 3", "eve": "eve pass 4"}


def unavailable():
    """None when the lab can run here, else the reason to SKIP."""
    if os.geteuid() != 0:
        return "the OP25B lab needs root (network namespaces, nftables)"
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables"),
                      ("dnsmasq", "dnsmasq-base"), ("openssl", "openssl")):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (Debian package {pkg})"
    name = f"pstlabprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True,
                       text=True, timeout=CMD_TIMEOUT)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    try:
        r = subprocess.run(["ip", "netns", "exec", name, "nft", "list",
                            "ruleset"], capture_output=True, text=True,
                           timeout=CMD_TIMEOUT)
        if r.returncode != 0:
            return f"nft cannot run in a namespace: {r.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True,
                       timeout=CMD_TIMEOUT)
    return None


class Lab:
    def __init__(self, binary):
        self.bin = binary
        self.tag = f"pl{os.getpid() % 100000}"
        self.dir = Path(tempfile.mkdtemp(prefix="postern-lab-"))
        os.chmod(self.dir, 0o755)       # the workers (user postern) read it
        self.namespaces = []
        self.procs = []                 # (name, Popen, logfile)
        self.servers = {}
        self.missing = {}               # feature -> why it is missing
        self.t0 = time.monotonic()

    # -- plumbing ----------------------------------------------------------

    def ns(self, short):
        return f"{self.tag}-{short}"

    def sh(self, *args, check=True, input=None):
        r = subprocess.run([str(a) for a in args], capture_output=True,
                           text=True, timeout=CMD_TIMEOUT, input=input)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))}: "
                               f"{r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def in_ns(self, short, *args, check=False, input=None):
        return self.sh("ip", "netns", "exec", self.ns(short), *args,
                       check=check, input=input)

    def add_ns(self, short):
        self.sh("ip", "netns", "add", self.ns(short))
        self.namespaces.append(self.ns(short))
        self.in_ns(short, "ip", "link", "set", "lo", "up", check=True)

    def link(self, a, a_addr, b, b_addr, name):
        """A veth pair between namespaces a and b (created inside them,
        never in the host's namespace)."""
        ia, ib = f"{self.tag}{name}a"[-15:], f"{self.tag}{name}b"[-15:]
        self.sh("ip", "link", "add", ia, "netns", self.ns(a), "type", "veth",
                "peer", "name", ib, "netns", self.ns(b))
        for short, dev, addr in ((a, ia, a_addr), (b, ib, b_addr)):
            self.in_ns(short, "ip", "addr", "add", addr, "dev", dev,
                       check=True)
            self.in_ns(short, "ip", "link", "set", dev, "up", check=True)
        return ia, ib

    def spawn(self, short, name, args):
        log = self.dir / f"{name}.log"
        f = open(log, "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(short),
                              *map(str, args)], stdin=subprocess.DEVNULL,
                             stdout=f, stderr=f)
        self.procs.append((name, p, f))
        return p

    def client(self, short, **spec):
        """labclient.py inside namespace short; its JSON answer."""
        r = self.in_ns(short, PYTHON, CLIENT, json.dumps(spec))
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError(f"labclient failed: {r.stdout}{r.stderr}")

    def postern(self, short, *args, input=None):
        return self.in_ns(short, self.bin, *args, input=input)

    def log(self, name):
        try:
            return (self.dir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def elapsed(self):
        return time.monotonic() - self.t0

    # -- the world ---------------------------------------------------------

    def build(self):
        for short in (HOME, ROUTER, ISPMAIL, OUTSIDE):
            self.add_ns(short)
        self.link(HOME, A["home"] + "/24", ROUTER, A["router_home"] + "/24",
                  "h")
        self.link(ISPMAIL, A["isp"] + "/24", ROUTER, A["router_mail"] + "/24",
                  "m")
        _, _ = self.link(OUTSIDE, A["mx"] + "/24", ROUTER,
                         A["router_out"] + "/24", "o")
        dev_out = f"{self.tag}oa"[-15:]
        for extra in ("traveller", "bad", "dns"):
            self.in_ns(OUTSIDE, "ip", "addr", "add", A[extra] + "/24", "dev",
                       dev_out, check=True)
        self.in_ns(HOME, "ip", "route", "add", "default", "via",
                   A["router_home"], check=True)
        self.in_ns(ISPMAIL, "ip", "route", "add", "default", "via",
                   A["router_mail"], check=True)
        self.in_ns(OUTSIDE, "ip", "route", "add", "10.77.0.0/16", "via",
                   A["router_out"], check=True)
        self.in_ns(ROUTER, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                   check=True)
        self.load_rules()
        self.start_dns()
        self.make_certificate()

    def load_rules(self):
        r = self.sh(self.bin, "op25b-rules", "--customers", *CUSTOMERS,
                    "--static", *STATIC, "--mail-servers", A["isp"])
        self.rules = r.stdout
        f = self.dir / "op25b.nft"
        f.write_text(self.rules)
        self.in_ns(ROUTER, "nft", "-f", f, check=True)

    def start_dns(self):
        self.spawn(OUTSIDE, "dnsmasq", [
            "dnsmasq", "--keep-in-foreground", "--port=53",
            f"--listen-address={A['dns']}", "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--pid-file=",
            "--mx-host=remote.test,mx.remote.test,10",
            "--mx-host=isp.test,mail.isp.test,10",
            "--mx-host=bad.test,open.bad.test,10",
            f"--host-record=mx.remote.test,{A['mx']}",
            f"--host-record=mail.isp.test,{A['isp']}",
            f"--host-record=open.bad.test,{A['bad']}",
            "--local=/test/",
        ])

    def make_certificate(self):
        """A lab CA and a certificate for mail.isp.test (name and
        address), so that `postern check --cafile` can pass every
        certificate check."""
        d = self.dir
        self.ca = d / "ca.pem"
        self.sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", d / "ca.key",
                "-out", self.ca, "-subj", "/CN=postern lab CA", "-days", "30")
        self.sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                d / "isp.key", "-out", d / "isp.csr", "-subj",
                "/CN=mail.isp.test", "-addext",
                f"subjectAltName=DNS:mail.isp.test,IP:{A['isp']}")
        self.sh("openssl", "x509", "-req", "-in", d / "isp.csr", "-CA",
                self.ca, "-CAkey", d / "ca.key", "-CAcreateserial", "-out",
                d / "isp.pem", "-days", "30", "-copy_extensions", "copy")

    def server(self, name, short, addr, lines, users=(), optional=None,
               audited=True):
        """Write a postern configuration and users; start later.
        optional: {feature: [lines]} for features a build may lack;
        each is kept only if `postern config check` accepts it, else the feature is recorded in self.missing with the
        complaint, for the scenarios that need it to SKIP.  audited=False
        for the deliberately bad server, which `config check` rejects
        (serve still runs it)."""
        sd = self.dir / name
        sd.mkdir()
        os.chmod(sd, 0o755)
        conf = sd / "postern.conf"
        base = [f"spool {sd / 'spool'}", f"mailboxes {sd / 'mail'}",
                "workers 1"] + list(lines)
        if users:
            base.append(f"users {sd / 'users'}")
            conf.write_text("\n".join(base) + "\n")
            for user, addrs in users:
                args = ["user", "-c", conf, "add", user, "--password-stdin"]
                for ad in addrs:
                    args += ["--address", ad]
                self.sh(self.bin, *args, input=PASSWORD[user] + "\n")
        conf.write_text("\n".join(base) + "\n")
        r = self.sh(self.bin, "config", "-c", conf, "check", check=False)
        if r.returncode != 0 and audited:
            raise RuntimeError(f"{name}: the base configuration is refused:"
                               f"\n{r.stdout}{r.stderr}")
        keep = []
        for feature, extra in (optional or {}).items():
            conf.write_text("\n".join(base + extra) + "\n")
            r = self.sh(self.bin, "config", "-c", conf, "check", check=False)
            if r.returncode == 0:
                keep += extra
            else:
                err = [l for l in (r.stdout + r.stderr).splitlines()
                       if "error" in l or ":" in l and "line" not in l]
                self.missing[feature] = (f"`postern config check` refuses "
                                         f"{extra!r}: " + " / ".join(err[:3]))
        conf.write_text("\n".join(base + keep) + "\n")
        srv = {"name": name, "ns": short, "addr": addr, "conf": conf,
               "dir": sd, "mail": sd / "mail"}
        self.servers[name] = srv
        return srv

    def config_ok(self, srv):
        """`postern config check` accepts the configuration: 0 or the
        complaint."""
        r = self.sh(self.bin, "config", "-c", srv["conf"], "check",
                    check=False)
        return None if r.returncode == 0 else (r.stdout + r.stderr).strip()

    def start(self, srv, port=25):
        srv["proc"] = self.spawn(srv["ns"], srv["name"],
                                 [self.bin, "serve", "-c", srv["conf"]])
        w = self.client(srv["ns"], op="wait", host=srv["addr"], port=port,
                        timeout=20)
        if not w or w.get("result") != "banner":
            raise RuntimeError(f"{srv['name']} did not start: {w}\n"
                               + self.log(srv["name"]))

    def maildir_with(self, srv, user, token, timeout=30):
        """Files in <mailboxes>/user/new/ that contain token."""
        deadline = time.monotonic() + timeout
        new = srv["mail"] / user / "new"
        while True:
            hits = []
            try:
                for f in new.iterdir():
                    try:
                        if token.encode() in f.read_bytes():
                            hits.append(f)
                    except FileNotFoundError:
                        pass
            except FileNotFoundError:
                pass
            if hits or time.monotonic() > deadline:
                return hits
            time.sleep(0.2)

    # -- teardown ----------------------------------------------------------

    def _children(self, pid):
        kids = set()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
        return kids

    def teardown(self):
        """Stop every process by PID (SIGTERM, then SIGKILL), delete the
        namespaces; returns the problems found (non-zero exits)."""
        problems = []
        for name, p, f in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p, f in reversed(self.procs):
            try:
                rc = p.wait(STOP_TIMEOUT)
                if rc not in (0, -signal.SIGTERM) and name != "dnsmasq":
                    problems.append(f"{name} exited with {rc}")
            except subprocess.TimeoutExpired:
                kids = self._children(p.pid)
                p.kill()
                for k in kids:
                    try:
                        os.kill(k, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                p.wait(10)
                problems.append(f"{name} did not stop on SIGTERM")
            f.close()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True,
                           timeout=CMD_TIMEOUT)
        self.namespaces = []
        for name, _, _ in self.procs:
            text = self.log(name)
            if "AddressSanitizer" in text or "runtime error:" in text:
                problems.append(f"sanitizer report in {name}'s log")
        return problems

    def cleanup(self):
        if not os.environ.get("POSTERN_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
