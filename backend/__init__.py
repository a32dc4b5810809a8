"""ModelDeck backend: registry, datasets, serving, runtimes, deployments, evaluation and CLI.

Importing this package is cheap and never imports Streamlit.
"""

__version__ = "0.1.0"
