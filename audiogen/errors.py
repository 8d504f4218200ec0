"""User-facing errors.

Anything a user can cause (a missing file, a malformed MIDI, an impossible parameter) raises
`AudiogenError` with one clear line; the CLI prints it to stderr and exits with status 2.
Everything else is a bug and keeps its traceback.
"""


class AudiogenError(Exception):
    """An error caused by user input; `str(err)` is the one line shown to the user."""
