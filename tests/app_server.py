"""Serves the App on 127.0.0.1 for the browser test: ``app_server.py DATASET PORT``."""

import sys

import fiftyone as fo

if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    session = fo.launch_app(fo.load_dataset(name), remote=True, address="127.0.0.1", port=port, auto=False)
    print("READY", flush=True)
    session.wait(-1)
