"""What the console shows besides results: one line per error, no library
noise (found by running the guides' commands where Cinder and Barbican are
installed)."""

import logging
import warnings

import pytest

from tests import sm_cli


class EventletDeprecationWarning(Warning):
    """As eventlet defines it: a plain Warning, not a DeprecationWarning."""


@pytest.fixture
def run_main(tmp_path):
    """main(argv) on a file store in tmp_path; logging as the command left
    it until the test ends."""
    with sm_cli.logging_kept():
        yield lambda *argv: sm_cli.main("--key-repository", str(tmp_path / "keys"),
                                        *argv)


def test_eventlet_deprecation_is_not_shown(run_main):
    # Where Cinder is installed, tooz imports eventlet, which warns on
    # stderr before every command's output.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_main("keyring", "list", "-f", "json") == 0
        warnings.warn("\nEventlet is deprecated. It is currently being maintained"
                      " in bugfix mode", EventletDeprecationWarning)
        warnings.warn("another warning", UserWarning)
    assert [str(w.message) for w in caught] == ["another warning"]


def test_barbicanclient_errors_are_not_a_second_line(run_main, capsys):
    # barbicanclient logs "4xx Client error: ..." at ERROR for every 4xx;
    # the key store reports the same failure in its own one line.
    assert run_main("keyring", "list", "-f", "json") == 0
    capsys.readouterr()
    logging.getLogger("barbicanclient.client").error(
        "4xx Client error: Forbidden: Containers(s) retrieval attempt not allowed")
    logging.getLogger("sealedmeta.cmd.scan").error("our own error")
    err = capsys.readouterr().err
    assert "4xx Client error" not in err
    assert "sealedmeta: our own error" in err


def test_barbicanclient_errors_shown_when_very_verbose(run_main, capsys):
    assert run_main("-v", "-v", "keyring", "list", "-f", "json") == 0
    capsys.readouterr()
    logging.getLogger("barbicanclient.client").error("4xx Client error: Forbidden")
    assert "4xx Client error: Forbidden" in capsys.readouterr().err
