def record(ds, field, model, dim):
    """Records ``model`` on ``field`` the way the plugin does after computing."""
    f = ds.get_field(field)
    info = dict(f.info or {})
    info["fewshot"] = {"model": model, "dim": dim}
    f.info = info
    f.save()
