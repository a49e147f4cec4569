"""Loads this checkout as the FiftyOne plugin (for the demo and the benchmarks)."""

import importlib
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URI = "@fewshot/few_shot_learning/"
PACKAGE = "fiftyone.plugins.orgs.fewshot.few_shot_learning"


class PluginModules(object):
    """``plugin.embeddings.cache`` etc.: each module looked up by its full name
    when used. FiftyOne re-imports the plugin package when the plugin is
    loaded again, and the fresh package lacks the attributes of the submodules
    that stay imported (a second ``load_plugin`` failed on ``plugin.embeddings``)."""

    def __init__(self, name=PACKAGE):
        self.__name__ = name

    def __getattr__(self, attr):
        full = self.__name__ + "." + attr
        try:
            mod = importlib.import_module(full)
        except ModuleNotFoundError as e:
            if e.name != full:  # (a module it imports is missing: say so)
                raise
            return getattr(importlib.import_module(self.__name__), attr)
        return PluginModules(full) if hasattr(mod, "__path__") else mod


def load_plugin(plugins_dir):
    """Links the checkout into ``plugins_dir``, points FiftyOne at it and
    returns the plugin's modules (:class:`PluginModules`)."""
    os.makedirs(plugins_dir, exist_ok=True)
    link = os.path.join(plugins_dir, "few_shot_learning")
    if not os.path.islink(link):
        os.symlink(REPO, link)
    os.environ["FIFTYONE_PLUGINS_DIR"] = plugins_dir
    import fiftyone as fo
    import fiftyone.operators as foo

    fo.config.plugins_dir = plugins_dir
    assert foo.get_operator(URI + "get_session") is not None
    return PluginModules()
