"""Cadenza: a self-hosted sales-engagement engine."""

__version__ = "0.1.0"
