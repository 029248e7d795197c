"""A second Cinder (cloud B of the disaster-recovery test), in its own process:
its own SQLite database, its own configuration and key store (Barbican).

    python -m tests.cinder.dr_cloud CINDER_CONF JOB_JSON

JOB_JSON is ``{"project_id", "user_id", "volume_dir", "ops": [...]}`` (one
job per run; the database stays in its file between runs), each op
``{"op": "import", "record": {...}}`` (``cinder backup-import``: Cinder's API
makes the row, its BackupManager imports the record) or ``{"op": "restore",
"backup_id": ...}`` (``cinder backup-restore`` into a new volume through the
BackupManager). Prints one JSON list: per op, what happened and, for a
restore, the restored volume's status, Glance metadata, bootable flag and
data digest. Only the device attach/detach and the RPC question to the
volume service are replaced, as in tests/cinder/test_manager.py.
"""

import hashlib
import json
import os
import sys
import uuid
import warnings

warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")

from oslo_config import cfg  # noqa: E402
import oslo_messaging  # noqa: E402
from oslo_messaging import transport as om_transport  # noqa: E402

from cinder import objects  # noqa: E402

objects.register_all()

from cinder.backup import api as backup_api  # noqa: E402
from cinder.backup import manager as backup_manager  # noqa: E402
from cinder import context as cinder_context  # noqa: E402
from cinder.db import api as db  # noqa: E402
from cinder import exception  # noqa: E402
from cinder.db import migration  # noqa: E402
from cinder.objects import base as objects_base  # noqa: E402
from cinder import rpc  # noqa: E402
from cinder.volume import volume_utils  # noqa: E402

CONF = cfg.CONF
VOLUME_BYTES = 5 * 64 * 1024


def setup(conf_file):
    CONF(["--config-file", conf_file], project="cinder", default_config_files=[])
    CONF.register_opts(om_transport._transport_opts)
    oslo_messaging.get_notification_transport(CONF)
    rpc.init(CONF)
    migration.db_sync()
    from sealedmeta.cinder import posix  # noqa: F401 - [sealedmeta]


def manager(volume_dir):
    mgr = backup_manager.BackupManager()
    # What init_host does first (setup_backup_backend): build the driver.
    mgr.service(context=cinder_context.get_admin_context())
    mgr.is_initialized = True
    mgr._attach_device = lambda ctxt, volume, props: {
        "device": {"path": os.path.join(volume_dir, volume.id)}}
    mgr._detach_device = lambda *a, **k: None
    mgr.volume_rpcapi.secure_file_operations_enabled = lambda ctxt, volume: False
    volume_utils.brick_get_connector_properties = lambda *a, **k: {}
    return mgr


def new_volume(ctxt, job):
    type_id = db.volume_type_get_by_name(ctxt, "__DEFAULT__")["id"]
    volume = db.volume_create(ctxt, {
        "id": str(uuid.uuid4()), "size": 1, "status": "restoring-backup",
        "host": "testhost@lvm#lvm", "display_name": "restore_backup_target",
        "project_id": job["project_id"], "user_id": job["user_id"],
        "volume_type_id": type_id, "availability_zone": "nova"})
    with open(os.path.join(job["volume_dir"], volume.id), "wb") as handle:
        handle.write(bytes(VOLUME_BYTES))
    return volume.id


def run(job):
    ctxt = cinder_context.RequestContext(
        user_id=job["user_id"], project_id=job["project_id"], is_admin=True)
    mgr = manager(job["volume_dir"])
    results = []
    for op in job["ops"]:
        result = {"op": op["op"]}
        try:
            if op["op"] == "import":
                record = op["record"]
                backup = backup_api.API()._get_import_backup(ctxt, record["backup_url"])
                # As the backup service receives it over RPC.
                serializer = objects_base.CinderObjectSerializer()
                backup = serializer.deserialize_entity(
                    ctxt, serializer.serialize_entity(ctxt, backup))
                result["backup_id"] = backup.id
                mgr.import_record(ctxt, backup, record["backup_service"],
                                  record["backup_url"], [])
                row = objects.Backup.get_by_id(ctxt, backup.id)
                result.update(status=row.status, service=row.service)
            elif op["op"] == "restore":
                result["backup_id"] = op["backup_id"]
                target = result["volume_id"] = new_volume(ctxt, job)
                backup = objects.Backup.get_by_id(ctxt, op["backup_id"])
                backup.status = "restoring"
                backup.save()
                mgr.restore_backup(ctxt, backup, target, True)
            else:
                raise ValueError("unknown op %r" % op["op"])
        except Exception as exc:
            result.update(error=type(exc).__name__, message=str(exc))
        if op["op"] == "restore":
            volume = db.volume_get(ctxt, result["volume_id"])
            try:
                rows = db.volume_glance_metadata_get(ctxt, volume.id)
            except exception.GlanceMetadataNotFound:
                rows = []
            with open(os.path.join(job["volume_dir"], volume.id), "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            result.update(volume_status=volume.status, bootable=volume.bootable,
                          glance={r.key: r.value for r in rows}, sha256=digest)
        results.append(result)
    return results


def main(argv):
    setup(argv[1])
    with open(argv[2]) as handle:
        job = json.load(handle)
    print(json.dumps(run(job)))


if __name__ == "__main__":
    main(sys.argv)
