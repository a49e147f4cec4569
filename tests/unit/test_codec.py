"""fastdb.codec: raw BSON in and out with numpy, checked against pymongo's bson."""

import datetime
import io
import zlib

import bson
import numpy as np
from bson import Binary, ObjectId
from bson.son import SON

from few_shot_learning.fastdb import codec


def vec(x):
    f = io.BytesIO()
    np.save(f, np.asarray(x, dtype=np.float32))
    return zlib.compress(f.getvalue())


T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000)
MS = codec.lma_ms(T0)


def doc(value=..., a=T0, oid=None, extra=None):
    d = SON([("_id", oid or ObjectId())])
    if a is not ...:
        d["a"] = a
    if value is not ...:
        d["b"] = value
    for k, v in (extra or {}).items():
        d[k] = v
    return d


def test_ids_round_trip_with_trailing_zero_bytes():
    ids = ["0123456789abcdef01234500", "0123456789abcdef00000000", str(ObjectId())]
    assert codec.to_str(codec.to_bytes(ids)) == ids


def test_lma_ms_matches_bson_dates():
    opts = bson.CodecOptions(datetime_conversion=bson.codec_options.DatetimeConversion.DATETIME_MS)
    assert MS == int(bson.decode(bson.encode({"a": T0}), codec_options=opts)["a"])
    assert codec.lma_ms(None) == codec.NO_LMA


def test_raw_batch_split_matches_bson_decoding():
    """Whatever the layout: vectors, absent/None/list values, other binary
    subtypes, extra fields, missing or null dates, IDs ending in zero bytes,
    vector bytes that look like document structure."""
    tricky = zlib.compress(b"\x07_id\x00" + b"\x00" * 40)
    docs = [
        doc(vec([1, 2, 3])),
        doc(vec([4, 5, 6]), oid=ObjectId("0123456789abcdef00000000")),
        doc(),
        doc(None),
        doc([1.5, 2.5]),
        doc(Binary(b"\x01\x02", 5)),
        doc(vec([7, 8, 9]), extra={"filepath": "/x.png"}),
        doc(b"\x07_id\x00" * 9),
        doc(tricky),
        doc(b""),
        doc(vec([1, 1, 1]), a=None),
        doc(vec([2, 2, 2]), a=...),
    ]
    batch = b"".join(bson.encode(d) for d in docs)
    ids, lma, values = codec.split_batch(batch)
    want = bson.decode_all(batch)
    assert codec.to_str(ids) == [str(d["_id"]) for d in want]
    assert lma.tolist() == [MS] * 10 + [-1, -1]
    got = [bytes(v) if isinstance(v, memoryview) else v for v in values]
    assert got == [d.get("b") for d in want]
    # the plain vectors took the fast path (no decoding), the odd ones did not
    assert [isinstance(v, memoryview) for v in values] == [1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert len(codec.split_batch(b"")[0]) == 0
    # a last document shorter than the fixed peeks reach
    short = bson.encode(doc(vec([1]))) + bson.encode({"_id": ObjectId()})
    assert codec.split_batch(short)[2][1] is None


def test_id_and_id_lma_batches():
    oids = [ObjectId() for _ in range(5)] + [ObjectId("0123456789abcdef00000000")]
    b = b"".join(bson.encode({"_id": o}) for o in oids)
    assert codec.to_str(codec.split_id_batch(b)) == [str(o) for o in oids]
    b = b"".join(bson.encode(SON([("_id", o), ("a", T0)])) for o in oids)
    ids, lma = codec.split_id_lma_batch(b)
    assert codec.to_str(ids) == [str(o) for o in oids] and lma.tolist() == [MS] * 6
    odd = bson.encode(SON([("_id", oids[0])])) + bson.encode(SON([("_id", oids[1]), ("a", None)]))
    ids, lma = codec.split_id_lma_batch(odd)
    assert lma.tolist() == [-1, -1] and codec.to_str(ids) == [str(oids[0]), str(oids[1])]


def test_decode_and_normalize_vectors():
    dec = codec.NpyDecoder()
    raws = [zlib.decompress(vec([3, 4])), zlib.decompress(vec([0, 0])), None, [1.0, 0.0],
            zlib.decompress(vec([np.nan, 1]))]
    X, present, dim = codec.decode_vectors(raws, dec, None)
    assert dim == 2 and present.tolist() == [True, True, False, True, True]
    valid = codec.normalize_rows(X, present)
    assert valid.tolist() == [True, False, False, True, False]
    assert np.allclose(X[0], [0.6, 0.8]) and not X[1].any() and not X[4].any()
    try:
        codec.decode_vectors([zlib.decompress(vec([1, 2, 3]))], dec, 2)
        raise AssertionError("no error")
    except codec.DimensionError as e:
        assert "dimensions" in str(e)


def test_prediction_updates_decode_to_what_they_say():
    ids = codec.to_bytes(["0123456789abcdef01234500", "0123456789abcdef00000000", str(ObjectId())])
    lma = np.array([MS, codec.NO_LMA, MS + 5])
    now = MS + 1000
    recs = codec.encode_predictions("pred", "p_positive", ids, lma, np.array([True, False, True]),
                                    np.array([0.9, 0.8, 1.0]), np.array([0.9, 0.2, 1.0]),
                                    "0123456789abcdef", 7, now)
    opts = bson.CodecOptions(datetime_conversion=bson.codec_options.DatetimeConversion.DATETIME_MS)
    docs = [bson.decode(r, codec_options=opts) for r in recs]
    assert [str(d["q"]["_id"]) for d in docs] == codec.to_str(ids)
    sets = [d["u"][0]["$set"] for d in docs]
    conds = [s["pred"]["$cond"][0]["$eq"] for s in sets]
    assert [int(c[1]) for c in (conds[0], conds[2])] == [MS, MS + 5]
    assert conds[1] == [{"$ifNull": ["$last_modified_at", None]}, None]
    assert all(s["last_modified_at"]["$cond"][0] == s["pred"]["$cond"][0] for s in sets)
    assert all(s["pred"]["$cond"][2] == "$pred" for s in sets)
    labels = [s["pred"]["$cond"][1]["$literal"] for s in sets]
    assert [l["label"] for l in labels] == ["positive", "negative", "positive"]
    assert [l["confidence"] for l in labels] == [0.9, 0.8, 1.0]
    assert [l["p_positive"] for l in labels] == [0.9, 0.2, 1.0]
    assert {(l["run_id"], l["iteration"]) for l in labels} == {("0123456789abcdef", 7)}
    assert len({l["_id"] for l in labels}) == 3
    assert all(int(s["last_modified_at"]["$cond"][1]) == now for s in sets)


def test_stamp_of_matches_its_definition():
    from few_shot_learning.fastdb.reads import P1, P2, stamp_of

    lma = np.array([MS, MS + 1, codec.NO_LMA, 2 * MS])
    v = [MS, MS + 1, 2 * MS]
    assert stamp_of(lma) == [4, sum(x % P1 for x in v), sum((x % P2) ** 2 for x in v)]
    # one changed time changes it
    assert stamp_of(lma) != stamp_of(np.array([MS, MS + 2, codec.NO_LMA, 2 * MS]))


def test_cache_checksums_read_through_the_map_equal_the_files_crc(tmp_path, monkeypatch):
    from few_shot_learning.embeddings import cache

    monkeypatch.setattr(cache, "CHECKSUM_CHUNK", 1000)
    for n in (0, 1, 999, 1000, 3005):
        p = tmp_path / ("f%d" % n)
        data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
        p.write_bytes(data)
        assert cache._checksum(str(p)) == [n, zlib.crc32(data)]
