"""Key stores: where keyrings and their version keys live.

Stores are plug-ins loaded by name from the ``sealedmeta.keystores``
entry-point namespace (``file``, ``barbican``).
"""

from stevedore import driver

from sealedmeta import exceptions
from sealedmeta.keystores.base import KeyReader  # noqa: F401
from sealedmeta.keystores.base import KeyStore  # noqa: F401

NAMESPACE = "sealedmeta.keystores"


def load(conf):
    """The key store selected by ``[sealedmeta] keystore``, built from *conf*."""
    name = conf.sealedmeta.keystore
    try:
        manager = driver.DriverManager(NAMESPACE, name, invoke_on_load=False)
    except Exception as exc:  # stevedore raises its own NoMatches, or import errors
        raise exceptions.KeyStoreError(
            "cannot load key store %r (entry point %s): %s"
            % (name, NAMESPACE, type(exc).__name__)) from None
    return manager.driver.from_config(conf)
