"""scripts/devplugin.py, which the demo and the benchmarks load the plugin with."""

import os

import devplugin

from conftest import REPO, _plugins


def test_load_plugin_twice_keeps_its_modules(fo):
    """Each load re-imports the plugin package (FiftyOne reloads plugins),
    while its submodules stay imported: the benchmark's second data set then
    failed on ``plugin.embeddings`` (AttributeError) on a fresh machine."""
    first = devplugin.load_plugin(_plugins)
    second = devplugin.load_plugin(_plugins)
    for p in (first, second):
        assert p.embeddings.zoo.default_embedding_field("efficientnet-lite0-imagenet-torch")
        assert callable(p.embeddings.cache.clear) and p.fastdb.writes.__name__.endswith("fastdb.writes")


def test_bench_embed_completes_a_partial_dataset(fo, png_dir, monkeypatch):
    """A benchmark killed while it built its data set left a partial one,
    which the next run reused as the whole (585 of 1,797 digits, silently)."""
    import sys

    import fmnist

    sys.path.insert(0, os.path.join(REPO, "bench"))
    import common
    import fmnist_embeddings

    monkeypatch.setattr(common, "load_plugin", lambda: devplugin.load_plugin(_plugins))
    rows = fmnist.write_pngs(png_dir, 6, start=300)
    name = "fewshot-test-bench-partial"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    try:
        ds.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=c))
                       for p, c in rows[:2]])  # (as if killed here)
        X, labels = fmnist_embeddings.embed(name, rows)
        assert X.shape == (6, 1280)
        assert sorted(zip(ds.values("filepath"), labels)) == sorted(rows)
    finally:
        ds.delete()
