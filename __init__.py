"""Few-shot concept finder: a FiftyOne plugin (``@fewshot/few_shot_learning``).

The operators and the panel are imported when FiftyOne registers the plugin, so
the pure modules (``scoring``, ``fastdb.codec``, ``operators.params``) import
without FiftyOne or a database.
"""


def register(p):
    from .operators.ops import OPERATORS
    from .panels import FewShotPanel

    for op in OPERATORS:
        p.register(op)
    p.register(FewShotPanel)
