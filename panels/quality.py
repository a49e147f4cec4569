"""What the panel says about the last train's numbers: the quality readout's
table and how far the estimated positive rate can be trusted (pure text from
the session's summaries; :mod:`.render` lays them out)."""

# How far the estimated positive rate and P(positive) were off on the benchmark
# (bench/bench_quality.py --ks 5 10 20, random labels, 10 trials per cell, both
# data sets; scorer of c0aeb55): at 5 labels per side the rate was 0.73-1.18x
# the truth for the 10-90% concepts and 2.9-9.7x for the 1-3% ones, and the mean
# |P - truth| (ECE) reached 0.228; at 10-20 labels per side the 1-3% concepts'
# rate was 0.85-4.2x (the others 0.75-1.62x, ECE at most 0.101). Measure again
# when the scorer changes.
ROUGH_BELOW = 10  # labels per side under which the rate and P(positive) are rough
RARE_RATE = 0.05  # an estimate under this may be a 1-3% concept's, which runs high


def fmt(v, spec="%.3f"):
    return "n/a" if v is None else spec % v


def rate_line(last):
    """The estimated positive rate of the scored pool, with how far to trust
    it (None without one)."""
    rate = last.get("estimated_pool_positive_rate")
    if rate is None:
        return None
    text = "Estimated positive rate of the scored pool: %.1f%%" % (100 * rate)
    k = min(last.get("num_positive_labels") or 0, last.get("num_negative_labels") or 0)
    if k < ROUGH_BELOW:
        return text + (" - _rough with fewer than %d labels per side (on the benchmark's real images at 5 per "
                       "side: 0.7-1.2x the truth for concepts of 10-90%% of the pool, about 3-10x for 1-3%% ones; "
                       "P(positive) off by up to 0.23 on average). Label more to firm both up._" % ROUGH_BELOW)
    if rate < RARE_RATE:
        return text + (" - _a rare concept's rate runs high (on the benchmark at 10-20 labels per side: "
                       "0.9-4x the truth for concepts of 1-3% of the pool)._")
    return text


MAX_QUALITY_ROWS = 10


def _at_most(q):
    """precision@k's ceiling when fewer than k positives were scored (a new user
    read 0.730 at k = 100 next to AP 0.992: 73 positives were in scope)."""
    n, k = q.get("num_true_positive"), q.get("k")
    return ", at most %s" % fmt(n / k) if n and k and n < k else ""


def quality_markdown(history):
    """The readout's table under one heading: only the iterations measured
    against the last measured field and class (rows of another class under
    it read as a collapse: a new user's Sandal rows sat under "= Trouser"),
    and a line saying what is left out."""
    rows = [h for h in history if h.get("quality")]
    if not rows:
        return None
    key = lambda q: (q.get("ground_truth_field"), q.get("positive_class"))  # noqa: E731
    q0 = rows[-1]["quality"]
    shown = [h for h in rows if key(h["quality"]) == key(q0)]
    lines = ["**Quality vs `%s` = `%s`** (scored, unlabeled samples)" % key(q0),
             "", "| iteration | labels +/- | AP | precision@k | F1 | samples predicted positive | truly positive |",
             "|---|---|---|---|---|---|---|"]
    for h in shown[-MAX_QUALITY_ROWS:]:
        q = h["quality"]
        lines.append("| %d | %d / %d | %s | %s (k=%d%s) | %s | %d | %d |" % (
            h["iteration"], h["num_positive_labels"], h["num_negative_labels"], fmt(q["average_precision"]),
            fmt(q["precision_at_k"]), q["k"], _at_most(q), fmt(q["f1"]), q["num_predicted_positive"],
            q["num_true_positive"]))
    notes = []
    if len(shown) > MAX_QUALITY_ROWS:
        notes.append("the last %d iterations measured are shown" % MAX_QUALITY_ROWS)
    if len(shown) < len(rows):
        notes.append("%d measured against another class or field: not shown" % (len(rows) - len(shown)))
    if not history[-1].get("quality"):
        notes.append("the last train (iteration %s) measured nothing" % history[-1].get("iteration", "?"))
    if notes:
        lines += ["", "_" + "; ".join(notes).capitalize() + "._"]
    return "\n".join(lines)
