"""The ``cinder-metadata`` carrier: Cinder chunked-driver ``*_metadata``
objects whose ``volume_meta`` is an armoured envelope.

Registered in the ``sealedmeta.carriers`` entry-point namespace, so
``sealedmeta verify`` and ``sealedmeta rewrap`` walk a copy of a backup store
(a posix/NFS backup directory, or objects downloaded from Swift/S3/GCS).
Imports nothing from Cinder.

Recognised: every file whose name ends in ``_metadata`` (the ``raw``
carrier never takes one), whatever its content. Then:

* the object is read by :mod:`sealedmeta.cinder.metadata_object`, the one
  bounded reader of metadata objects (size, element and depth limits,
  strict JSON): anything else is ``malformed``;
* the backup it belongs to comes from its NAME, as Cinder names it
  (``..._backup_<backup id>_metadata``), and its volume from the
  ``volume_<volume id>`` part of its path when there is one (Cinder puts
  it in every chunked driver's object names), else from its content: a
  name that does not say which backup is ``malformed``;
* ``volume_meta`` must be an armoured envelope: an object without one (a
  backup made before sealing -- see ``sealedmeta cinder reseal`` -- or a
  forgery) is reported ``unsealed``, never valid and never skipped;
* the envelope's context must be exactly ``{backup_id, volume_id}`` taken
  as above: the carrier gives that as the context it expects
  (:attr:`~sealedmeta.carriers.Carried.expected_context`). The auditor
  authenticates the header first, then reports an envelope copied from
  another backup -- alone or with its whole object -- ``context-mismatch``
  with both contexts in the reason, as it does for ``--expect``; so a
  ``valid`` finding means an authentic envelope sealed for the backup the
  object's name says it is. (Cinder's restore checks against its database
  instead.) ``rewrap`` leaves such an object alone and reports it.

Rewriting (``rewrap``) replaces only the armour's characters in the file:
every other byte stays as it was.
"""

import json
import os
import re

from sealedmeta import carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import volume_meta as vm

SUFFIX = carriers.CINDER_METADATA_SUFFIX
# Cinder's chunked drivers name the object <prefix>_metadata, the prefix
# ending in "backup_<backup id>"; the path holds "volume_<volume id>".
_BACKUP_NAME = re.compile(r"(?:^|_)backup_([^/_]+)_metadata\Z")
_VOLUME_PART = re.compile(r"(?:^|[/_])volume_([0-9a-fA-F-]{36})(?=[/_])")


class CinderMetadataCarrier(carriers.Carrier):
    """A Cinder chunked backup driver's ``<prefix>_metadata`` object."""

    name = "cinder-metadata"
    priority = 40

    def __init__(self, max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 max_object_size=None):
        super().__init__(max_envelope_size, (
            metadata_object.DEFAULT_MAX_SIZE if max_object_size is None
            else max_object_size))

    def sniff(self, path, head):
        # By name alone: what the content says cannot decide whether an
        # object is audited.
        try:
            return os.path.basename(path).endswith(SUFFIX)
        except Exception:
            return False

    def max_file_size(self):
        return self.max_object_size

    @staticmethod
    def _malformed(why):
        return exceptions.MalformedEnvelope("Cinder backup metadata object: %s" % why)

    def expected_context(self, path, obj):
        """``{backup_id, volume_id}`` of the object at *path*: the backup
        from its name, the volume from its path, else its content."""
        name = _BACKUP_NAME.search(os.path.basename(path))
        if name is None:
            raise self._malformed(
                "its name does not say which backup it belongs to (Cinder"
                " names it ..._backup_<backup id>_metadata)")
        volumes = _VOLUME_PART.findall(path.replace(os.sep, "/"))
        volume_id = volumes[-1] if volumes else obj.get("volume_id")
        if type(volume_id) is not str:
            raise self._malformed("volume_id must be a string")
        return vm.context_for(name.group(1), volume_id)

    def extract(self, path, data):
        try:
            obj = metadata_object.loads(data, self.max_object_size)
        except metadata_object.ObjectError as exc:
            raise self._malformed(str(exc)) from None
        if type(obj) is not dict:
            raise self._malformed("not a JSON object")
        expected = self.expected_context(path, obj)
        armour = obj.get("volume_meta")
        if not vm.is_sealed(armour):
            raise carriers.Unsealed(
                "Cinder backup metadata object whose volume_meta is not sealed"
                " (a backup made before sealing -- see 'sealedmeta cinder"
                " reseal' -- or a forgery)")
        return self.carried(armour, data, expected)

    def carried(self, armour, data, expected):
        """The :class:`~sealedmeta.carriers.Carried` envelope of *armour*,
        found in the object *data*, expected to be sealed for *expected*."""
        raw = envelope.dearmor(armour, self.max_envelope_size)
        envelope.parse(raw, self.max_envelope_size)  # malformed: say so here
        # Judged once the header is authenticated: an authentic envelope
        # sealed for another backup is a context mismatch, not a malformed
        # object.
        return carriers.Carried(self, raw, data, state=armour,
                                expected_context=expected)

    def replace(self, carried, new_envelope):
        old = carried.state.encode("ascii")
        new = envelope.armor(new_envelope).encode("ascii")
        needle = b'"volume_meta": "' + old + b'"'
        if carried.data.count(needle) == 1:
            return carried.data.replace(needle, b'"volume_meta": "' + new + b'"')
        # Not laid out as Cinder writes it: re-serialise as Cinder does.
        obj = metadata_object.loads(carried.data, self.max_object_size)
        obj["volume_meta"] = new.decode("ascii")
        return json.dumps(obj, sort_keys=True, indent=2).encode("utf-8")
