"""Session state in the execution store: bounded stored values, atomic lists."""

from conftest import run


def _state_mod():
    import importlib

    return importlib.import_module("fiftyone.plugins.orgs.fewshot.few_shot_learning.operators.state")


def test_million_id_subset_is_chunked_under_the_document_limit(ds, plugin):
    import bson
    from bson import ObjectId

    st = _state_mod()
    state = st.SessionState(ds)
    ids = [str(ObjectId()) for _ in range(1_000_000)]
    state.set_ids(st.SUBSET, ids, view_key="k", size=len(ids))
    meta = state.get_meta(st.SUBSET)
    assert meta["count"] == 1_000_000 and meta["chunks"] == -(-1_000_000 // st.CHUNK_SIZE)
    # every stored value is far below MongoDB's 16 MB document cap
    from fiftyone.factory.repos.execution_store import MongoExecutionStoreRepo
    import fiftyone.core.odm as foo

    coll = foo.get_db_conn()[MongoExecutionStoreRepo.COLLECTION_NAME]
    sizes = [len(bson.BSON.encode(d)) for d in coll.find({"store_name": st.STORE_NAME, "dataset_id": ds._doc.id})]
    assert max(sizes) < 2 * 1024 * 1024
    # a fresh reader sees the same list
    assert st.SessionState(ds).get_ids(st.SUBSET) == ids
    # replacing it removes the old chunks
    state.set_ids(st.SUBSET, ids[:10], view_key="k", size=10)
    n_docs = coll.count_documents({"store_name": st.STORE_NAME, "dataset_id": ds._doc.id})
    assert n_docs == 2  # meta + one chunk
    assert st.SessionState(ds).get_ids(st.SUBSET) == ids[:10]


def test_state_is_the_ctx_store_and_scoped_to_the_dataset(ds, base_dataset, plugin):
    st = _state_mod()
    run("start_session", ds, embedding_field="efficientnet_lite0_imagenet_embeddings")
    assert st.get_store(ds).get(st.SESSION_KEY)["embedding_field"] == "efficientnet_lite0_imagenet_embeddings"
    assert st.get_store(base_dataset).get(st.SESSION_KEY) is None
