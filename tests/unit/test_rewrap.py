"""sealedmeta.rewrap and sealedmeta.carriers (library level)."""

import json
import os
import stat

import pytest
from stevedore import extension

from sealedmeta import Sealer
from sealedmeta import armor
from sealedmeta import carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import inspect
from sealedmeta import rewrap

from tests import sm_cli
from tests.unit.helpers import set_age
from tests.unit.helpers import temp_file

RING = "cinder-backup"


def seal_tree(root, sealer, count=6):
    """{path: context}: raw envelopes, armoured ones with and without newline."""
    root.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i in range(count):
        context = {"backup_id": "b%d" % i, "volume_id": "v"}
        raw = sealer.seal({"i": i, "blob": b"\x00\x01"}, context)
        if i % 3 == 0:
            data = raw
        elif i % 3 == 1:
            data = (armor(raw) + "\n").encode()
        else:
            data = armor(raw).encode()
        path = root / ("e%d" % i)
        path.write_bytes(data)
        expected[str(path)] = context
    return expected


def test_rewraps_only_what_is_not_current(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING, cache_ttl=0)
    expected = seal_tree(tmp_path / "t", sealer)
    store.rotate(RING)
    current = tmp_path / "t" / "current"
    current.write_bytes(sealer.seal({"new": True}, {"backup_id": "new"}))
    expected[str(current)] = {"backup_id": "new"}
    before = {p: open(p, "rb").read() for p in expected}

    summary = rewrap.rewrap(store, [str(tmp_path / "t")])
    assert (summary.count("rewrapped"), summary.count("current"),
            summary.count("failed"), summary.count("skipped")) == (6, 1, 0, 0)
    assert summary.active == {RING: 2}
    opener = Sealer(store, keyring=RING)
    for path, context in expected.items():
        data = open(path, "rb").read()
        assert inspect(data).key_version == 2
        assert dict(inspect(data).context) == context
        opener.open(data, context)
        old = before[path]
        # The carrier keeps the file's form: raw stays raw, armour keeps its
        # final newline or its absence.
        assert data.startswith(envelope.MAGIC) == old.startswith(envelope.MAGIC)
        if not old.startswith(envelope.MAGIC):
            # (a raw envelope may end in 0x0a by chance: armour only)
            assert data.endswith(b"\n") == old.endswith(b"\n")
    assert open(current, "rb").read() == before[str(current)]
    assert sm_cli_no_temp(tmp_path)

    # Idempotent: a second run changes nothing.
    digest = sm_cli.tree_digest(tmp_path / "t")
    again = rewrap.rewrap(store, [str(tmp_path / "t")])
    assert (again.count("rewrapped"), again.count("current")) == (0, 7)
    assert sm_cli.tree_digest(tmp_path / "t") == digest


def sm_cli_no_temp(root):
    return not [f for _, _, files in os.walk(root) for f in files
                if f.startswith(".tmp-")]


def test_payload_and_context_survive(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING)
    meta = {"volume_meta": {"glance": {"image_id": "x", "licence": "L"}},
            "list": [1, 2.5, None, True, b"raw"]}
    path = tmp_path / "e"
    path.write_bytes(sealer.seal(meta, {"backup_id": "b"}))
    store.rotate(RING)
    assert rewrap.rewrap(store, [str(path)]).count("rewrapped") == 1
    assert Sealer(store, keyring=RING).open(path.read_bytes(), {"backup_id": "b"}) == meta


def test_mode_kept(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING)
    path = tmp_path / "e"
    path.write_bytes(sealer.seal({}, {"backup_id": "b"}))
    os.chmod(path, 0o640)
    store.rotate(RING)
    rewrap.rewrap(store, [str(path)])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_owner_kept(tmp_path, store, ring):
    if os.geteuid() != 0:
        pytest.fail("this test needs root to give a file another owner")
    sealer = Sealer(store, keyring=RING)
    path = tmp_path / "e"
    path.write_bytes(sealer.seal({}, {"backup_id": "b"}))
    os.chown(path, 4242, 4343)
    store.rotate(RING)
    assert rewrap.rewrap(store, [str(path)]).count("rewrapped") == 1
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (4242, 4343)


