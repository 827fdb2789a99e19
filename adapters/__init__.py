"""Framework adapters of hrcore, installed as ``hrcore.adapters``.

Importing this package loads no framework: import the adapter you need, e.g. ``hrcore.adapters.torch``.
"""

if __name__ != "hrcore.adapters":
    # The folder is mapped to hrcore.adapters by pyproject; a top-level `adapters` would shadow an unrelated
    # PyPI distribution of that name and break the adapters' relative imports of the core.
    raise ImportError(
        "hrcore's adapters are imported as `hrcore.adapters` (e.g. `import hrcore.adapters.torch`), "
        f"not as `{__name__}`; install hrcore with `pip install -e .` from the repository root."
    )
