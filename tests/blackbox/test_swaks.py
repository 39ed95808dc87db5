"""Independent clients: swaks and curl's smtp:// put mail in the spool
exactly as they sent it."""
import re
import shutil
import subprocess

import pytest

from conftest import queued_id

CLIENT_TIMEOUT = 30


def need(binary):
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (Debian package {binary})")
    return path


def run(argv):
    return subprocess.run(argv, capture_output=True, timeout=CLIENT_TIMEOUT)


@pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipeline"])
def test_swaks(server, pipeline):
    swaks = need("swaks")
    body = "first line\n.leading dot\n..two dots\nlast line"
    argv = [swaks, "--server", f"127.0.0.1:{server.smtp_port}",
            "--helo", "swaks.client.example",
            "--from", "sender@client.example",
            "--to", "hoge@example.test,fuga@example.test",
            "--header", "Subject: swaks test",
            "--body", body, "--timeout", "20"]
    if pipeline:
        argv.append("--pipeline")
    r = run(argv)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")
    qid = queued_id(out)
    env, content, received = server.read_queued(qid)
    assert env["from"] == "sender@client.example"
    assert env["rcpt"] == ["hoge@example.test", "fuga@example.test"]
    assert env["helo"] == "swaks.client.example"
    # swaks writes the headers itself; our copy must be what it sent
    # (its transcript lines " -> ..." after DATA, CRLF line ends)
    sent = re.findall(r"^ -> (.*?)\r?$", out.split("354 ", 1)[1], re.M)
    assert "." in sent, out
    sent = sent[:sent.index(".")]
    sent_bytes = "".join(line + "\r\n" for line in sent).encode()
    # undo the dot-stuffing swaks did on the wire
    unstuffed = re.sub(rb"(?m)^\.", b"", sent_bytes)
    assert content == unstuffed
    assert b"Subject: swaks test\r\n" in content
    assert b"\r\n.leading dot\r\n..two dots\r\nlast line\r\n" in content


def test_curl(server, tmp_path):
    curl = need("curl")
    msg = (b"From: sender@client.example\r\nTo: hoge@example.test\r\n"
           b"Subject: curl test\r\n\r\nbody line\r\n.leading dot\r\n"
           b"\r\nlast line\r\n")
    f = tmp_path / "msg.eml"
    f.write_bytes(msg)
    r = run([curl, "-sS", "-v", "--max-time", "20",
             f"smtp://127.0.0.1:{server.smtp_port}/curl.client.example",
             "--mail-from", "sender@client.example",
             "--mail-rcpt", "hoge@example.test",
             "--upload-file", str(f)])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    qid = queued_id(err)
    env, content, _ = server.read_queued(qid)
    assert content == msg
    assert env["rcpt"] == ["hoge@example.test"]
    assert env["from"] == "sender@client.example"
    assert env["helo"] == "curl.client.example"


def test_curl_refused_recipient(server, tmp_path):
    curl = need("curl")
    f = tmp_path / "msg.eml"
    f.write_bytes(b"Subject: relay\r\n\r\nx\r\n")
    r = run([curl, "-sS", "--max-time", "20",
             f"smtp://127.0.0.1:{server.smtp_port}/curl.client.example",
             "--mail-from", "sender@client.example",
             "--mail-rcpt", "someone@remote.example",
             "--upload-file", str(f)])
    assert r.returncode != 0
    assert b"554" in r.stderr
    assert server.queue_ids() == []
