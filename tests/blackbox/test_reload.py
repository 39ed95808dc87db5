"""SIGHUP and worker deaths: the master keeps the service up."""
import os
import signal

from conftest import proc_state, wait_for


def test_sighup_reload(postern):
    srv = postern(extra=["max-recipients 2"])
    old_workers = srv.workers()
    # a session open across the reload is finished by its old worker
    old = srv.connect()
    old.ehlo()
    srv.conf.write_text(srv.conf.read_text()
                        .replace("max-recipients 2", "max-recipients 3"))
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log(r"master: reloaded; 2 workers started")
    # an old worker that has not yet seen its SIGUSR1 could still accept
    # (and serve with the old settings): wait until both have
    assert wait_for(lambda: srv.log().count(": draining, ") >= 2, 10), \
        srv.log()
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        codes = [c.cmd(f"RCPT TO:<u{i}@example.test>")[0] for i in range(4)]
        assert codes == [250, 250, 250, 452]
    assert old.cmd("NOOP")[0] == 250
    assert old.cmd("QUIT")[0] == 221
    old.close()
    # the old generation exits once its sessions are over
    for pid in old_workers:
        assert wait_for(lambda: proc_state(pid) in (None, "Z"), 10), pid
    assert len(srv.workers()) == 2


def test_sighup_with_bad_config_keeps_running(postern):
    srv = postern(extra=["max-recipients 2"])
    workers = srv.workers()
    n = len(srv.conf.read_text().splitlines()) + 1
    srv.conf.write_text(srv.conf.read_text().replace("max-recipients 2",
                                                     "max-recipients 3")
                        + "frobnicate yes\n")
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log(r"has errors; keeping the running configuration")
    assert f"{srv.conf}:{n}: unknown directive 'frobnicate'" in srv.log()
    assert srv.workers() == workers
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        codes = [c.cmd(f"RCPT TO:<u{i}@example.test>")[0] for i in range(3)]
        assert codes == [250, 250, 452]


def test_killed_worker_is_restarted(postern):
    srv = postern()
    workers = srv.workers()
    assert len(workers) == 2
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    srv.wait_log(rf"master: worker \d+ \(pid {victim}\) killed by signal 9; "
                 r"restarting it")
    assert wait_for(lambda: len(srv.workers()) == 2 and
                    victim not in srv.workers(), 10), srv.workers()
    for _ in range(4):
        with srv.connect() as c:
            c.ehlo()
            assert c.cmd("QUIT")[0] == 221
