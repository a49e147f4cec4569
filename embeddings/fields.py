"""Embedding fields: validation against a model, reading, computing the missing.

When the plugin computes embeddings into a field it records the model (and the
dimension) in the field's ``info`` under ``"fewshot"``, so a later session can
refuse to mix vectors of two models in one field.
"""

import numpy as np

INFO_KEY = "fewshot"


class EmbeddingError(ValueError):
    """A user-facing problem with an embedding field or model."""


def _vector_field_types():
    import fiftyone as fo

    return (fo.VectorField, fo.ArrayField)


def check_field_type(dataset, field):
    """Returns True if ``field`` exists as a vector field, False if absent.

    Raises :class:`EmbeddingError` if it exists with another type.
    """
    import fiftyone as fo

    schema = dataset.get_field_schema()
    if field not in schema:
        return False
    f = schema[field]
    if isinstance(f, _vector_field_types()):
        return True
    if isinstance(f, fo.ListField) and isinstance(
        f.field, (fo.FloatField, fo.IntField)
    ):
        return True
    raise EmbeddingError(
        "Field '%s' is a %s, not an embedding (vector) field"
        % (field, type(f).__name__)
    )


def recorded_info(dataset, field):
    """What the plugin recorded on ``field`` ({} if nothing)."""
    f = dataset.get_field(field)
    if f is None:
        return {}
    return dict((getattr(f, "info", None) or {}).get(INFO_KEY) or {})


def record_info(dataset, field, model_name, dim):
    """Records the model and dimension on ``field`` (keeps the user's info)."""
    f = dataset.get_field(field)
    info = dict(getattr(f, "info", None) or {})
    info[INFO_KEY] = {"model": model_name, "dim": int(dim)}
    f.info = info
    f.save()


def existing_dim(dataset, field):
    """The dimension of one stored vector in ``field`` (None if none stored)."""
    if not dataset.has_field(field):
        return None
    sample = dataset.exists(field).limit(1).values(field)
    if not sample:
        return None
    return int(np.asarray(sample[0]).size)


def missing_ids(dataset, ids, field):
    """IDs among ``ids`` whose ``field`` is unset."""
    if not dataset.has_field(field):
        return list(ids)
    return dataset.select(ids).exists(field, False).values("id")


def stack_vectors(vecs, dim=None):
    """Stacks a list of vectors (no Nones) into a float32 matrix.

    Raises :class:`EmbeddingError` if the dimensions disagree.
    """
    if not vecs:
        return np.zeros((0, dim or 0), dtype=np.float32)
    sizes = {np.asarray(v).size for v in vecs}
    if dim is not None:
        sizes.add(int(dim))
    if len(sizes) > 1:
        raise EmbeddingError(
            "Embeddings of different dimensions found (%s); the field mixes models"
            % ", ".join(str(s) for s in sorted(sizes))
        )
    return np.asarray(np.stack([np.asarray(v).ravel() for v in vecs]), dtype=np.float32)


PROBE_MAX = 8  # samples tried for the model's dimension before giving up


def model_dim(probe_view, model, model_name):
    """The dimension of ``model``'s embeddings: the first of (at most
    ``PROBE_MAX``) samples of ``probe_view`` it can embed, one at a time, not
    stored. A file it cannot read gives no vector (FiftyOne skips failures),
    which was taken for a 1-d embedding and blamed on the model."""
    tried = []
    for sample in probe_view.limit(PROBE_MAX).select_fields():
        vec = probe_view.select(sample.id).compute_embeddings(model, progress=False)[0]
        if vec is not None:
            return int(np.asarray(vec).size)
        tried.append(sample.filepath)
    raise EmbeddingError(
        "Model '%s' could not embed any of the %d samples tried (%s): are they readable images? "
        "Fix or move them, or leave them out of the view" % (model_name, len(tried), ", ".join(tried[:3]))
    )


def check_model_dim(probe_view, field, model, model_name):
    """Checks that ``model``'s dimension (:func:`model_dim` of ``probe_view``)
    matches the vectors already in ``field``; returns the model's dimension."""
    have = existing_dim(probe_view._root_dataset, field)
    got = model_dim(probe_view, model, model_name)
    if have is not None and got != have:
        raise EmbeddingError(
            "Model '%s' makes %d-d embeddings but field '%s' holds %d-d ones"
            % (model_name, got, field, have)
        )
    return got


def compute_missing(dataset, ids, field, model, model_name, progress=None, batch_size=None):
    """Computes ``model`` embeddings into ``field`` for ``ids`` that lack them.

    Checks first that the model's dimension agrees with vectors already in the
    field, and records the model on the field before the first write: a
    compute that dies midway leaves vectors of this model only, and another
    model must not fill the rest and claim them. Returns the number of samples
    computed (those the model could not embed, unreadable files, stay missing).
    """
    todo = missing_ids(dataset, ids, field)
    if not todo:
        return 0

    rec = recorded_info(dataset, field)
    if rec.get("model") != model_name or rec.get("dim") != existing_dim(dataset, field):
        # (a field recorded as this model's, before its first write, needs no probe,
        # which an unreadable file would fail)
        dim = check_model_dim(dataset.select(todo[:PROBE_MAX]), field, model, model_name)
        if not dataset.has_field(field):
            import fiftyone as fo

            dataset.add_sample_field(field, fo.VectorField)
        record_info(dataset, field, model_name, dim)

    n = len(todo)
    step = max(64, min(1024, n // 20 or 1))
    done = 0
    for i in range(0, n, step):
        chunk = dataset.select(todo[i : i + step])
        chunk.compute_embeddings(
            model, embeddings_field=field, batch_size=batch_size, progress=False
        )
        done += len(todo[i : i + step])
        if progress is not None:
            progress(done / n, "Computed %d/%d embeddings (%s)" % (done, n, model_name))

    return n - len(missing_ids(dataset, todo, field))
