"""Embedding models (zoo, offline entry), field validation and computation."""
