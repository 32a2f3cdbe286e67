"""The one exception type for mistakes a user can fix.

Anything raised as :class:`UserError` is printed by the CLI as a single line and exits with
code 2; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's config, data or command line, with a message saying how to fix it."""

    exit_code = 2
