"""Full and incremental backups through the real Swift drivers, per_user
(the tenant's own Keystone token and account) and single_user (tempauth):
restore, Glance metadata and bootable restored, delete, nothing in clear."""

from cinder import objects

from tests.swift import helpers


def test_full_and_incremental_backup_restore_and_delete(cloud, mode, tenant):
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    full = cloud.backup(src)
    cloud.write(src, 0, b"\x07" * 3000)
    cloud.write(src, 3 * helpers.CHUNK, b"\x09" * 5000)
    incr = cloud.backup(src, parent=full)
    assert incr.parent_id == full.id
    if mode == "per_user":   # the tenant's own account, as Cinder's default does
        assert tenant.conn().head_container(cloud.container)
    # several chunks, the metadata object and the sha256file per backup
    assert len(cloud.object_names(full)) >= 5 + 2

    for member in (full, incr):
        obj = cloud.read_object(member)
        assert obj["volume_meta"].startswith("sealedmeta:")

    # every stored byte of the account, versions included: no billing code
    stored = cloud.every_stored_byte()
    assert len(stored) >= 10
    assert [name for name, data in stored.items() if helpers.BILLING in data] == []

    target = cloud.new_target()
    cloud.restore(incr, target)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.bootable(target) is True
    assert cloud.user_meta(target) == {"tier": "gold"}

    for member in (incr, full):
        names = cloud.object_names(member)
        member = objects.Backup.get_by_id(cloud.ctxt, member.id)
        cloud.driver().delete_backup(member)
        assert cloud.object_names(member) == []
        assert names
