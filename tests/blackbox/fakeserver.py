"""The listening part of the tests' fake TCP peers (a trickling SMTP
server, misbehaving smarthosts, a slow Redis, a freezing relay): what
each subclass adds is only what it does with a connection.  Standard
library only, so that conftest.py and the test files can both import
it."""
import socket
import threading
import time

ACCEPT_POLL = 0.2		# seconds between looks at `stopping`


class FakeServer:
    """Listens on addr:port (IPv6 if addr has a colon; port 0: the
    kernel picks, and self.port says which) with SO_RCVBUF rcvbuf if
    given, which accepted sockets inherit.  A daemon thread accepts
    until close() and calls accepted(conn) for each connection, which
    by default runs handle(conn) on a thread of its own (spawn()).
    Handlers should watch self.stopping.  close() stops accepting,
    waits up to `wait` seconds in all for the threads spawn() began,
    then closes the listener and every accepted socket (self.conns)."""

    def __init__(self, addr="127.0.0.1", port=0, backlog=16, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET6 if ":" in addr
                                  else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((addr, port))
        self.sock.listen(backlog)
        self.sock.settimeout(ACCEPT_POLL)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns = []
        self.threads = []
        self.spawn(self._accept_loop)

    def spawn(self, target, *args):
        """target(*args) on a daemon thread that close() waits for."""
        t = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(t)
        t.start()

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            self.accepted(conn)

    def accepted(self, conn):
        """On the accepting thread: no other connection is taken until
        it returns."""
        self.spawn(self.handle, conn)

    def handle(self, conn):
        raise NotImplementedError

    def close(self, wait=5):
        self.stopping = True
        deadline = time.monotonic() + wait
        for t in self.threads:		# the accepting may add to it meanwhile
            t.join(max(0.0, deadline - time.monotonic()))
        for s in [self.sock] + self.conns:
            s.close()
