"""docs/source/deployment.rst and tools/dev-cloud say the same.

dev-cloud reads the page's named blocks and writes them into cinder.conf as
they are, filling in only the page's site values (example.org hosts, "..."
secrets, /etc paths); everything else it writes is its loopback plumbing.
These tests render cinder.conf with dev-cloud's own functions for a made-up
cloud and compare it with the page, and check that the kolla-ansible and
openstack-ansible sections carry the same lines as the plain ones.
"""

import json
import os
import re

import pytest
import yaml

from tests.dev_servers import TOP, load_tool

PAGE = os.path.join(TOP, "docs", "source", "deployment.rst")
SEALED_SWIFT = "sealedmeta.cinder.swift.SealedSwiftBackupDriver"

# The made-up cloud's values for the page's site values.
KEYSTONE = "http://127.0.0.1:5001"
SWIFT_PREFIX = "http://127.0.0.1:5002/v1/AUTH_"
CEPH_CONF = "/cloud/ceph/ceph.conf"
REDIS = "redis://127.0.0.1:5003"
SEALEDMETA_PW = "pw-of-sealedmeta"
RESELLER_PW = "pw-of-reseller"
FILLED = {
    ("DEFAULT", "backup_swift_url"): SWIFT_PREFIX,
    ("DEFAULT", "backup_ceph_conf"): CEPH_CONF,
    ("sealedmeta_swift_service_user", "auth_url"): KEYSTONE + "/v3",
    ("sealedmeta_swift_service_user", "password"): RESELLER_PW,
    ("key_manager", "auth_url"): KEYSTONE + "/v3",
    ("key_manager", "password"): SEALEDMETA_PW,
    ("coordination", "backend_url"): REDIS,
}


@pytest.fixture(scope="module")
def tool():
    return load_tool("dev-cloud")


@pytest.fixture(scope="module")
def blocks(tool):
    return tool.page_blocks(PAGE)


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(data, handle)


@pytest.fixture
def env(tool, tmp_path):
    """A dev-cloud Env whose components' env.json files say what a running
    cloud's would (no server runs)."""
    env = tool.Env(str(tmp_path))
    env.state = tool.new_state(env.dir, "swift", "sealed")
    _write_json(env.p("openstack", "env.json"), {
        "keystone_url": KEYSTONE, "sealedmeta": {"password": SEALEDMETA_PW}})
    _write_json(env.p("swift", "env.json"), {
        "storage_url_prefix": SWIFT_PREFIX, "reseller_user": {"password": RESELLER_PW}})
    _write_json(env.p("ceph", "env.json"), {"conf": CEPH_CONF})
    _write_json(env.p("redis", "redis.json"), {"url": REDIS})
    return env


def _options(lines):
    """[(section, option, value)] of ini lines, in order."""
    found, section = [], "DEFAULT"
    for line in lines:
        s = line.strip()
        m = re.match(r"^\[([^\]]+)\]$", s)
        if m:
            section = m.group(1)
            continue
        kv = re.match(r"^([A-Za-z0-9_.-]+)\s*=\s*(.*)$", s)
        if kv and not s.startswith("#"):
            found.append((section, kv.group(1), kv.group(2)))
    return found


def _effective(text):
    """{(section, option): value}: the last value wins, as in oslo.config."""
    return {(s, o): v for s, o, v in _options(text.splitlines())}


def _page_part(conf_text):
    marker = "# ---- from docs/source/deployment.rst"
    plumbing, _, page = conf_text.partition(marker)
    assert page, "cinder.conf has no part taken from the page"
    return plumbing, page.split("\n", 1)[1].splitlines()


def _filled(lines):
    """The page's lines with the made-up cloud's site values."""
    out, section = [], "DEFAULT"
    for section_, option, value in _options(lines):
        section = section_
        out.append((section, option, FILLED.get((section, option), value)))
    return out


def test_the_page_has_every_block_dev_cloud_and_these_tests_use(blocks, tool):
    wanted = set(tool.BACKUP_BLOCKS.values()) | {
        tool.SEALEDMETA_BLOCK, tool.ADMIN_CONF_BLOCK, "kolla-cinder-backup-conf",
        "osa-user-variables"}
    assert wanted <= set(blocks), sorted(wanted - set(blocks))


@pytest.mark.parametrize("backup", ["swift", "ceph"])
def test_sealed_cinder_conf_is_the_page_lines_plus_plumbing(tool, blocks, env, backup):
    env.state["backup"] = backup
    text = tool.render_cinder_conf(env, "/venv", blocks)
    plumbing, page_lines = _page_part(text)
    expected = blocks[tool.BACKUP_BLOCKS[backup]] + [""] + blocks[tool.SEALEDMETA_BLOCK]
    # Line for line the page's, but for the site values, which are this
    # cloud's; comments and blank lines included.
    assert len(page_lines) == len(expected)
    for got, want in zip(page_lines, expected, strict=True):
        value = want.partition("=")[2].strip()
        if not ("=" in want and tool.SITE_VALUE.search(value)):
            assert got == want
    assert _options(page_lines) == _filled(expected)
    # Nothing of the page's examples is left in the file.
    assert not re.search(r"example\.org|= \.\.\.$", text, re.M)
    # The plumbing sets none of the page's options: what the operator's
    # lines say is what Cinder runs with.
    page_keys = {(s, o) for s, o, _ in _options(expected)}
    assert not page_keys & {(s, o) for s, o, _ in _options(plumbing.splitlines())}
    effective = _effective(text)
    for section, option, value in _filled(expected):
        assert effective[(section, option)] == value


