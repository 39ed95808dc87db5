"""Relay policy: outsiders (127.0.0.1 is not in mynetworks) may only
send to the local domain, and no address trick turns a local-looking
recipient into a relayed one.  127.0.0.2 is in mynetworks."""
import pytest

from conftest import module_server

USERS = [
    "hoge:!:::hoge@example.test:",
    "fuga:!:::fuga-alias@example.test,Other.Name@example.test:",
]

TRICKS = [
    "user%remote.example@example.test",
    "remote.example!user@example.test",
    "@example.test:user@remote.example",
    "@example.test,@example.test:user@remote.example",
    '"user@remote.example"@example.test',
    '"user%remote.example"@example.test',
    "user@remote.example.",
    "user@[127.0.0.1]",
    "user@[IPv6:::1]",
    "user@example.test.",
    "user@sub.example.test",
    "user@example.test.remote.example",
    "user@remote.example@example.test",
    "<user@remote.example>",
]


@pytest.fixture(scope="module")
def open_srv():
    """No users file: every local part of example.test is accepted."""
    yield from module_server()


@pytest.fixture(scope="module")
def users_srv():
    yield from module_server(users=USERS)


def rcpt(srv, addr, source=None, port=None):
    """(code, text) for RCPT TO:<addr> in a fresh transaction."""
    with srv.connect(port=port, source=source) as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<sender@client.example>")
        assert code == 250, text
        return c.cmd(f"RCPT TO:<{addr}>")


@pytest.mark.parametrize("addr", ["user@example.test", "USER@EXAMPLE.TEST",
                                  "user@Example.Test", "first.last@example.test",
                                  '"quoted"@example.test'])
def test_local_recipient(open_srv, addr):
    code, text = rcpt(open_srv, addr)
    assert (code, text[:9]) == (250, "250 2.1.5"), text


@pytest.mark.parametrize("addr", ["user@remote.example",
                                  "postmaster@remote.example"])
def test_remote_recipient_denied(open_srv, addr):
    code, text = rcpt(open_srv, addr)
    assert text.startswith("554 5.7.1 "), text


@pytest.mark.parametrize("addr", TRICKS)
def test_address_tricks(open_srv, addr):
    code, text = rcpt(open_srv, addr)
    assert code >= 500, f"RCPT TO:<{addr}> got {text!r}"


@pytest.mark.parametrize("addr", TRICKS)
def test_address_tricks_with_users(users_srv, addr):
    code, text = rcpt(users_srv, addr)
    assert code >= 500, f"RCPT TO:<{addr}> got {text!r}"


def test_source_route_is_dropped(open_srv):
    """'@remote.example:user@example.test' is user@example.test
    (RFC 5321 section 4.1.1.3); it is queued without the route."""
    with open_srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<@remote.example:user@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: route\r\n\r\nx\r\n.\r\n")
        code, text = c.reply()
        assert code == 250
    env = open_srv.read_queued(text.split()[-1])[0]
    assert env["rcpt"] == ["user@example.test"]


def test_mynetworks_may_relay(open_srv):
    code, text = rcpt(open_srv, "user@remote.example", source="127.0.0.2")
    assert code == 250, text
    with open_srv.connect(source="127.0.0.2") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<user@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<user@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: relayed\r\n\r\nx\r\n.\r\n")
        code, text = c.reply()
        assert code == 250, text
    env = open_srv.read_queued(text.split()[-1])[0]
    assert env["client"].split()[0] == "127.0.0.2"
    assert env["rcpt"] == ["user@remote.example", "user@example.test"]


def test_neighbour_not_in_mynetworks(open_srv):
    # 127.0.0.3 is next to 127.0.0.2/32 but not in it
    code, text = rcpt(open_srv, "user@remote.example", source="127.0.0.3")
    assert text.startswith("554 5.7.1 "), text


def test_unknown_user(users_srv):
    code, text = rcpt(users_srv, "nobody@example.test")
    assert text.startswith("550 5.1.1 "), text
    # the same from a trusted client: local names are still checked
    code, text = rcpt(users_srv, "nobody@example.test", source="127.0.0.2")
    assert text.startswith("550 5.1.1 "), text


@pytest.mark.parametrize("addr", ["hoge@example.test", "HOGE@example.test",
                                  "fuga@example.test",
                                  "fuga-alias@example.test",
                                  "other.name@example.test"])
def test_known_user(users_srv, addr):
    code, text = rcpt(users_srv, addr)
    assert code == 250, text


@pytest.mark.parametrize("addr", ["postmaster", "Postmaster", "POSTMASTER",
                                  "postmaster@example.test",
                                  "PostMaster@example.test"])
def test_postmaster_always_accepted(users_srv, addr):
    code, text = rcpt(users_srv, addr)
    assert code == 250, text


def test_postmaster_without_domain_is_queued(users_srv):
    with users_srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<>")[0] == 250
        assert c.cmd("RCPT TO:<postmaster>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: to postmaster\r\n\r\nx\r\n.\r\n")
        code, text = c.reply()
        assert code == 250, text
    env = users_srv.read_queued(text.split()[-1])[0]
    assert env["rcpt"] == ["postmaster"]
    assert env["from"] == ""


@pytest.mark.parametrize("source", [None, "127.0.0.2"])
def test_submission_requires_auth(open_srv, source):
    with open_srv.connect(port=open_srv.sub_port, source=source) as c:
        assert c.greeting[0] == 220
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<sender@example.test>")
        assert text == "530 5.7.0 Authentication required", text
        # and no way around it
        assert c.cmd("RCPT TO:<hoge@example.test>")[0] == 503
        assert c.cmd("DATA")[0] == 503
    open_srv.wait_log(r'failed-command command="MAIL FROM:<sender@example\.'
                      r'test>" result="530 5\.7\.0 Authentication required"')
