"""Operators: session state and the few-shot workflow (see ``ops`` and ``workflow``)."""
