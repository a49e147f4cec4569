"""A private MongoDB server for fault tests, and client processes that use it.

The suite's FiftyOne database is shared by every process that attaches to it, and
its server has no test commands. Fault tests start their own ``mongod`` (the
binary FiftyOne's database wheel installed) on a free loopback port, with
``enableTestCommands`` so ``failCommand`` fail points can stall or fail chosen
commands, and run FiftyOne clients as subprocesses pointed at it with
``FIFTYONE_DATABASE_URI`` (FiftyOne connects once per process).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))

from scale_out import mongod_binary  # noqa: E402  (one lookup for the scripts and the tests)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(dbpath, folder, port, *extra):
    """A ``mongod`` on loopback ``port`` with test commands enabled, its log
    and unix socket in the throwaway ``folder`` (killed, mongod cannot remove
    its socket: 76 mongodb-<port>.sock had piled up in /tmp)."""
    return subprocess.Popen(
        [mongod_binary(), "--dbpath", dbpath, "--port", str(port), "--bind_ip", "127.0.0.1",
         "--setParameter", "enableTestCommands=1", "--logpath", os.path.join(folder, "mongod.log"),
         "--unixSocketPrefix", folder, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


class Mongod(object):
    """A throwaway ``mongod`` (standalone) with test commands enabled."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fewshot-mongod-")
        self.port = free_port()
        os.makedirs(os.path.join(self.dir, "db"))
        self.proc = _start(os.path.join(self.dir, "db"), self.dir, self.port)
        self.uri = "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=5000" % self.port
        self._wait()

    def _wait(self):
        import pymongo

        deadline = time.time() + 60
        while True:
            try:
                pymongo.MongoClient(self.uri).admin.command("ping")
                return
            except Exception:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("mongod did not start (see %s)" % self.dir)
                time.sleep(0.2)

    def client(self):
        import pymongo

        return pymongo.MongoClient(self.uri)

    def fail_point(self, mode, **data):
        """``configureFailPoint failCommand`` (mode "off" turns it off)."""
        cmd = {"configureFailPoint": "failCommand", "mode": mode}
        if data:
            cmd["data"] = data
        self.client().admin.command(cmd)

    def stop(self):
        self.proc.send_signal(signal.SIGKILL)  # SIGTERM takes seconds; the data is throwaway
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def client_env(uri, cache_dir=None):
    env = dict(os.environ)
    env["FIFTYONE_DATABASE_URI"] = uri
    env["FIFTYONE_DATABASE_VALIDATION"] = "false"
    env["FIFTYONE_DO_NOT_TRACK"] = "true"
    if cache_dir is not None:
        env["FEWSHOT_CACHE_DIR"] = cache_dir
    return env


def start_client(code, env, **popen_kw):
    """Starts ``tests/client.py`` running ``code`` (see there); returns the Popen."""
    return subprocess.Popen(
        [sys.executable, os.path.join(HERE, "client.py"), code], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kw
    )


def run_client(code, env, timeout=300):
    """Runs ``code`` in a client process; returns its ``out`` (JSON) value."""
    p = start_client(code, env)
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("client failed (%d):\n%s\n%s" % (p.returncode, out[-3000:], err[-5000:]))
    return json.loads(out.strip().splitlines()[-1])


class ReplicaSet(object):
    """A throwaway 3-member replica set (``rs0``) of the same binary on free
    loopback ports, elections sped up (``electionTimeoutMillis`` 2000)."""

    def __init__(self, members=3):
        self.dir = tempfile.mkdtemp(prefix="fewshot-rs-")
        self.ports = [free_port() for _ in range(members)]
        self.procs = {}
        for p in self.ports:
            d = os.path.join(self.dir, str(p))
            os.makedirs(d)
            self.procs[p] = _start(d, d, p, "--replSet", "rs0")
        self.uri = "mongodb://%s/?replicaSet=rs0&serverSelectionTimeoutMS=3000" % ",".join(
            "127.0.0.1:%d" % p for p in self.ports)
        self._initiate()

    def _node(self, port):
        import pymongo

        return pymongo.MongoClient("mongodb://127.0.0.1:%d/?directConnection=true" % port)

    def _initiate(self):
        deadline = time.time() + 60
        while True:
            try:
                self._node(self.ports[0]).admin.command("replSetInitiate", {
                    "_id": "rs0", "settings": {"electionTimeoutMillis": 2000},
                    "members": [{"_id": i, "host": "127.0.0.1:%d" % p} for i, p in enumerate(self.ports)]})
                break
            except Exception:
                if time.time() > deadline:
                    raise RuntimeError("replica set did not start (see %s)" % self.dir)
                time.sleep(0.3)
        self.primary(timeout=60)

    def client(self):
        import pymongo

        return pymongo.MongoClient(self.uri)

    def primary(self, timeout=30):
        """The port of the current primary (waits for one)."""
        deadline = time.time() + timeout
        while True:
            for p in self.ports:
                if self.procs[p].poll() is None:
                    try:
                        if self._node(p).admin.command("hello").get("isWritablePrimary"):
                            return p
                    except Exception:
                        pass
            if time.time() > deadline:
                raise RuntimeError("no primary")
            time.sleep(0.2)

    def fail_point(self, port, mode, **data):
        cmd = {"configureFailPoint": "failCommand", "mode": mode}
        if data:
            cmd["data"] = data
        self._node(port).admin.command(cmd)

    def kill(self, port):
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait()

    def stop(self):
        for p in self.ports:
            if self.procs[p].poll() is None:
                self.kill(p)
        shutil.rmtree(self.dir, ignore_errors=True)