def test_failures_and_skips_do_not_stop_the_run(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING, cache_ttl=0)
    root = tmp_path / "t"
    seal_tree(root, sealer, count=3)
    (root / "retired").write_bytes(sealer.seal({}, {"backup_id": "r"}))
    store.rotate(RING)
    store.rotate(RING)
    store.set_state(RING, 1, "retired")
    (root / "junk").write_text("hello")
    (root / "truncated").write_bytes(envelope.MAGIC + b"\x01")
    flipped = bytearray(sealer.seal({}, {"backup_id": "f"}))
    flipped[-1] ^= 1
    (root / "flipped").write_bytes(bytes(flipped))
    summary = rewrap.rewrap(store, [str(root), "/proc/self/mem"])
    reasons = {os.path.basename(o.path): (o.status, o.reason)
               for o in summary.outcomes}
    assert reasons["junk"] == ("skipped", "not an envelope")
    assert reasons["retired"] == ("failed", "version 1 of keyring %r is retired" % RING)
    assert reasons["truncated"][0] == "failed"
    assert "truncated" in reasons["truncated"][1]
    assert reasons["flipped"] == ("failed", "envelope failed authentication")
    assert reasons["mem"] == ("failed", "cannot read: Input/output error")
    # e0..e2 were under v1 (retired): failed too, with the reason.
    assert {reasons["e%d" % i][0] for i in range(3)} == {"failed"}
    assert not summary.ok
    data = summary.as_dict()
    assert data["failed"] == 7 and data["skipped"] == 1
    assert {f["path"] for f in data["failures"]} >= {"/proc/self/mem"}


def test_keyring_filter(tmp_path, store, ring):
    store.create_keyring("other")
    data = tmp_path / "data"
    data.mkdir()
    a = data / "a"
    b = data / "b"
    a.write_bytes(Sealer(store, keyring=RING).seal({}, {"k": "a"}))
    b.write_bytes(Sealer(store, keyring="other").seal({}, {"k": "b"}))
    store.rotate(RING)
    store.rotate("other")
    summary = rewrap.Rewrapper(store, keyring="other").run([str(data)])
    assert {os.path.basename(o.path): (o.status, o.reason) for o in summary.outcomes} == {
        "a": ("skipped", "sealed under keyring %r, not 'other'" % RING),
        "b": ("rewrapped", None)}
    assert inspect(a.read_bytes()).key_version == 1
    with pytest.raises(exceptions.NoSuchKeyring):
        rewrap.Rewrapper(store, keyring="missing").run([str(data)])
    with pytest.raises(carriers.PathError):
        rewrap.rewrap(store, [str(tmp_path / "missing")])


def test_file_changed_during_rewrap_is_left_alone(tmp_path, store, ring, monkeypatch):
    sealer = Sealer(store, keyring=RING)
    path = tmp_path / "e"
    path.write_bytes(sealer.seal({"v": "old"}, {"backup_id": "b"}))
    store.rotate(RING)
    newer = Sealer(store, keyring=RING, cache_ttl=0).seal({"v": "newer"},
                                                          {"backup_id": "b"})
    real = Sealer.rewrap

    def racing_rewrap(self, data):
        result = real(self, data)
        with open(path, "wb") as handle:  # the backup driver writes meanwhile
            handle.write(newer)
        os.utime(path, ns=(1, 1))
        return result

    monkeypatch.setattr(Sealer, "rewrap", racing_rewrap)
    summary = rewrap.rewrap(store, [str(path)])
    assert summary.outcomes[0].status == "failed"
    assert "changed while being rewrapped" in summary.outcomes[0].reason
    assert path.read_bytes() == newer


def test_raw_carrier_is_an_entry_point():
    names = extension.ExtensionManager(carriers.NAMESPACE).names()
    assert "raw" in names
    loaded = carriers.load_carriers()
    assert "raw" in [c.name for c in loaded]
    assert all(isinstance(c, carriers.Carrier) for c in loaded)


class JsonCarrier(carriers.Carrier):
    """A carrier of the shape the Cinder issue adds: a JSON object whose
    'volume_meta' is an armoured envelope."""

    name = "test-json"
    priority = 10

    def sniff(self, path, head):
        return path.endswith("_metadata") and head.lstrip().startswith(b"{")

    def max_file_size(self):
        return 4 * 1024 * 1024

    def extract(self, path, data):
        try:
            obj = json.loads(data)
            text = obj["volume_meta"]
        except (ValueError, KeyError, TypeError):
            raise exceptions.MalformedEnvelope("malformed envelope: no volume_meta")
        return carriers.Carried(self, envelope.dearmor(text), data, obj)

    def replace(self, carried, new_envelope):
        obj = dict(carried.state)
        obj["volume_meta"] = armor(new_envelope)
        return json.dumps(obj, sort_keys=True).encode()


