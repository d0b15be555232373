"""The one exception type that reaches the user as a one-line message (exit status 2)."""


class UserError(Exception):
    """Bad input from the user: a file, a preset or an option that cannot be used.

    The message is one line and names the file or value and the problem.
    """
