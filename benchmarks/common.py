"""Shared by the benchmark scripts: JSON output after the table."""

import json


def emit_json(result: dict, path: str | None) -> None:
    """Print the machine-readable result, and save it to ``path`` if given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
