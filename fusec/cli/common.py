"""What every `fusec` command shares: exit codes, the user-error type, JSON output."""

from __future__ import annotations

import json

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A mistake in the user's input, reported as `fusec: error: ...`."""


def _print_json(doc) -> None:
    print(json.dumps(doc, indent=2))
