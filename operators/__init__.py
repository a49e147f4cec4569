"""Operators: session state and the few-shot workflow."""

from .ops import OPERATORS, PLUGIN
