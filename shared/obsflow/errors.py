"""Domain exceptions: what went wrong, in words an operator can act on."""


class ObsflowError(Exception):
    """Base class of every error obsflow raises on purpose."""


class Rejected(ObsflowError):
    """An input object cannot be accepted; it is quarantined with this reason.

    ``code`` is a short stable label (for metrics and filtering), the message says
    what is wrong and what to do.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.reason = message


class TransientError(ObsflowError):
    """A dependency failed in a way that a retry may fix; the record is redelivered."""


class NotFound(ObsflowError):
    """A requested record does not exist."""
