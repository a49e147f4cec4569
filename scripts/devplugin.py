"""Loads this checkout as the FiftyOne plugin (for the demo and the benchmarks)."""

import importlib
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URI = "@fewshot/few_shot_learning/"


def load_plugin(plugins_dir):
    """Links the checkout into ``plugins_dir``, points FiftyOne at it and
    returns the plugin package as FiftyOne imports it."""
    os.makedirs(plugins_dir, exist_ok=True)
    link = os.path.join(plugins_dir, "few_shot_learning")
    if not os.path.islink(link):
        os.symlink(REPO, link)
    os.environ["FIFTYONE_PLUGINS_DIR"] = plugins_dir
    import fiftyone as fo
    import fiftyone.operators as foo

    fo.config.plugins_dir = plugins_dir
    assert foo.get_operator(URI + "get_session") is not None
    return importlib.import_module("fiftyone.plugins.orgs.fewshot.few_shot_learning")
