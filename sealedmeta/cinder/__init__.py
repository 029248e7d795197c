"""Sealed metadata for Cinder's chunked backup drivers (Cinder bug 1137908).

Cinder's chunked backup drivers (posix, NFS, Swift, S3, Google Cloud Storage)
write a ``<prefix>_metadata`` JSON object next to the data chunks, in object
storage the user may be able to edit. Its ``volume_meta`` field holds the
volume's base metadata, user metadata and Glance image metadata (billing and
licence codes; restoring it makes the volume bootable). The driver classes of
this package seal that field: ``volume_meta`` becomes the armour of an envelope
bound to ``{backup_id, volume_id}``, verified before any byte is restored.

Modules:

``sealedmeta.cinder.mixin``
    :class:`SealedMetadataMixin`, for any
    ``cinder.backup.chunkeddriver.ChunkedBackupDriver`` subclass.
``sealedmeta.cinder.posix`` / ``nfs`` / ``swift`` / ``s3`` / ``gcs``
    ready driver classes, one module each so that each imports whenever its
    Cinder driver does (a missing client library breaks only its own module).
``sealedmeta.cinder.ceph``
    the sealed ``CephBackupDriver`` (RBD): the same mixin, reading and writing
    the RADOS object ``backup.<id>.meta`` instead of a ``_metadata`` object.
``sealedmeta.cinder.port``
    the store port: how restore, export, the audit and reseal read, write
    and list a backup's metadata object, implemented for the chunked
    drivers there and overridden in each store's module.
``sealedmeta.cinder.options`` / ``swift_options``
    the ``[sealedmeta]`` options in Cinder's configuration and the per-process
    Sealer; the Swift service user's options. No Cinder import.
``sealedmeta.cinder.volume_meta``
    sealing and opening one ``volume_meta`` string. No Cinder import.
``sealedmeta.cinder.carrier``
    the ``cinder-metadata`` carrier of ``sealedmeta verify`` / ``rewrap``.
    No Cinder import.
``sealedmeta.cinder.metadata_object``
    the one bounded reader of metadata objects, shared by the carrier, the
    restore judgement, export, the audit and reseal, over every store. No
    Cinder import.
``sealedmeta.cinder.swift_names``
    the names the sealed Swift class puts in request paths (containers,
    objects, archived versions, version ids), checked. No Cinder import.
``sealedmeta.cinder.policy_check``
    Cinder's effective policy on what sealing cannot protect (Glance image
    metadata, bootable), checked when the drivers and reseal start.
``sealedmeta.cinder.reseal`` / ``cli``
    ``sealedmeta cinder reseal``: seal the metadata of backups made before.

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
