"""Everything below FiftyOne's public API, behind one small interface.

Why (measured on 2 cores): reading 1M vectors with ``values()`` takes minutes,
raw batches split with numpy ~25 s; writing 100k Classifications with
``set_values`` ~15 s, templated raw ``update`` commands ~2-5 s; and the
cache needs facts FiftyOne does not expose (each sample's ``last_modified_at``
read atomically with its vector, a covered stamp of the whole collection,
conditional writes). The workflow never sees BSON, stamps or writer clocks: it
uses the names below, and IDs as ``S12`` numpy arrays.
"""

from .codec import ID_DTYPE, NO_LMA, DimensionError, VectorError, crc32, now_ms, to_bytes, to_str
from .reads import (
    changed_after,
    count,
    database_id,
    dataset_ids,
    ids_matching,
    label_flags,
    read_vectors,
    scan_lma,
    scan_vectors,
    stamp,
    stamp_of,
    stored_app_config,
    stored_fields,
    view_ids,
)
from .writes import (
    PredictionWriter,
    WriteError,
    not_written,
    remove_predictions,
    remove_run_predictions,
    set_label_flags,
    unset_fields,
)
