"""`postern probe` (issue 8) on loopback: a port with a mail server
(banner), a closed port (refused: a host answered) and a blackholed one
(timeout: silently dropped, the OP25B signature).  The blackhole is a
listening socket whose accept queue is full: Linux then drops further
SYNs without an answer (unless net.ipv4.tcp_abort_on_overflow is set),
which needs neither root nor a firewall."""
import socket
import subprocess
import time

import pytest

from conftest import BIN, TrickleServer, free_port

PROBE_TIMEOUT = 60


@pytest.fixture
def blackhole():
    try:
        with open("/proc/sys/net/ipv4/tcp_abort_on_overflow") as f:
            if f.read().strip() != "0":
                pytest.skip("SKIP: tcp_abort_on_overflow is set: a full "
                            "accept queue answers with RST, no blackhole")
    except OSError:
        pass
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.2)
    yield port
    for c in fillers:
        c.close()
    lst.close()


def probe(*args):
    return subprocess.run([BIN, "probe", *args], capture_output=True,
                          text=True, timeout=PROBE_TIMEOUT)


def test_port_25_open(server):
    r = probe("127.0.0.1", "--ports",
              f"smtp={server.smtp_port},submission={server.sub_port}",
              "--timeout", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{server.smtp_port}/smtp" in r.stdout
    assert "banner" in r.stdout and "220 mail.example.test" in r.stdout
    assert "port 25 is open" in r.stdout


def test_port_25_blackholed_is_op25b(server, blackhole):
    t0 = time.monotonic()
    r = probe("127.0.0.1", "--ports",
              f"smtp={blackhole},submission={server.sub_port}",
              "--timeout", "2")
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(f"{blackhole}/smtp" in l and "timeout" in l for l in lines), \
        r.stdout
    assert "blocked from this network (OP25B)" in r.stdout
    assert "relay via SMARTHOST:submission auth" in r.stdout
    assert "port 587" in r.stdout
    assert took < 20


def test_port_25_refused_is_not_op25b(server):
    closed = free_port()
    r = probe("127.0.0.1", "--ports",
              f"smtp={closed},submission={server.sub_port}", "--timeout", "3")
    assert r.returncode == 1, r.stdout + r.stderr
    assert any(f"{closed}/smtp" in l and "refused" in l
               for l in r.stdout.splitlines()), r.stdout
    assert "that is not OP25B" in r.stdout


def test_nothing_answers_is_2(blackhole):
    r = probe("127.0.0.1", "--ports",
              f"smtp={blackhole},submission={free_port()}", "--timeout", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "nothing answers" in r.stdout


def test_host_from_configuration(server, tmp_path):
    conf = tmp_path / "postern.conf"
    conf.write_text("hostname h.example.test\ndomains example.test\n"
                    f"spool {tmp_path}/spool\nlisten smtp on 127.0.0.1 port 2525\nprobe-host 127.0.0.1\n")
    r = probe("-c", str(conf), "--ports", f"smtp={server.smtp_port}",
              "--timeout", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "postern probe 127.0.0.1" in r.stdout
    # without probe-host, the smarthost of relay via
    conf.write_text("hostname h.example.test\ndomains example.test\n"
                    f"spool {tmp_path}/spool\nlisten smtp on 127.0.0.1 port 2525\nrelay via 127.0.0.1:587\n")
    r = probe("-c", str(conf), "--ports", f"smtp={server.smtp_port}",
              "--timeout", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    # neither: usage
    conf.write_text("hostname h.example.test\ndomains example.test\n"
                    f"spool {tmp_path}/spool\nlisten smtp on 127.0.0.1 port 2525\n")
    r = probe("-c", str(conf))
    assert r.returncode == 64
    assert "neither 'probe-host' nor 'relay via'" in r.stderr


def test_probe_usage():
    assert probe("127.0.0.1", "--ports", "12345").returncode == 64
    assert probe("127.0.0.1", "--timeout", "x").returncode == 64
    assert probe("a", "b").returncode == 64


def test_a_trickled_greeting_ends_at_the_timeout():
    """--timeout bounds the greeting as a whole, not each read of it: a
    server that sends an octet a second would otherwise hold the probe
    for as long as it liked."""
    srv = TrickleServer(b"220 " + b"x" * 30 + b"\r\n", 1.0)
    t0 = time.monotonic()
    try:
        r = probe("127.0.0.1", "--ports", f"smtp={srv.port}", "--timeout",
                  "2")
    finally:
        took = time.monotonic() - t0
        srv.close()
    line = [l for l in r.stdout.splitlines() if f"{srv.port}/smtp" in l]
    assert line and "no-banner" in line[0], r.stdout
    assert "no greeting: not complete within 2.0 s" in line[0], r.stdout
    assert took < 8, (took, r.stdout)
    assert isinstance(srv.closed, float) and srv.closed < 6, srv.closed
