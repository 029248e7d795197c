"""WSGI entry point used by ``tools/dev-openstack`` under gunicorn.

It runs inside the *server* virtualenv (never imported by the sealedmeta
library or its tests).  Which application it serves is chosen by
environment variables set by ``tools/dev-openstack``:

``SEALEDMETA_DEV_APP``
    ``barbican`` or ``keystone``.
``SEALEDMETA_DEV_PASTE``
    (barbican) the paste ini to load.
``SEALEDMETA_DEV_ACCESS_LOG``
    file that receives one line per request (see ``AccessLog``).

Barbican is configured through ``$HOME/.barbican/barbican.conf`` (the
launcher points ``HOME`` at the scratch directory); Keystone through
``OS_KEYSTONE_CONFIG_DIR``.
"""

import os
import sys
import time

_MONTHS = ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep',
           'Oct', 'Nov', 'Dec')


class AccessLog(object):
    """Write one access-log line per request, *before* the response leaves.

    gunicorn's own access log is written after the response has been sent,
    so a client can observe the response before the line exists.  Here the
    line is written (one ``os.write`` on an ``O_APPEND`` descriptor) when the
    application calls ``start_response``, which happens before any byte of
    the response is sent: once a client has a response, its line is in the
    file.  Format (Apache "combined"; the size is the Content-Length header
    or ``-``)::

        127.0.0.1 - - [24/Nov/2025:23:01:02 +0000] "GET /v1/secrets?limit=1 \
        HTTP/1.1" 200 1234 "-" "python-requests/2.32"      (one line)
    """

    def __init__(self, app, path):
        self.app = app
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @staticmethod
    def _now():
        t = time.gmtime()
        return '%02d/%s/%04d:%02d:%02d:%02d +0000' % (
            t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour,
            t.tm_min, t.tm_sec)

    def _write(self, environ, status, headers):
        size = '-'
        for name, value in headers or ():
            if name.lower() == 'content-length':
                size = value
        path = environ.get('RAW_URI') or (
            environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '') +
            ('?' + environ['QUERY_STRING']
             if environ.get('QUERY_STRING') else ''))
        line = '%s - - [%s] "%s %s %s" %s %s "%s" "%s"\n' % (
            environ.get('REMOTE_ADDR', '-'), self._now(),
            environ.get('REQUEST_METHOD', '-'), path,
            environ.get('SERVER_PROTOCOL', '-'),
            str(status).split(' ', 1)[0], size,
            environ.get('HTTP_REFERER', '-').replace('"', '\\"'),
            environ.get('HTTP_USER_AGENT', '-').replace('"', '\\"'))
        os.write(self.fd, line.encode('utf-8', 'replace'))

    def __call__(self, environ, start_response):
        logged = []

        def _start_response(status, headers, exc_info=None):
            if not logged:
                logged.append(True)
                self._write(environ, status, headers)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, _start_response)
        except Exception:
            if not logged:
                # gunicorn will answer 500 itself.
                logged.append(True)
                self._write(environ, '500', [])
            raise


def barbican_noauth_context_factory(global_conf, **local_conf):
    """Paste filter factory: Barbican's no-Keystone context middleware, fixed.

    Barbican 23.0.0's ``UnauthenticatedContextMiddleware`` reads
    ``req.request_id``, which nothing sets any more, so every ``/v1``
    request answers 500 (``AttributeError: request_id``).  Set it from the
    id oslo.middleware's ``request_id`` filter put in the environ.
    """
    from barbican.api.middleware import context as barbican_context
    from oslo_middleware import request_id as oslo_request_id

    class RequestIdUnauthenticatedContextMiddleware(
            barbican_context.UnauthenticatedContextMiddleware):
        def process_request(self, req):
            req.request_id = req.environ.get(oslo_request_id.ENV_REQUEST_ID)
            return super(RequestIdUnauthenticatedContextMiddleware,
                         self).process_request(req)

    def _filter(app):
        return RequestIdUnauthenticatedContextMiddleware(app)
    return _filter


def _load():
    which = os.environ.get('SEALEDMETA_DEV_APP')
    if which == 'barbican':
        from paste import deploy
        app = deploy.loadapp('config:' + os.environ['SEALEDMETA_DEV_PASTE'])
    elif which == 'keystone':
        # keystone parses sys.argv (gunicorn's) and exits with status 2.
        del sys.argv[1:]
        from keystone.wsgi import api as keystone_api
        app = keystone_api.application
    else:
        raise RuntimeError('SEALEDMETA_DEV_APP must be barbican or keystone')
    log = os.environ.get('SEALEDMETA_DEV_ACCESS_LOG')
    if log:
        app = AccessLog(app, log)
    return app


application = _load()
