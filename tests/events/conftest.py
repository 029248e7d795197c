"""Fixtures of the event tests: a REAL RabbitMQ on 127.0.0.1 and a real
consumer on it.

``tools/dev-rabbitmq`` starts Debian's rabbitmq-server once per test
session in a scratch directory (installing the package when it is missing
and the tests run as root) and stops it, and its epmd, at the end. A broker
that cannot start fails every test that needs it, with the tool's output.

``bus`` is an oslo.messaging notification listener, in the test process, on
a topic of the test's own (so tests never see each other's events); the
configuration the code under test gets sends there.
"""

import json
import os
import queue
import sys
import time
import uuid
import warnings

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if TOP not in sys.path:
    sys.path.insert(0, TOP)

from tests.dev_servers import run_tool  # noqa: E402

DEV_RABBITMQ = os.path.join(TOP, "tools", "dev-rabbitmq")
# A hang guard for an event that should come: never a measure of speed.
EVENT_WAIT = 120


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory):
    """env.json of the running broker (transport_url, port, user, ...)."""
    directory = str(tmp_path_factory.mktemp("dev-rabbitmq"))
    status, output = run_tool(DEV_RABBITMQ, "start", "--dir", directory)
    if status != 0:
        run_tool(DEV_RABBITMQ, "stop", "--dir", directory, timeout=120)
        pytest.fail("cannot start RabbitMQ: dev-rabbitmq start --dir %s exited"
                    " %s:\n%s" % (directory, status, output), pytrace=False)
    sys.stderr.write("\n[rabbitmq] %s\n" % output.strip().splitlines()[-1])
    with open(os.path.join(directory, "env.json")) as handle:
        env = json.load(handle)
    env["dir"] = directory
    yield env
    status, output = run_tool(DEV_RABBITMQ, "stop", "--dir", directory,
                              timeout=120)
    if status != 0:
        sys.stderr.write("dev-rabbitmq stop failed: %s\n" % output)


class Bus:
    """A notification listener on one topic; every message it got."""

    def __init__(self, transport_url, topic):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import oslo_messaging
        from oslo_config import cfg
        self.topic = topic
        self.url = transport_url
        conf = cfg.ConfigOpts()
        conf([], project="sealedmeta-tests")
        self.transport = oslo_messaging.get_notification_transport(
            conf, url=transport_url)
        self.messages = queue.Queue()
        self.seen = []
        bus = self

        class Endpoint:
            def _any(self, ctxt, publisher_id, event_type, payload, metadata):
                bus.messages.put({"publisher_id": publisher_id,
                                  "event_type": event_type,
                                  "payload": payload, "ctxt": ctxt})

            audit = debug = info = warn = error = critical = sample = _any

        # Its queues (topic.priority) exist once start() returns: what is
        # sent after that is kept for it.
        self.listener = oslo_messaging.get_notification_listener(
            self.transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
            executor="threading")
        self.listener.start()

    def wait(self, event_type, count=1, timeout=EVENT_WAIT):
        """The first *count* messages of *event_type* (waiting for them);
        fails when they do not come."""
        found = [m for m in self.seen if m["event_type"] == event_type]
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            try:
                message = self.messages.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(
                    "%d %s event(s) expected on topic %s, got %d; all: %s"
                    % (count, event_type, self.topic, len(found),
                       [m["event_type"] for m in self.seen])) from None
            self.seen.append(message)
            if message["event_type"] == event_type:
                found.append(message)
        return found[:count]

    def drain(self, settle=1.0):
        """Every message received so far, after *settle* quiet seconds (for
        checks that something was NOT sent: a margin, not a verdict of
        speed -- the sending command has already returned)."""
        while True:
            try:
                self.seen.append(self.messages.get(timeout=settle))
            except queue.Empty:
                return list(self.seen)

    def close(self):
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()


@pytest.fixture
def bus(rabbitmq):
    """A consumer of a topic of the test's own on the real broker."""
    listener = Bus(rabbitmq["transport_url"], "t-%s" % uuid.uuid4().hex[:12])
    yield listener
    listener.close()
