"""Regression tests for what this suite found outside the envelope code
(see the report in docs/source/threat-model.rst, "Findings")."""

import json

from sealedmeta import armor
from sealedmeta import carriers
from sealedmeta import exceptions
from sealedmeta.cinder import carrier as cinder_carrier

import pytest


@pytest.mark.parametrize("depth", [5000, 200000])
def test_cinder_carrier_refuses_deeply_nested_json_as_malformed(depth):
    """A ``*_metadata`` object nested deeper than the JSON decoder's
    recursion limit is malformed: the carrier must say so itself
    (MalformedEnvelope), not let RecursionError out for the scanner's
    catch-all to turn into 'carrier cinder-metadata failed: ...'."""
    data = (b'{"backup_id": "b", "volume_id": "v", "x": ' + b"[" * depth
            + b"]" * depth + b', "volume_meta": "' + armor(b"SMETA").encode()
            + b'"}')
    carrier = cinder_carrier.CinderMetadataCarrier()
    path = "volume_v_backup_b_metadata"
    assert carrier.sniff(path, data[:carriers.SNIFF_SIZE])
    with pytest.raises(exceptions.MalformedEnvelope):
        carrier.extract(path, data)
    # a sane object of the same shape is fine up to its envelope
    with pytest.raises(exceptions.MalformedEnvelope, match="envelope"):
        carrier.extract(path, json.dumps({"backup_id": "b", "volume_id": "v",
                                          "volume_meta": armor(b"SMETA")}).encode())
