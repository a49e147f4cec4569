"""The tests of pure modules (codecs, params, metrics, scoring) need neither
FiftyOne nor a database: run them alone with a database address that leads
nowhere and check FiftyOne was never imported."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_unit_tests_run_without_fiftyone_or_a_database():
    code = (
        "import sys, pytest\n"
        "rc = pytest.main(['-q', '-p', 'no:cacheprovider', %r])\n"
        "assert rc == 0, rc\n"
        "assert 'fiftyone' not in sys.modules, 'a unit test imported fiftyone'\n"
        "print('isolated ok')" % os.path.join(HERE, "unit")
    )
    env = dict(os.environ, FIFTYONE_DATABASE_URI="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.path.dirname(HERE),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "isolated ok" in out.stdout
