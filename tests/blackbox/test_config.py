"""`postern config check` and `postern serve` on good and bad files:
errors name the file and line, a bad file never starts a server."""
import re
import socket
import subprocess

import pytest

from conftest import BIN, EX_CONFIG, SANITIZER_MARKERS, Server, server_env

RUN_TIMEOUT = 20


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env=server_env())


def no_sanitizer_report(text):
    return not any(m in text for m in SANITIZER_MARKERS)


@pytest.fixture
def conf_server():
    """A Server object used only for its directory and config file."""
    srv = Server(extra=["message-size-limit 10M", "max-recipients 50",
                        "smtp-timeout 2m"])
    yield srv
    srv.cleanup()


def write_conf(srv, extra_lines):
    """Append lines to the config; returns the line number of the first."""
    text = srv.conf.read_text()
    first = text.count("\n") + 1
    srv.conf.write_text(text + "".join(l + "\n" for l in extra_lines))
    return first


def test_check_good_file(conf_server):
    srv = conf_server
    r = run("config", "-c", str(srv.conf), "check")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "hostname mail.example.test\n" in out
    assert "domains example.test\n" in out
    assert f"spool {srv.spool}\n" in out
    assert "mynetworks 127.0.0.2/32\n" in out
    assert (f"listen smtp on 127.0.0.1 port {srv.smtp_port} auth optional"
            in out)
    assert (f"listen submission on 127.0.0.1 port {srv.sub_port} "
            "auth required" in out)
    assert f"message-size-limit {10 * 1024 * 1024}\n" in out
    assert "max-recipients 50\n" in out
    assert "smtp-timeout 120s\n" in out
    assert "workers 2\n" in out
    assert f"{srv.conf}: ok" in out
    assert no_sanitizer_report(r.stdout + r.stderr)


def effective(r, path):
    """The settings `config check` of path printed, without the verdict
    on the file."""
    out = r.stdout.split("# effective settings\n", 1)[1]
    return "".join(l + "\n" for l in out.splitlines()
                   if not l.startswith(f"{path}: "))


def test_effective_settings_read_back_the_same(conf_server, tmp_path):
    """What `config check` prints is a configuration: checked in turn,
    it prints itself; the defaults no directive spells (workers, no
    mynetworks) are comments."""
    srv = conf_server
    text = srv.conf.read_text()
    srv.conf.write_text("\n".join(
        l for l in text.splitlines()
        if not l.startswith(("workers", "mynetworks"))) + "\n" +
        "relay via [192.0.2.25]:587 tls implicit tls ca /etc/ssl/certs/x.pem\n"
        "relay for example.org direct tls verify\n"
        "submit via [2001:db8::25]:465 tls implicit tls ca /etc/c.pem\n")
    first = run("config", "-c", str(srv.conf), "check")
    # the CA files do not exist: errors, but the settings are printed
    assert "/etc/ssl/certs/x.pem: No such file" in first.stdout, first.stdout
    again_conf = tmp_path / "again.conf"
    again_conf.write_text(effective(first, srv.conf))
    assert "# workers: one per core\n" in again_conf.read_text()
    assert "# mynetworks: none\n" in again_conf.read_text()
    again = run("config", "-c", str(again_conf), "check")
    assert effective(again, again_conf) == effective(first, srv.conf), \
        again.stdout
    # no line of it is an error (those name the file and the line)
    assert not re.search(rf"{re.escape(str(again_conf))}:\d+: ",
                         again.stdout + again.stderr), again.stdout


def test_check_reports_every_error_with_its_line(conf_server):
    srv = conf_server
    first = write_conf(srv, [
        "frobnicate yes",
        "listen smtpx on 127.0.0.1 port 2525",
        "message-size-limit 12Q",
        "# a comment is fine",
        "max-errors lots",
    ])
    r = run("config", "-c", str(srv.conf), "check")
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    err = r.stderr
    assert f"{srv.conf}:{first}: unknown directive 'frobnicate'" in err
    assert f"{srv.conf}:{first + 1}: listen: unknown role 'smtpx'" in err
    assert f"{srv.conf}:{first + 2}: message-size-limit: '12Q'" in err
    assert f"{srv.conf}:{first + 4}: max-errors: 'lots'" in err
    assert f"{srv.conf}:{first + 3}:" not in err
    assert no_sanitizer_report(r.stdout + r.stderr)


