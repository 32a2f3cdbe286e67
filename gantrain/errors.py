"""The one exception type for mistakes a user can fix.

Anything raised as :class:`UserError` is printed by the CLI as a single line and exits with
code 2; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem in the user's config, data or command line, with a message saying how to fix it."""

    exit_code = 2


class TrainingStopped(UserError):
    """Training had to stop for a reason outside the config (divergence, a full disk).

    Printed as one line like a UserError, with its own exit code (3) so scripts can tell it apart.
    """

    exit_code = 3
