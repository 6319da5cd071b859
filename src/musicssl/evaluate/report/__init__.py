"""Presentation of evaluation results: the report folder, its pages and figures, comparisons.

Everything here reads the ``results.json`` format (``musicssl.evaluate.results``) and computes
no score: ``folder`` owns an evaluation's output folder, ``pages`` writes report.md and
report.html from ``tables`` and ``figures``, and ``compare`` sets several reports side by side.
"""
