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


def check_model_dim(probe_view, field, model, model_name):
    """Embeds the first sample of ``probe_view`` (not stored) and checks that the
    model's dimension matches the vectors already in ``field``."""
    have = existing_dim(probe_view._root_dataset, field)
    if have is None:
        return
    probe = probe_view.limit(1).compute_embeddings(model, progress=False)
    got = int(np.asarray(probe[0]).size)
    if got != have:
        raise EmbeddingError(
            "Model '%s' makes %d-d embeddings but field '%s' holds %d-d ones"
            % (model_name, got, field, have)
        )


def compute_missing(dataset, ids, field, model, model_name, progress=None, batch_size=None):
    """Computes ``model`` embeddings into ``field`` for ``ids`` that lack them.

    Checks first that the model's dimension agrees with vectors already in the
    field. Returns the number of samples computed.
    """
    todo = missing_ids(dataset, ids, field)
    if not todo:
        return 0

    if dataset.has_field(field):
        check_model_dim(dataset.select(todo[:1]), field, model, model_name)

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

    dim = existing_dim(dataset, field)
    record_info(dataset, field, model_name, dim)
    return n
