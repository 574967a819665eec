class KprefError(Exception):
    """A user-facing error: bad params, a malformed data file, an unknown model.

    The message names the file, line and field; the CLI prints it without a traceback.
    """
