"""The project's exceptions: each carries a message meant for the user, printed without traceback."""


class DigitrecError(Exception):
    """A failure the user can act on; the CLI prints its message and exits with status 2."""


class DataError(DigitrecError):
    """A dataset file is missing, corrupt, truncated or fails its checksum."""


class ModelError(DigitrecError):
    """A model file or run directory is missing, unreadable or of an unknown kind."""


class ImageError(DigitrecError):
    """An input image cannot be decoded or is over the pixel limit."""


class PageBudgetError(ImageError):
    """An image within the pixel limit whose content is more than the page reader reads in its
    fixed time and memory (a pattern of thousands of marks, hundreds of lines)."""