def test_pluggable_carrier(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING)
    data = tmp_path / "data"
    data.mkdir()
    meta = data / "backup-0001_metadata"
    meta.write_text(json.dumps({
        "version": 2, "volume_id": "vol",
        "volume_meta": armor(sealer.seal({"a": 1}, {"backup_id": "0001"}))}))
    (data / "other_metadata").write_text('{"volume_meta": 3}')
    store.rotate(RING)
    used = [JsonCarrier(), carriers.RawCarrier()]
    summary = rewrap.Rewrapper(store, carriers=used).run([str(data)])
    status = {os.path.basename(o.path): o.status for o in summary.outcomes}
    assert status == {"backup-0001_metadata": "rewrapped", "other_metadata": "failed"}
    obj = json.loads(meta.read_text())
    assert obj["version"] == 2 and obj["volume_id"] == "vol"
    assert inspect(obj["volume_meta"]).key_version == 2
    assert Sealer(store, keyring=RING).open(obj["volume_meta"], {"backup_id": "0001"}) == {"a": 1}


def test_walk_order_dedup_and_links(tmp_path):
    root = tmp_path / "r"
    (root / "b").mkdir(parents=True)
    (root / "a.txt").write_text("x")
    (root / "b" / "c.txt").write_text("x")
    os.symlink(root / "b", root / "dirlink")
    os.symlink(tmp_path / "nowhere", root / "dangling")
    found = [(os.path.relpath(p, root), problem)
             for p, _, problem in carriers.iter_paths([str(root), str(root / "a.txt")])]
    assert found == [("a.txt", None), ("dangling", None), ("dirlink", None),
                     ("b/c.txt", None)]
    # A directory symlink named on the command line is walked.
    assert [os.path.basename(p) for p, _, _ in
            carriers.iter_paths([str(root / "dirlink")])] == ["c.txt"]


def test_oversized_envelope_file_is_malformed(tmp_path):
    carrier = carriers.RawCarrier(max_envelope_size=1024)
    path = tmp_path / "big"
    path.write_bytes(envelope.MAGIC + b"\x01" + b"\x00" * 5000)
    item = carriers.examine(str(path), os.lstat(path), [carrier])
    assert item.malformed and "limit" in item.malformed


# -- temporary files of interrupted writes -----------------------------------

HOUR = 3600
TEMP_REASON = "temporary file of an interrupted write"


def entries(data, key):
    return {e["path"]: e["reason"] for e in data[key]}


def test_stale_temp_files_are_removed_and_reported(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING)
    root = tmp_path / "t"
    expected = seal_tree(root, sealer)
    (root / "sub").mkdir()
    partial = sealer.seal({"x": 1}, {"backup_id": "p"})[:40]
    stale = sorted([temp_file(root, 2 * HOUR, partial),
                    temp_file(root / "sub", rewrap.DEFAULT_TEMP_AGE + 5)])
    young = sorted([temp_file(root, 0),
                    temp_file(root / "sub", rewrap.DEFAULT_TEMP_AGE - 30)])
    store.rotate(RING)

    summary = rewrap.rewrap(store, [str(root)])
    assert summary.ok
    data = summary.as_dict()
    assert (data["rewrapped"], data["skipped"], data["failed"],
            data["removed_temp"]) == (6, 2, 0, 2)
    removed = entries(data, "removed_temp_files")
    assert sorted(removed) == stale
    assert all(r.startswith(TEMP_REASON + ", last written ") for r in removed.values())
    assert [o.path for o in summary.of(rewrap.REMOVED)] == stale
    assert not [p for p in stale if os.path.lexists(p)]
    # Younger ones may be a write under way elsewhere: kept, skipped as ever.
    assert entries(data, "skipped_files") == {p: TEMP_REASON for p in young}
    assert all(os.path.exists(p) for p in young)
    opener = Sealer(store, keyring=RING)
    for path, context in expected.items():
        raw = open(path, "rb").read()
        assert inspect(raw).key_version == 2
        opener.open(raw, context)

    # At the least age, the older of the young ones goes too.
    summary = rewrap.Rewrapper(store, temp_age=rewrap.MIN_TEMP_AGE).run([str(root)])
    data = summary.as_dict()
    assert (data["already_current"], data["removed_temp"]) == (6, 1)
    assert list(entries(data, "removed_temp_files")) == [young[1]]
    assert entries(data, "skipped_files") == {young[0]: TEMP_REASON}
    assert os.path.exists(young[0]) and not os.path.exists(young[1])


