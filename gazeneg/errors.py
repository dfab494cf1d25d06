"""The project's own error type. Every error a user's input, options or files can cause derives from
GazenegError (and from the built-in type it always was, ValueError or RuntimeError, so older callers keep
catching it); the `gazeneg` dispatcher prints it as one line, `error: <message>`, and exits with status 2."""


class GazenegError(Exception):
    """A user's mistake or a fault in their files, said in one line that names the file, line or value."""
