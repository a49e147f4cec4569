"""scripts/devplugin.py, which the demo and the benchmarks load the plugin with."""

import devplugin

from conftest import _plugins


def test_load_plugin_twice_keeps_its_modules(fo):
    """Each load re-imports the plugin package (FiftyOne reloads plugins),
    while its submodules stay imported: the benchmark's second data set then
    failed on ``plugin.embeddings`` (AttributeError) on a fresh machine."""
    first = devplugin.load_plugin(_plugins)
    second = devplugin.load_plugin(_plugins)
    for p in (first, second):
        assert p.embeddings.zoo.default_embedding_field("efficientnet-lite0-imagenet-torch")
        assert callable(p.embeddings.cache.clear) and p.fastdb.writes.__name__.endswith("fastdb.writes")
