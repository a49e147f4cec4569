"""Few-shot concept finder: a FiftyOne plugin (``@fewshot/few_shot_learning``)."""

from .operators import OPERATORS
from .panels import FewShotPanel


def register(p):
    for op in OPERATORS:
        p.register(op)
    p.register(FewShotPanel)
