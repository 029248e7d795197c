"""The ``cinder-metadata`` carrier: Cinder chunked-driver ``*_metadata``
objects whose ``volume_meta`` is an armoured envelope.

Registered in the ``sealedmeta.carriers`` entry-point namespace, so
``sealedmeta verify`` and ``sealedmeta rewrap`` walk a copy of a backup store
(a posix/NFS backup directory, or objects downloaded from Swift/S3/GCS).
Imports nothing from Cinder.

Recognised: a file whose name ends in ``_metadata`` and whose first
non-blank byte opens a JSON object that names a ``backup_id``. Then:

* the object must be strict JSON (no duplicate keys) with string
  ``backup_id`` and ``volume_id`` fields;
* ``volume_meta`` must be an armoured envelope -- an unsealed one (a backup
  made before sealing, or a forgery) is reported ``malformed`` with the
  reason, never skipped, so an audit cannot miss it;
* the envelope's context must be exactly ``{backup_id, volume_id}`` of the
  object's own fields: the carrier gives that as the context it expects
  (:attr:`~sealedmeta.carriers.Carried.expected_context`). The auditor
  authenticates the header first, then reports an envelope copied from
  another backup ``context-mismatch`` with both contexts in the reason, as
  it does for ``--expect``; so a ``valid`` finding means an authentic
  envelope sealed for the backup the object says it is. (The object's own
  ids are what an offline audit has; Cinder's restore checks against its
  database.) ``rewrap`` leaves such an object alone and reports it.

Rewriting (``rewrap``) replaces only the armour's characters in the file:
every other byte stays as it was.
"""

import json
import os

from sealedmeta import carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta.cinder import volume_meta as vm

SUFFIX = "_metadata"
# A backup's chunk list grows with the volume (Swift's default 50 MB chunks:
# some 20 000 entries for 1 TB); metadata objects beyond this are refused.
MAX_OBJECT_SIZE = 64 * 1024 * 1024


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key %r" % key)
        result[key] = value
    return result


class CinderMetadataCarrier(carriers.Carrier):
    """A Cinder chunked backup driver's ``<prefix>_metadata`` object."""

    name = "cinder-metadata"
    priority = 40

    def sniff(self, path, head):
        try:
            if not os.path.basename(path).endswith(SUFFIX):
                return False
            stripped = head.lstrip(b" \t\r\n")
            return stripped.startswith(b"{") and b'"backup_id"' in head
        except Exception:
            return False

    def max_file_size(self):
        return MAX_OBJECT_SIZE + carriers.armour_size(self.max_envelope_size)

    @staticmethod
    def _malformed(why):
        return exceptions.MalformedEnvelope("Cinder backup metadata object: %s" % why)

    def expected_context(self, obj):
        backup_id, volume_id = obj.get("backup_id"), obj.get("volume_id")
        if type(backup_id) is not str or type(volume_id) is not str:
            raise self._malformed("backup_id and volume_id must be strings")
        return vm.context_for(backup_id, volume_id)

    def extract(self, path, data):
        try:
            obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        # RecursionError: JSON nested deeper than the decoder can follow.
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise self._malformed("not valid JSON (%s)" % exc) from None
        if type(obj) is not dict:
            raise self._malformed("not a JSON object")
        expected = self.expected_context(obj)
        armour = obj.get("volume_meta")
        if not vm.is_sealed(armour):
            raise self._malformed(
                "volume_meta is not sealed (a backup made before sealing -- see"
                " 'sealedmeta cinder reseal' -- or a forgery)")
        raw = envelope.dearmor(armour, self.max_envelope_size)
        envelope.split(raw, self.max_envelope_size)  # malformed: say so here
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
        obj = json.loads(carried.data.decode("utf-8"))
        obj["volume_meta"] = new.decode("ascii")
        return json.dumps(obj, sort_keys=True, indent=2).encode("utf-8")
