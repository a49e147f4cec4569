"""Shared set-up for the benchmarks: environment, plugin loading, helpers."""

import os
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, "bench", ".cache")
sys.path.insert(0, os.path.join(REPO, "scripts"))
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FEWSHOT_CACHE_DIR", os.path.join(CACHE, "fewshot-cache"))
PLUGINS = os.path.join(CACHE, "plugins")
URI = "@fewshot/few_shot_learning/"


def load_plugin():
    """Points FiftyOne at this checkout; returns the plugin package."""
    import devplugin

    return devplugin.load_plugin(PLUGINS)


def op(name, ds, view=None, **params):
    import fiftyone.operators as foo

    ctx = {"dataset": ds, "params": params}
    if view is not None:
        ctx["view"] = view
    return foo.execute_operator(URI + name, ctx=ctx).result


class PeakRSS(object):
    """Samples this process's RSS in a thread; ``peak - start`` in bytes."""

    def __enter__(self):
        import psutil

        self._p = psutil.Process()
        self.start = self.peak = self._p.memory_info().rss
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, self._p.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *a):
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, self._p.memory_info().rss)

    @property
    def delta(self):
        return self.peak - self.start


def timed(fn, *a, **kw):
    t = time.perf_counter()
    r = fn(*a, **kw)
    return time.perf_counter() - t, r
