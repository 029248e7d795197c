"""Sealed metadata for Cinder's chunked backup drivers (Cinder bug 1137908).

Cinder's chunked backup drivers (posix, NFS, Swift, S3, Google Cloud Storage)
write a ``<prefix>_metadata`` JSON object next to the data chunks, in object
storage the user may be able to edit. Its ``volume_meta`` field holds the
volume's base metadata, user metadata and Glance image metadata (billing and
licence codes; restoring it makes the volume bootable). The driver classes of
this package seal that field: ``volume_meta`` becomes the armour of an envelope
bound to ``{backup_id, volume_id}``, verified before any byte is restored.

Its modules, each with its job, are listed in the architecture page
(docs/source/architecture.rst, "Cinder"), the one list of them.

This package itself imports nothing from Cinder, so the command line and the
carrier work where Cinder is not installed; ``SealedMetadataMixin`` is
imported from :mod:`sealedmeta.cinder.mixin` on first access.
"""

__all__ = ["SealedMetadataMixin"]


def __getattr__(name):
    if name == "SealedMetadataMixin":
        from sealedmeta.cinder.mixin import SealedMetadataMixin
        return SealedMetadataMixin
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
