"""Options of the Barbican key store (``[barbican_store]``), and castellan's
own ``[barbican]`` and ``[key_manager]`` that it reads."""

from castellan.common import utils as castellan_utils
from castellan.key_manager import barbican_key_manager
from oslo_config import cfg

GROUP = "barbican_store"

barbican_store_opts = [
    cfg.StrOpt("name_prefix", default="sealedmeta",
               help="Prefix of the names of the secrets and containers this "
                    "store creates in Barbican."),
    cfg.FloatOpt("timeout", default=10.0, min=0.1,
                 help="Seconds to wait for one Barbican or Keystone answer."),
    cfg.IntOpt("read_retries", default=2, min=0,
               help="Retries (with backoff) of reads that failed to connect "
                    "or got a 5xx answer. Writes are never retried blindly."),
    cfg.StrOpt("noauth_project_id",
               help="DEVELOPMENT AND TESTS ONLY: talk to a Barbican that runs "
                    "without Keystone, sending this project id and the "
                    "member role in headers. Leave unset in production, where "
                    "castellan's [key_manager] credentials are used."),
    cfg.StrOpt("noauth_user_id", default="sealedmeta",
               help="DEVELOPMENT AND TESTS ONLY: the user id sent with "
                    "noauth_project_id; Barbican records it as the creator "
                    "of what this store creates."),
]



def register_opts(conf):
    conf.register_opts(barbican_store_opts, group=GROUP)
    # castellan's own options: [barbican] and [key_manager].
    conf.register_opts(barbican_key_manager._barbican_opts, group="barbican")
    conf.register_opts(castellan_utils.credential_opts, group="key_manager")


def list_opts():
    return [(GROUP, barbican_store_opts)]
