"""WSGI entry point of cinder-api under gunicorn, for tools/dev-cloud.

Cinder's own module (``cinder.wsgi.api``) parses ``sys.argv`` when it is
imported; under gunicorn that is gunicorn's command line. Cinder's command
line is set here first, from the environment dev-cloud gives the server.
"""

import os
import sys

sys.argv = ['cinder-api',
            '--config-file', os.environ['SEALEDMETA_CINDER_CONF'],
            '--log-file', os.environ['SEALEDMETA_CINDER_LOG']]

from cinder.wsgi.api import application  # noqa: E402,F401
