"""The Few-Shot App panel (renders state, triggers operators)."""

from .fewshot_panel import FewShotPanel
