"""Frozen-encoder evaluation: tasks, probes, metrics, retrieval, report."""