@pytest.mark.parametrize("line,message", [
    ("frobnicate yes", "unknown directive 'frobnicate'"),
    ("listen smtpx on 127.0.0.1", "listen: unknown role 'smtpx'"),
    ("listen smtp on 127.0.0.1 port 0", "listen: '0' is neither a port"),
    ("listen smtp on not-an-address", "listen: 'not-an-address' is not"),
    ("message-size-limit 12Q", "message-size-limit: '12Q' is not a size"),
    ("message-size-limit 1", "message-size-limit: '1' is not a size"),
    ("message-size-limit", "message-size-limit: expected 1 argument"),
    ("smtp-timeout 0s", "smtp-timeout: '0s'"),
    ("spool relative/path", "spool: 'relative/path' is not an absolute"),
    ("mynetworks 300.1.2.3/8", "mynetworks: '300.1.2.3/8'"),
    # A typo for /24 would open relay to a quarter of the Internet.
    ("mynetworks 192.168.1.0/2", "mynetworks: '192.168.1.0/2' has bits "
     "set after the prefix length; did you mean 192.0.0.0/2?"),
    ("workers 0", "workers: '0' is not a number"),
    ("relay via 2001:db8::10", "relay via: write an IPv6 address in "
     "brackets, [2001:db8::10]"),
    ("submit via 2001:db8::10", "submit via: write an IPv6 address in "
     "brackets, [2001:db8::10]"),
    # a '[' without its ']' was read as host "[2001:db8:" port 25
    ("relay via [2001:db8::25", "relay via: '[2001:db8::25' has no "
     "closing ']'"),
    ("relay for x.test via [192.0.2.1 auth /etc/p.auth",
     "relay via: '[192.0.2.1' has no closing ']'"),
    ("submit via [2001:db8::25", "submit via: '[2001:db8::25' has no "
     "closing ']'"),
    ("relay via [192.0.2.1]25", "relay via: '[192.0.2.1]25': only ':PORT' "
     "may follow ']'"),
    ("relay via []:25", "relay via: bad host"),
    ("pop-before-smtp 4294967297s", "pop-before-smtp: '4294967297s' is "
     "more than 7 days"),
    # Accepted and ignored, these would look like a change.
    ("listen pop3 on 127.0.0.1 port 2110 auth off", "listen: 'auth' is "
     "for SMTP listeners; a POP3 session always needs a login"),
    ("listen pop3s on 127.0.0.1 port 2995 sender-check off", "listen: "
     "'sender-check' is for SMTP listeners"),
    ("admin Bob@example.test", "admin: 'Bob@example.test' is not a local "
     "user name"),
])
def test_check_single_errors(conf_server, line, message):
    srv = conf_server
    n = write_conf(srv, [line])
    r = run("config", "-c", str(srv.conf), "check")
    assert r.returncode == EX_CONFIG, r.stdout + r.stderr
    assert f"{srv.conf}:{n}: {message}" in r.stderr, r.stderr


def test_admin_takes_any_user_name_the_users_file_does(conf_server):
    """`postern user add Hoge` works, so `admin Hoge` must too."""
    srv = conf_server
    write_conf(srv, ["admin Hoge_2.x"])
    r = run("config", "-c", str(srv.conf), "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "admin Hoge_2.x\n" in r.stdout, r.stdout


def test_mynetworks_of_mapped_ipv4_mean_ipv4(conf_server):
    """Peers come as IPv4: ::ffff:10.0.0.0/104 is taken as 10.0.0.0/8,
    which matches them, not kept as a prefix that never would."""
    srv = conf_server
    write_conf(srv, ["mynetworks ::ffff:10.0.0.0/104 192.0.2.0/24"])
    r = run("config", "-c", str(srv.conf), "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 10.0.0.0/8 192.0.2.0/24\n" in r.stdout, r.stdout


@pytest.mark.parametrize("line", [
    "relay via [2001:db8::1]:2525",
    "relay via [192.0.2.1]",
    "relay for x.test via [192.0.2.1]:submission",
    "submit via [2001:db8::1]:465 tls implicit",
])
def test_check_accepts_an_address_in_brackets(conf_server, line):
    srv = conf_server
    write_conf(srv, [line])
    r = run("config", "-c", str(srv.conf), "check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_missing_file(tmp_path):
    r = run("config", "-c", str(tmp_path / "nonexistent.conf"), "check")
    assert r.returncode == EX_CONFIG
    assert "nonexistent.conf" in r.stderr


def port_is_closed(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_refuses_bad_config(conf_server):
    srv = conf_server
    n = write_conf(srv, ["listen smtpx on 127.0.0.1 port 2525"])
    r = run("serve", "-c", str(srv.conf))
    assert r.returncode != 0
    assert f"{srv.conf}:{n}: listen: unknown role 'smtpx'" in r.stderr
    assert "not starting" in r.stderr
    assert port_is_closed(srv.smtp_port)
    assert port_is_closed(srv.sub_port)
    assert not srv.spool.exists()


def test_serve_bad_config_exit_status(conf_server):
    srv = conf_server
    write_conf(srv, ["frobnicate yes"])
    r = run("serve", "-c", str(srv.conf))
    assert r.returncode == EX_CONFIG
    assert no_sanitizer_report(r.stderr), r.stderr


def test_serve_port_in_use(conf_server):
    srv = conf_server
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", srv.smtp_port))
        busy.listen(1)
        try:
            r = run("serve", "-c", str(srv.conf))
        except subprocess.TimeoutExpired:
            pytest.fail("postern kept running with its port in use")
    assert r.returncode != 0
    assert (f"listen smtp 127.0.0.1:{srv.smtp_port}: Address already in use"
            in r.stderr), r.stderr
    assert "cannot bind" in r.stderr
    assert no_sanitizer_report(r.stderr), r.stderr
    # the other listener was not left open either
    assert port_is_closed(srv.sub_port)


def test_duplicate_listen_port(conf_server):
    srv = conf_server
    n = write_conf(srv, [f"listen submission on 127.0.0.1 port "
                         f"{srv.smtp_port}"])
    r = run("config", "-c", str(srv.conf), "check")
    assert r.returncode == EX_CONFIG
    assert f"{srv.conf}:{n}: listen: port {srv.smtp_port} is already used" \
        in r.stderr, r.stderr


def test_no_listen_directive(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("hostname mail.example.test\ndomains example.test\n"
                    f"spool {tmp_path}/spool\n")
    r = run("config", "-c", str(conf), "check")
    assert r.returncode == EX_CONFIG
    assert f"{conf}:1: no 'listen' directive" in r.stderr
