"""The record of a train's run, so a prediction never looks current when it is not.

Every prediction carries the ``run_id`` and ``iteration`` that wrote it. The
session records the run as ``running`` before its first write and
``complete`` after its last (or ``failed``, with the error). A ``running`` run
whose lease is gone (the process died) is shown ``interrupted``. The next train
re-scores every sample that holds a prediction of an unfinished run, so no
prediction of it survives.
"""

import time
import uuid

from .. import fastdb
from .errors import FewShotError
from .state import LEASE_KEY, MAX_HISTORY, lease_is_free

RUNNING, COMPLETE, FAILED, INTERRUPTED = "running", "complete", "failed", "interrupted"
INHERITED = "inherited"  # predictions the session found in its field when it started using it (a clone)


def new_run_id():
    return uuid.uuid4().hex[:16]


def begin(state, run_id, iteration, lease_token, num_to_write, settings, field=None, delegated=False):
    """Records the run as started (before its first write); until it completes,
    its ID is in ``unfinished_runs`` (the next trains repair its predictions)
    and ``unfinished_fields`` names the prediction field it writes."""
    rec = {"id": run_id, "iteration": iteration, "status": RUNNING, "lease": lease_token,
           "started_at": time.time(), "num_to_write": int(num_to_write), "settings": settings,
           "delegated": bool(delegated)}

    def apply(cfg):
        cfg["run"] = rec
        cfg["unfinished_runs"] = (cfg.get("unfinished_runs") or []) + [run_id]
        cfg["unfinished_fields"] = dict(cfg.get("unfinished_fields") or {},
                                        **{run_id: field or cfg["prediction_field"]})
        return cfg

    state.update(apply)
    return rec


def finish(state, rec, summary):
    """Records the run as complete: the iteration, its summary in the history."""

    def apply(cfg):
        if (cfg.get("run") or {}).get("id") != rec["id"]:
            raise FewShotError("Another train replaced this one while it ran; its results were not recorded")
        # every unfinished run's predictions were re-scored by this one (repair)
        done = set(summary["repaired_runs"]) | {rec["id"]}
        cfg["unfinished_runs"] = [r for r in cfg.get("unfinished_runs") or [] if r not in done]
        cfg["unfinished_fields"] = {r: f for r, f in (cfg.get("unfinished_fields") or {}).items() if r not in done}
        cfg["inherited"] = {f: [r for r in rs if r not in done] for f, rs in (cfg.get("inherited") or {}).items()}
        cfg["run"] = dict(rec, status=COMPLETE, ended_at=time.time(), num_written=summary["num_written"])
        cfg["iteration"] = rec["iteration"]
        cfg["scorer"] = summary["settings"]
        cfg["history"] = (cfg.get("history") or [])[-(MAX_HISTORY - 1):] + [summary]
        return cfg

    return state.update(apply)


def inherited(dataset, cfg, field):
    """``(run IDs, number of predictions)`` of the predictions in ``field``
    that none of the session's recorded runs wrote: a clone carries its
    source's (run IDs, iteration 2 beside the clone's iteration 0)."""
    known = {h.get("run_id") for h in cfg.get("history") or []} | set(unfinished_ids(cfg))
    ids = [r for r in dataset.distinct(field + ".run_id") if r not in known]
    return ids, (fastdb.count(dataset, {field + ".run_id": {"$in": ids}}) if ids else 0)


def adopt(cfg, field, run_ids, num):
    """Records inherited predictions: shown as not current, and re-scored by the
    next train while ``field`` is the session's prediction field (the repair).
    Never removed: the session did not write them (a review: a clone switched
    to another field had its copied predictions deleted by the next train)."""
    cfg["inherited"] = dict(cfg.get("inherited") or {}, **{field: list(run_ids)})
    if unfinished(cfg) is None:  # (an unfinished run of its own keeps its record: it is repaired too)
        cfg["run"] = {"id": None, "status": INHERITED, "iteration": cfg.get("iteration") or 0,
                      "num_written": num, "num_to_write": num, "field": field, "started_at": time.time()}
    return cfg


def fail(state, rec, error):
    def apply(cfg):
        if (cfg.get("run") or {}).get("id") == rec["id"]:
            cfg["run"] = dict(rec, status=FAILED, ended_at=time.time(), error=str(error)[:2000])
        return cfg

    try:
        state.update(apply)
    except Exception:  # the session may be gone; the error itself is what the user sees
        pass