def test_only_stale_regular_temp_files_of_mkstemp_names_are_removed(
        tmp_path, store, ring):
    """Links, directories, hard-linked files and names write_file never
    makes are left as they are, however old."""
    sealer = Sealer(store, keyring=RING)
    root = tmp_path / "t"
    seal_tree(root, sealer, count=2)
    outside = tmp_path / "outside"
    outside.write_bytes(b"not ours")
    links = {".tmp-linkabcd": "e0", ".tmp-dangl_ng": str(tmp_path / "nowhere"),
             ".tmp-outsidel": str(outside)}
    for name, target in links.items():
        os.symlink(target, root / name)
    directory = root / ".tmp-dir_abcd"
    directory.mkdir()
    inner = directory / "inner"
    inner.write_bytes(sealer.seal({}, {"backup_id": "inner"}))
    os.link(outside, root / ".tmp-hardlink")
    other_shapes = [".tmp-abc123", ".tmp-ABCDEFGH", ".tmp-abcdefgh.bak",
                    ".tmp-abcdefghi", ".tmp-abcd-fgh", "x.tmp-abcdefgh"]
    for name in other_shapes:
        (root / name).write_bytes(b"partial")
    for name in list(links) + other_shapes + [".tmp-hardlink", ".tmp-dir_abcd"]:
        set_age(root / name, 2 * HOUR)
    store.rotate(RING)
    before = {name: os.lstat(root / name) for name in os.listdir(root)
              if ".tmp-" in name}

    summary = rewrap.Rewrapper(store, temp_age=rewrap.MIN_TEMP_AGE).run([str(root)])
    assert summary.ok
    data = summary.as_dict()
    assert (data["removed_temp"], data["removed_temp_files"]) == (0, [])
    assert sorted(os.listdir(root)) == sorted(list(before) + ["e0", "e1"])
    for name, st in before.items():
        now = os.lstat(root / name)
        assert (now.st_ino, now.st_mode) == (st.st_ino, st.st_mode), name
    assert {name: os.readlink(root / name) for name in links} == links
    assert outside.read_bytes() == b"not ours"
    skipped = {os.path.basename(p): r for p, r in entries(data, "skipped_files").items()}
    assert skipped == dict(
        {name: "symbolic link, not followed" for name in links},
        **{name: TEMP_REASON for name in other_shapes[:-1] + [".tmp-hardlink"]},
        **{"x.tmp-abcdefgh": "not an envelope"})
    # A directory so named is walked as any other.
    assert inspect(inner.read_bytes()).key_version == 2


def test_temp_files_changed_or_removed_meanwhile_do_not_fail_the_run(
        tmp_path, store, ring):
    """Another rewrap removes the stale temporary files this one has seen
    in its walk but not reached yet, and one is written again meanwhile."""
    sealer = Sealer(store, keyring=RING)
    root = tmp_path / "t"
    seal_tree(root, sealer, count=3)
    (root / "z").mkdir()  # walked after root's own files
    gone = sorted(temp_file(root / "z", 2 * HOUR) for _ in range(3))
    rewritten = temp_file(root / "z", 2 * HOUR)
    store.rotate(RING)
    concurrent = []

    def progress(done, total):
        if done == 1:
            set_age(rewritten, 0)
            concurrent.append(rewrap.Rewrapper(store).run([str(root)]))

    summary = rewrap.Rewrapper(store, progress=progress, durable=False).run(
        [str(root)])
    assert summary.ok, summary.as_dict()
    data = summary.as_dict()
    assert (data["rewrapped"], data["already_current"], data["removed_temp"],
            data["failed"]) == (1, 2, 0, 0)
    assert entries(data, "skipped_files") == dict(
        {p: TEMP_REASON + ", gone before it was removed" for p in gone},
        **{rewritten: TEMP_REASON})
    other = concurrent[0].as_dict()
    assert (other["rewrapped"], other["removed_temp"]) == (2, 3)
    assert sorted(entries(other, "removed_temp_files")) == gone
    assert os.listdir(root / "z") == [os.path.basename(rewritten)]


def test_temp_age_bounds(tmp_path, store, ring):
    root = tmp_path / "t"
    seal_tree(root, Sealer(store, keyring=RING), count=1)
    stale = temp_file(root, 2 * HOUR)
    for age in (0, rewrap.MIN_TEMP_AGE - 1, -1):
        with pytest.raises(ValueError):
            rewrap.Rewrapper(store, temp_age=age)
    # None: never removes anything.
    data = rewrap.Rewrapper(store, temp_age=None).run([str(root)]).as_dict()
    assert (data["removed_temp"], entries(data, "skipped_files")) == (
        0, {stale: TEMP_REASON})
    assert os.path.exists(stale)