@pytest.mark.parametrize("backup", ["swift", "ceph"])
def test_stock_cinder_conf_is_the_backup_block_with_the_stock_class(tool, blocks, env, backup):
    env.state.update(backup=backup, driver="stock")
    text = tool.render_cinder_conf(env, "/venv", blocks)
    _, page_lines = _page_part(text)
    expected = _filled(blocks[tool.BACKUP_BLOCKS[backup]])
    got = _options(page_lines)
    assert len(got) == len(expected)
    for (section, option, value), want in zip(got, expected, strict=True):
        if option == "backup_driver":
            assert value == tool.STOCK_DRIVERS[want[2]]
            assert value.startswith("cinder.backup.drivers.")
        else:
            assert (section, option, value) == want
    sections = {s for s, _, _ in _options(text.splitlines())}
    assert "sealedmeta" not in sections and "key_manager" not in sections


def test_the_page_names_the_stock_class_each_sealed_one_replaces(tool):
    with open(PAGE, encoding="utf-8") as handle:
        text = handle.read()
    for sealed, stock in tool.STOCK_DRIVERS.items():
        assert "``%s``" % stock in text and sealed in text


def test_the_admin_configuration_uses_the_same_keys(tool, blocks, env):
    admin = {(s, o): v for s, o, v in _options(blocks[tool.ADMIN_CONF_BLOCK])}
    cinder = {(s, o): v for s, o, v in _options(blocks[tool.SEALEDMETA_BLOCK])}
    for key in ("keystore", "keyring"):
        assert admin[("sealedmeta", key)] == cinder[("sealedmeta", key)]
    assert {k: v for k, v in admin.items() if k[0] == "key_manager"} == \
        {k: v for k, v in cinder.items() if k[0] == "key_manager"}
    assert ("coordination", "backend_url") in admin
    lines, used = tool.render_block(blocks[tool.ADMIN_CONF_BLOCK], FILLED)
    assert ("coordination", "backend_url", REDIS) in _options(lines)


def test_kolla_override_holds_the_plain_lines(tool, blocks):
    plain = blocks["cinder-backup-swift"] + [""] + blocks[tool.SEALEDMETA_BLOCK]
    assert blocks["kolla-cinder-backup-conf"] == plain


def test_openstack_ansible_variables_say_what_the_plain_lines_say(tool, blocks):
    variables = yaml.safe_load("\n".join(blocks["osa-user-variables"]))
    plain = _options(blocks["cinder-backup-swift"] + blocks[tool.SEALEDMETA_BLOCK])
    driver = [v for s, o, v in plain if o == "backup_driver"]
    assert variables["cinder_service_backup_driver"] == driver[0] == SEALED_SWIFT
    assert variables["cinder_service_backup_program_enabled"] is True
    overrides = {}
    for section, option, value in plain:
        if option != "backup_driver":
            overrides.setdefault(section, {})[option] = value
    got = {section: {option: str(value) for option, value in options.items()}
           for section, options in variables["cinder_cinder_conf_overrides"].items()}
    assert got == overrides
    assert any(p.startswith("sealedmeta[redis] @ ")
               for p in variables["cinder_user_pip_packages"])


def test_a_page_and_tool_disagreement_stops_the_rendering(tool):
    # A real value the tool would replace: refused.
    with pytest.raises(tool.Failure, match=r"\[sealedmeta\] keyring = cinder-backup is not "
                                           r"a site value of the page"):
        tool.render_block(["[sealedmeta]", "keyring = cinder-backup"],
                          {("sealedmeta", "keyring"): "x"})
    # A site value the tool does not fill in: refused.
    with pytest.raises(tool.Failure, match=r"\[barbican\] barbican_endpoint = "
                                           r"https://barbican.example.org is a site value"):
        tool.render_block(["[barbican]", "barbican_endpoint = https://barbican.example.org"],
                          FILLED)
    # Plumbing that sets an option of the page: refused.
    with pytest.raises(tool.Failure, match=r"the plumbing sets options the page sets: "
                                           r"\[\('DEFAULT', 'backup_driver'\)\]"):
        tool.cinder_conf_text("[DEFAULT]\nbackup_driver = x\n",
                              ["[DEFAULT]", "backup_driver = " + SEALED_SWIFT], ["b"])
