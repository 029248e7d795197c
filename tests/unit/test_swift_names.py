"""sealedmeta.cinder.swift_names: the names the sealed Swift driver puts in
request paths (no Cinder, no Swift needed; the attack itself runs against a
real Swift in tests/swift/test_archive_names.py)."""

import posixpath
import urllib.parse

import pytest

from sealedmeta.cinder import swift_names as sn

NAME = ("volume_6b1d3a44-6d0e-4f7b-9d5c-3f1f0e3c2a11/20240101000000/"
        "az_nova_backup_0b6f6a2e-1a59-4a34-8b1b-7f2d4b2c8f00_metadata")


def test_archive_prefix_counts_bytes_as_swift_does():
    assert sn.archive_prefix(NAME) == "%03x%s/" % (len(NAME), NAME)
    assert sn.archive_prefix("\u00e9t\u00e9") == "005\u00e9t\u00e9/"


@pytest.mark.parametrize("suffix", ["1700000000.12345",
                                    "1700000000.12345_0000000000000001"])
def test_archived_versions_as_swift_names_them(suffix):
    assert sn.is_archived_version(sn.archive_prefix(NAME) + suffix, NAME)


@pytest.mark.parametrize("suffix", [
    "../../../../../AUTH_victim/c/o",
    "1700000000.12345/../../../../../../AUTH_victim/c/o",
    "1700000000.12345/x",
    "1700000000.12345\n",
    "1700000000.1234",
    "1700000000.12345_1",
    "%2e%2e/%2e%2e/AUTH_victim/c/o",
    "..%2F..%2FAUTH_victim",
    "",
])
def test_anything_else_under_the_prefix_is_refused(suffix):
    assert not sn.is_archived_version(sn.archive_prefix(NAME) + suffix, NAME)


def test_another_objects_versions_are_refused():
    other = NAME.replace("_metadata", "-00001")
    assert not sn.is_archived_version(sn.archive_prefix(other) + "1700000000.12345", NAME)
    assert not sn.is_archived_version(None, NAME)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../AUTH_victim", "a\0b",
                                  "x" * 257, None, b"bytes"])
def test_containers_that_are_not_one_segment_are_refused(name):
    with pytest.raises(sn.UnsafeName):
        sn.container(name)


@pytest.mark.parametrize("name", ["", "a//b", "/a", "a/", "a/./b", "a/../b", "..",
                                  "a/..", "x" * 1025, "a\0b", None])
def test_objects_with_dot_or_empty_segments_are_refused(name):
    with pytest.raises(sn.UnsafeName):
        sn.object_name(name)


@pytest.mark.parametrize("location,archive", [
    ("archive", "archive"),
    ("arch%20ive", "arch ive"),
    ("archive/ignored", "archive"),     # as Swift's versioned writes take it
])
def test_archive_location_as_swift_takes_it(location, archive):
    assert sn.archive_container(location) == archive


@pytest.mark.parametrize("location", ["..", "%2E%2E", ".%2e/x", "", "/x", None])
def test_hostile_archive_locations_are_refused(location):
    with pytest.raises(sn.UnsafeName):
        sn.archive_container(location)


@pytest.mark.parametrize("version,ok", [
    ("null", True), ("1700000000.12345", True),
    ("1700000000.12345_00000000000000ff", True),
    ("1700000000.12345&multipart-manifest=delete", False),
    ("../x", False), ("", False), (None, False),
])
def test_version_ids(version, ok):
    if ok:
        assert sn.version_query(version) == "version-id=" + version
    else:
        with pytest.raises(sn.UnsafeName):
            sn.version_query(version)


@pytest.mark.parametrize("container,name", [
    ("backups", NAME), ("a b", "x/y.z/..a/a..")])
def test_a_checked_path_stays_in_its_account_and_container(container, name):
    # What swiftclient sends (urllib's quote, "/" kept), then the dot
    # segments removed as an HTTP client does.
    path = "/v1/AUTH_p/%s/%s" % (urllib.parse.quote(sn.container(container)),
                                 urllib.parse.quote(sn.object_name(name)))
    assert posixpath.normpath(path) == path
    assert path.startswith("/v1/AUTH_p/%s/" % urllib.parse.quote(container))
