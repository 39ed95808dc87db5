"""The lab's client: run inside a network namespace with `ip netns exec
NS python3 labclient.py 'JSON'` and print one JSON result.  It plays the
users of the OP25B story with Python's own smtplib and poplib (clients
nobody here wrote).  Every socket has a timeout.

  {"op": "connect", "host", "port", "timeout", "source"}
      -> {"result": "banner"|"timeout"|"refused"|"unreachable"|"error",
          "text"}
  {"op": "wait", "host", "port", "timeout"}   until a 220 / +OK greeting
  {"op": "smtp", "host", "port", "source", "tls": "starttls"|"implicit"|null,
   "user", "password", "from", "to": [...], "data": str|null}
      -> {"ehlo", "auth", "mail", "rcpt": [...], "data"} as [code, text]
  {"op": "pop3", "host", "port", "source", "stls", "user", "password"}
      -> {"login": [ok, text], "stat"}
"""
import json
import poplib
import smtplib
import socket
import ssl
import sys
import time


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def op_connect(a):
    t = a.get("timeout", 3)
    src = (a["source"], 0) if a.get("source") else None
    try:
        s = socket.create_connection((a["host"], a["port"]), timeout=t,
                                     source_address=src)
    except socket.timeout:
        return {"result": "timeout", "text": ""}
    except ConnectionRefusedError:
        return {"result": "refused", "text": ""}
    except OSError as e:
        return {"result": "unreachable" if e.errno in (101, 113, 13, 1)
                else "error", "text": str(e)}
    try:
        s.settimeout(t)
        data = s.recv(512).decode("utf-8", "replace")
        return {"result": "banner" if data[:3] in ("220", "+OK") else
                "error", "text": data.strip()}
    except OSError as e:
        return {"result": "error", "text": str(e)}
    finally:
        s.close()


def op_wait(a):
    deadline = time.monotonic() + a.get("timeout", 20)
    last = None
    while time.monotonic() < deadline:
        last = op_connect({"host": a["host"], "port": a["port"],
                           "timeout": 1})
        if last["result"] == "banner":
            return last
        time.sleep(0.1)
    return last


def reply(r):
    code, text = r
    return [code, text.decode("utf-8", "replace") if isinstance(text, bytes)
            else str(text)]


def op_smtp(a):
    out = {"rcpt": []}
    src = (a["source"], 0) if a.get("source") else None
    t = a.get("timeout", 10)
    if a.get("tls") == "implicit":
        s = smtplib.SMTP_SSL(a["host"], a["port"], timeout=t,
                             source_address=src, context=tls_context())
    else:
        s = smtplib.SMTP(a["host"], a["port"], timeout=t, source_address=src)
    try:
        out["ehlo"] = reply(s.ehlo("client.lab.test"))
        if a.get("tls") == "starttls":
            out["starttls"] = reply(s.starttls(context=tls_context()))
            s.ehlo("client.lab.test")
        if a.get("user"):
            try:
                out["auth"] = reply(s.login(a["user"], a["password"]))
            except smtplib.SMTPAuthenticationError as e:
                out["auth"] = [e.smtp_code, e.smtp_error.decode()]
                return out
        out["mail"] = reply(s.mail(a["from"]))
        if out["mail"][0] != 250:
            return out
        for rc in a.get("to", []):
            out["rcpt"].append(reply(s.rcpt(rc)))
        if a.get("data") is not None and any(r[0] in (250, 251)
                                             for r in out["rcpt"]):
            out["data"] = reply(s.data(a["data"].encode()))
        else:
            s.rset()
        s.quit()
    except smtplib.SMTPServerDisconnected as e:
        out["disconnected"] = str(e)
    return out


class SourcePOP3(poplib.POP3):
    """poplib from a chosen source address (the travelling user's)."""

    def __init__(self, host, port, timeout, source):
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=self._source)


def op_pop3(a):
    src = (a["source"], 0) if a.get("source") else None
    p = SourcePOP3(a["host"], a["port"], a.get("timeout", 10), src)
    out = {}
    try:
        if a.get("stls"):
            p.stls(context=tls_context())
        try:
            p.user(a["user"])
            r = p.pass_(a["password"])
            out["login"] = [True, r.decode()]
            out["stat"] = list(p.stat())
        except poplib.error_proto as e:
            out["login"] = [False, str(e)]
        p.quit()
    finally:
        p.close()
    return out


def main():
    a = json.loads(sys.argv[1])
    fn = {"connect": op_connect, "wait": op_wait, "smtp": op_smtp,
          "pop3": op_pop3}[a["op"]]
    try:
        res = fn(a)
    except Exception as e:      # report, do not hide: the test asserts
        res = {"exception": f"{type(e).__name__}: {e}"}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
