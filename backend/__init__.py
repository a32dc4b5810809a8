"""ModelDeck backend: registry, datasets, serving, runtimes, deployments, evaluation and CLI.

Importing this package is cheap and never imports Streamlit.
"""


def __getattr__(name: str) -> str:
    """`__version__`: ModelDeck's version from its package metadata (pyproject.toml's, as installed by
    scripts/setup.sh), looked up on first use: importlib.metadata costs more than this package."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import metadata

    try:
        return metadata.version("modeldeck")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run scripts/setup.sh)"
