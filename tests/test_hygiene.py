"""The suite leaves nothing of its own behind in the machine's temp folder
(160 plugin and cache folders and 76 mongod sockets had piled up in /tmp here)."""

import glob
import os
import re
import subprocess
import sys

from conftest import HERE_TESTS, REPO
from mongod import Mongod


def test_a_killed_private_mongod_leaves_no_socket_in_tmp():
    m = Mongod()
    port = m.port
    assert os.path.exists(os.path.join(m.dir, "mongodb-%d.sock" % port))
    m.stop()  # SIGKILL: mongod cannot remove its own socket
    assert not os.path.exists("/tmp/mongodb-%d.sock" % port)


def test_a_pytest_run_removes_its_plugins_and_cache_folders(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                        os.path.join(HERE_TESTS, "test_hygiene.py")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"\d+ tests? collected", r.stdout), r.stdout  # (conftest ran, in this TMPDIR)
    assert glob.glob(str(tmp / "fewshot-*")) == []
