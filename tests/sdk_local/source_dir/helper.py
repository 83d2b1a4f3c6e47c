"""A module beside entry.py in source_dir: importable because the code directory
starts PYTHONPATH."""


def describe(epochs, tag):
    return f"{epochs} epochs, tag {tag!r}"
