"""conftest.py - pytest fixtures shared by every facteur system test.

Fixtures:
  instance       an Instance (facteur_harness.py), configured by the test with
                 instance.configure(params, services) and started with
                 instance.start(); always stopped (nothing may be left running)
                 and removed afterwards.
  make_instance  a factory for tests that need several instances; each one
                 is cleaned up the same way.
  free_port      a function returning a free loopback TCP port.

facteur_harness also has Dialogue (send/expect line conversations with
STARTTLS), AttrClient and anvil_request (lib/attr requests), free_port,
wait_until, and /proc helpers (service pids, uids, chroot, socket inodes).

Helpers for tests: require_daemon("anvil") fails the test with a clear
message when the daemon is not built (a missing daemon is a failure of
`make check`, not a reason to pass quietly).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import facteur_harness as fh  # noqa: E402


def require_daemon(*names):
    for name in names:
        path = os.path.join(fh.LIBEXEC, name)
        if not os.access(path, os.X_OK):
            pytest.fail("%s is not built (%s missing)" % (name, path), pytrace=False)


def require_command(*names):
    for name in names:
        path = os.path.join(fh.BIN, name)
        if not os.access(path, os.X_OK):
            pytest.fail("%s is not built (%s missing)" % (name, path), pytrace=False)


@pytest.fixture
def free_port():
    return fh.free_port


@pytest.fixture
def make_instance(request):
    made = []

    def make(name=None):
        inst = fh.Instance(name=name or request.node.name[:40].replace("/", "_"))
        made.append(inst)
        return inst

    yield make
    errors = []
    for inst in made:
        if inst.started or inst.instance_pids():
            errors += inst.stop(check=False)
        inst.cleanup()
    if errors:
        pytest.fail("instance teardown: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def instance(make_instance):
    return make_instance()
