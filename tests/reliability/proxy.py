"""A small fault-injecting HTTP proxy for tests, on 127.0.0.1 only.

Put it in front of a real server (``[barbican] barbican_endpoint =
proxy.url``) and it forwards every request, or -- when a :class:`Rule`
matches -- answers with an error status, answers late, or drops the
connection. Every request is logged (:attr:`FaultProxy.log`) so a test
counts the attempts a client really made.

Bounded on purpose: it listens on 127.0.0.1 only and forwards only to a
loopback upstream; at most ``max_connections`` at once (more are closed at
once); request heads up to 64 KiB, bodies up to ``max_body``, responses up
to ``max_response``; every socket has a timeout. One request per client
connection: the upstream request is sent with ``Connection: close`` and the
answer relayed with ``Connection: close`` (HTTP clients reconnect).
"""

import dataclasses
import re
import socket
import threading
import time
import urllib.parse

MAX_HEAD = 64 * 1024


@dataclasses.dataclass
class Rule:
    """What to do with requests whose method and path match.

    action: ``"fail"`` (answer *status* at once, nothing is forwarded),
    ``"delay"`` (forward, then hold the answer *delay* seconds: a slow
    server), ``"drop"`` (close the connection without an answer, nothing
    forwarded), ``"lose"`` (forward -- the server acts -- then close without
    relaying its answer) or ``"pass"``. *times*: how many matching requests the rule
    applies to (None: all).
    """

    action: str
    method: str = None
    path: str = None          # regular expression, searched in the path
    status: int = 500
    delay: float = 0.0
    times: int = None
    used: int = 0

    def matches(self, method, path):
        if self.times is not None and self.used >= self.times:
            return False
        if self.method and self.method != method:
            return False
        return not self.path or re.search(self.path, path) is not None


@dataclasses.dataclass
class Entry:
    at: float                 # time.monotonic() when the request was read
    method: str
    path: str
    action: str
    status: int = None        # the status the client was sent (None: dropped)


class FaultProxy:

    def __init__(self, upstream_url, max_connections=32, max_body=4 * 1024 * 1024,
                 max_response=16 * 1024 * 1024, timeout=60.0):
        parts = urllib.parse.urlsplit(upstream_url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the proxy only forwards to http://127.0.0.1")
        self.upstream = (parts.hostname, parts.port or 80)
        self.max_body = max_body
        self.max_response = max_response
        self.timeout = timeout
        self.rules = []
        self.log = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._closed = False
        self._threads = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._sock.getsockname()[1]

    # -- rules and counts ---------------------------------------------------

    def add(self, action, method=None, path=None, **kwargs):
        rule = Rule(action, method, path, **kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self):
        with self._lock:
            self.rules = []

    def entries(self, method=None, path=None, action=None, since=None):
        with self._lock:
            log = list(self.log)
        return [e for e in log
                if (method is None or e.method == method)
                and (path is None or re.search(path, e.path))
                and (action is None or e.action == action)
                and (since is None or e.at >= since)]

    def count(self, **kwargs):
        return len(self.entries(**kwargs))

    # -- serving --------------------------------------------------------------

    def close(self):
        self._closed = True
        self._acceptor.join(5)
        self._sock.close()
        for thread in list(self._threads):
            thread.join(self.timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                client.close()
                continue
            thread = threading.Thread(target=self._serve, args=(client,),
                                      daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, client):
        try:
            client.settimeout(self.timeout)
            request = self._read_request(client)
            if request is None:
                return
            method, path, head, body = request
            with self._lock:
                rule = next((r for r in self.rules if r.matches(method, path)), None)
                if rule is not None:
                    rule.used += 1
                entry = Entry(time.monotonic(), method, path,
                              rule.action if rule else "pass")
                self.log.append(entry)
            action = rule.action if rule else "pass"
            if action == "drop":
                return
            if action == "fail":
                payload = b'{"code": %d, "title": "injected by the test proxy"}' % (
                    rule.status)
                client.sendall(b"HTTP/1.1 %d Injected\r\nContent-Type:"
                               b" application/json\r\nContent-Length: %d\r\n"
                               b"Connection: close\r\n\r\n" % (rule.status,
                                                               len(payload))
                               + payload)
                entry.status = rule.status
                return
            answer = self._forward(head, body)
            if action == "lose":
                entry.status = None
                return
            if action == "delay":
                time.sleep(rule.delay)
            entry.status = int(answer.split(b" ", 2)[1])
            try:
                client.sendall(answer)
            except OSError:
                entry.status = None   # the client gave up waiting
        except (OSError, ValueError, IndexError):
            pass
        finally:
            try:
                client.close()
            finally:
                self._slots.release()

    def _read_request(self, client):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                return None
            data += chunk
            if len(data) > MAX_HEAD + self.max_body:
                return None
        head, _, rest = data.partition(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            return None
        lines = head.split(b"\r\n")
        method, target, _ = lines[0].decode("latin-1").split(" ", 2)
        headers = []
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"transfer-encoding":
                raise ValueError("chunked requests are not supported")
            if key in (b"connection", b"keep-alive"):
                continue
            headers.append(line)
        if length > self.max_body:
            return None
        body = rest
        while len(body) < length:
            chunk = client.recv(min(65536, length - len(body)))
            if not chunk:
                return None
            body += chunk
        upstream_head = b"\r\n".join([lines[0]] + headers + [b"Connection: close"])
        return method, urllib.parse.urlsplit(target).path, upstream_head, body[:length]

    def _forward(self, head, body):
        with socket.create_connection(self.upstream, timeout=self.timeout) as up:
            up.sendall(head + b"\r\n\r\n" + body)
            chunks, size = [], 0
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_response:
                    raise ValueError("upstream answer too large")
        answer = b"".join(chunks)
        if not answer.startswith(b"HTTP/"):
            raise ValueError("not an HTTP answer")
        # the client connection is closed after this answer: say so
        head, sep, rest = answer.partition(b"\r\n\r\n")
        kept = [line for line in head.split(b"\r\n")
                if line.split(b":", 1)[0].strip().lower() not in (b"connection",
                                                                  b"keep-alive")]
        return b"\r\n".join(kept + [b"Connection: close"]) + sep + rest
