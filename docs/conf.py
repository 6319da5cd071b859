"""Sphinx configuration of the musicssl book (MyST notebooks executed by myst-nb)."""

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

project = "musicssl: self-supervised learning for music"
author = "the musicssl authors"
copyright = "the musicssl authors, MIT licence"

extensions = [
    "myst_nb",
    "sphinxcontrib.bibtex",
    # A local copy of MathJax 3 in _static/mathjax: equations render without a network.
    "sphinx-mathjax-offline",
]

exclude_patterns = ["_build", "README.md", "**.ipynb_checkpoints"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# Chapters run top to bottom at build time. MUSICSSL_BOOK_SCALE=tiny (the tests) or full
# (``make docs``) sizes their runs; each scale keeps its own cache of executed notebooks, so
# a chapter runs again only when its code, or the scale, changes.
SCALE = os.environ.get("MUSICSSL_BOOK_SCALE", "full")
nb_execution_mode = "cache"
nb_execution_cache_path = str(HERE / "_build" / f".jupyter_cache-{SCALE}")
nb_execution_timeout = 3600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# Every chapter turns progress bars off; what is left on stderr is library noise (tqdm warns
# that it cannot draw notebook widgets), not for the reader.
nb_output_stderr = "remove"

bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "plain"
bibtex_reference_style = "author_year"

html_theme = "sphinx_book_theme"
html_title = "Self-supervised learning for music"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
}
html_static_path = ["_static"]
html_css_files = ["book.css"]
# Tables that chapters display as Markdown are parsed as MyST (CommonMark has no tables).
nb_render_markdown_format = "myst"
