"""Driving the cloud of ``tools/dev-cloud`` only through its real clients:
``openstack`` (python-openstackclient, with ``DIR/clouds.yaml``) and the
``sealedmeta`` command line installed in Cinder's environment. Waiting for
a status polls the APIs through one keystoneauth session per cloud user
(milliseconds, where each ``openstack`` call costs seconds: its start and
a password check); what a test asserts on comes from ``openstack``."""

import json
import os
import subprocess
import time
import uuid

from tests.dev_servers import TOP, run_tool

# Hang guards only, generous: a machine three times slower still ends well
# inside them. No test's verdict depends on how long anything took.
CLI_TIMEOUT = 300
SETTLE_TIMEOUT = 900
# A restart of a cloud's part by its tool (it waits for the part itself).
TOOL_TIMEOUT = 1800
POLL = 1.0

# Statuses a volume or backup leaves on its own; anything else is settled.
MOVING = {"creating", "downloading", "backing-up", "restoring",
          "restoring-backup", "deleting", "attaching", "detaching",
          "extending", "uploading", "retyping", "maintenance"}


class CommandFailed(AssertionError):
    pass


class _Api:
    """The cloud's REST APIs as one user of its clouds.yaml, through a
    keystoneauth session (one token, renewed by keystoneauth)."""

    # kind: (service type, path of one, key of the body or None)
    SHOW = {"volume": ("volumev3", "/volumes/%s", "volume"),
            "volume backup": ("volumev3", "/backups/%s", "backup"),
            "image": ("image", "/v2/images/%s", None)}

    def __init__(self, creds):
        from keystoneauth1 import session
        from keystoneauth1.identity import v3
        self.session = session.Session(auth=v3.Password(
            auth_url=creds["auth_url"], username=creds["username"],
            password=creds["password"], project_name=creds["project_name"],
            user_domain_name=creds["user_domain_name"],
            project_domain_name=creds["project_domain_name"]))

    def request(self, method, service_type, path, **kwargs):
        """*method* *path* of the public endpoint of *service_type*; the
        response, whatever its status. A new connection each time: a
        service restarted by a test closes kept-alive sockets."""
        headers = {"Connection": "close"}
        headers.update(kwargs.pop("headers", {}))
        return self.session.request(
            path, method, headers=headers, raise_exc=False, connect_retries=5,
            endpoint_filter={"service_type": service_type, "interface": "public"},
            timeout=CLI_TIMEOUT, **kwargs)

    def show(self, kind, ident):
        """The API's record of *ident* (*kind*: a key of SHOW), or None
        when it answers 404."""
        service, path, key = self.SHOW[kind]
        resp = self.request("GET", service, path % ident)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise CommandFailed("GET %s %s: %d %s" % (
                service, path % ident, resp.status_code, resp.text[:2000]))
        body = resp.json()
        return body[key] if key else body


class Cloud:
    """One running dev-cloud: its env.json and its clients."""

    def __init__(self, directory, start_output=""):
        self.dir = directory
        self.start_output = start_output
        with open(os.path.join(directory, "env.json")) as handle:
            self.env = json.load(handle)
        self._apis = {}

    def api(self, cloud):
        """The REST APIs as *cloud*'s user (a name of clouds.yaml)."""
        if cloud not in self._apis:
            self._apis[cloud] = _Api(self.env["clouds"][cloud])
        return self._apis[cloud]

    # -- the clients ---------------------------------------------------------

    def _run(self, argv, settings=None):
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=self.env["clouds_yaml"])
        for name in ("OS_CLOUD", "OS_AUTH_URL", "OS_TOKEN", "OS_PASSWORD"):
            env.pop(name, None)
        env.update(settings or {})
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, env=env,
                              timeout=CLI_TIMEOUT)
        return proc

    def openstack(self, cloud, *args, parse=True):
        """``openstack --os-cloud CLOUD ARGS -f json``, parsed; a failed
        command raises with its output."""
        argv = [self.env["bin"]["openstack"], "--os-cloud", cloud] + list(args)
        if parse:
            argv += ["-f", "json"]
        proc = self._run(argv)
        if proc.returncode:
            raise CommandFailed("openstack --os-cloud %s %s failed (exit %d):\n%s%s" % (
                cloud, " ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return json.loads(proc.stdout) if parse else proc.stdout

    def cinder(self, cloud, *args):
        """Cinder's own client, ``cinder ARGS``, as *cloud*'s user (it
        reads no clouds.yaml: the OS_* variables); returns its output, a
        failure raises with it."""
        creds = self.env["clouds"][cloud]
        settings = {"OS_AUTH_URL": creds["auth_url"], "OS_USERNAME": creds["username"],
                    "OS_PASSWORD": creds["password"], "OS_PROJECT_NAME": creds["project_name"],
                    "OS_USER_DOMAIN_NAME": creds["user_domain_name"],
                    "OS_PROJECT_DOMAIN_NAME": creds["project_domain_name"]}
        proc = self._run([self.env["bin"]["cinder"]] + list(args), settings)
        if proc.returncode:
            raise CommandFailed("cinder %s failed (exit %d):\n%s%s" % (
                " ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def sealedmeta(self, *args, config="cinder"):
        """The ``sealedmeta`` command line of Cinder's environment, with
        cinder.conf (``config="cinder"``) or the admin's sealedmeta.conf
        (``"sealedmeta"``); returns the completed process."""
        conf = self.env["confs"][config]
        return self._run([self.env["bin"]["sealedmeta"], "--config-file", conf] + list(args))

    def tool(self, name, *args):
        """``tools/NAME ARGS`` (``dev-cloud``, ``dev-openstack``): its
        output; a failure raises with it."""
        status, output = run_tool(os.path.join(TOP, "tools", name), *args,
                                  timeout=TOOL_TIMEOUT)
        if status:
            raise CommandFailed("tools/%s %s failed (exit %s):\n%s" % (
                name, " ".join(args), status, output))
        return output

    # -- waiting ---------------------------------------------------------------

    def settle(self, kind, ident, cloud="member"):
        """``openstack KIND show IDENT`` once its status stops moving
        (``kind``: "volume" or "volume backup"), polled through the API."""
        def settled():
            shown = self.api(cloud).show(kind, ident)
            if shown is None:
                raise CommandFailed("%s %s: the API answers 404" % (kind, ident))
            return shown["status"] not in MOVING
        self.wait_for("%s %s settled" % (kind, ident), settled)
        return self.openstack(cloud, *kind.split(), "show", ident)

    def wait_for(self, what, probe):
        """Poll *probe* until it returns a true value, which is returned;
        the deadline only guards a hang."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError("%s: not so after the hang guard of %d s"
                                     % (what, SETTLE_TIMEOUT))
            time.sleep(POLL)

    # -- facts of the cloud -----------------------------------------------------

    def project_id(self, cloud):
        return self.env["clouds"][cloud]["project_id"]

    @staticmethod
    def name(prefix):
        return "%s-%s" % (prefix, uuid.uuid4().hex[:8])