def worker_ran_since(cfg, since):
    """Whether a delegated train started at ``since`` or later has ended
    (complete, or failed): what a panel that queued one waits for; a train
    clicked meanwhile in the foreground is not it."""
    since -= 5  # (the worker's clock)
    rec = cfg.get("run") or {}
    if rec.get("delegated") and rec.get("started_at", 0) >= since and rec.get("status") != RUNNING:
        return True
    return any(h.get("delegated") and h.get("timestamp", 0) >= since for h in (cfg.get("history") or [])[-20:])


def unfinished(cfg):
    """The last run's record if it did not complete, else None."""
    rec = (cfg or {}).get("run")
    return rec if rec and rec.get("status") != COMPLETE else None


def describe(dataset, state, cfg):
    """The last run for ``get_session`` and the panel, with a message when it
    did not finish."""
    rec = (cfg or {}).get("run")
    if not rec or (rec["status"] == INHERITED and rec["field"] != cfg.get("prediction_field")):
        return None  # (inherited predictions of a field the session no longer writes: not its own)
    out = dict(rec)
    if rec["status"] == RUNNING:
        lease = state.store.get(LEASE_KEY)
        if lease_is_free(lease) or lease.get("token") != rec.get("lease"):
            out["status"] = INTERRUPTED
    if out["status"] in (INTERRUPTED, FAILED, RUNNING):
        # counted where the run wrote: the session may have moved to another field since
        out["field"] = (cfg.get("unfinished_fields") or {}).get(rec["id"]) or cfg["prediction_field"]
        out["num_written"] = fastdb.count(dataset, {out["field"] + ".run_id": rec["id"]})
    out["message"] = _message(out, cfg.get("prediction_field"))
    return out


def _message(r, session_field=None):
    n, total = r.get("num_written", 0), r.get("num_to_write", 0)
    if r["status"] == INHERITED:
        return ("%s predictions in '%s' were there before this session used the field (a clone's source, "
                "or an earlier session); they are not from these labels. Train again to replace them"
                % (format(n, ","), r["field"]))
    if r["status"] == COMPLETE:
        return "Iteration %d complete: %s predictions written" % (r["iteration"], format(n, ","))
    if r["status"] == RUNNING:
        return "Iteration %d running: %s of %s predictions written" % (r["iteration"], format(n, ","), format(total, ","))
    what = "interrupted" if r["status"] == INTERRUPTED else "failed (%s)" % r.get("error", "")
    rest = "; the others are from earlier iterations" if n < total else ""
    where = ""
    if r.get("field") and session_field and r["field"] != session_field:
        where = " to '%s'" % r["field"]
        rest += "; the session now writes '%s'" % session_field
    return ("Iteration %d %s after %s of %s predictions were written%s%s. Train again to finish"
            % (r["iteration"], what, format(n, ","), format(total, ","), where, rest))


def unfinished_ids(cfg):
    """IDs of the runs whose predictions need repair: those that did not
    complete, and those inherited in the session's prediction field."""
    runs = list(cfg.get("unfinished_runs") or [])
    rec = unfinished(cfg)
    if rec is not None and rec["id"] and rec["id"] not in runs:  # a session recorded before the list existed
        runs.append(rec["id"])
    return runs + [r for r in (cfg.get("inherited") or {}).get(cfg.get("prediction_field"), []) if r not in runs]


def repair_ids(dataset, cfg, run_ids):
    """``S12`` IDs of the samples holding predictions of the given runs."""
    if not run_ids:
        return fastdb.to_bytes([])
    return fastdb.ids_matching(dataset, {cfg["prediction_field"] + ".run_id": {"$in": list(run_ids)}})


def remove_elsewhere(dataset, cfg, run_ids, is_ours):
    """Removes the predictions of unfinished runs that wrote another prediction
    field than the session's (it was changed since): this train cannot re-score
    them there, and they must not stay behind looking like a finished
    iteration. Only from fields ``is_ours(name)`` (the plugin created them and
    still owns them). Returns ``{field: number removed}``."""
    where = cfg.get("unfinished_fields") or {}
    by_field = {}
    for r in run_ids:
        f = where.get(r, cfg["prediction_field"])
        if f != cfg["prediction_field"]:
            by_field.setdefault(f, []).append(r)
    return {f: fastdb.remove_run_predictions(dataset, f, rs, fastdb.now_ms())
            for f, rs in sorted(by_field.items()) if is_ours(f)}
