"""Errors numbre reports to people.

Every failure a user can cause (a bad file, a missing dataset, a wrong option)
is raised as a `NumbreError`; the command line prints its message and exits
with status 2 instead of showing a traceback. Messages say what is wrong and
what to do about it.
"""


class NumbreError(Exception):
    """A failure caused by input or environment, with a message meant for people."""


class DataError(NumbreError):
    """A dataset file is missing, corrupt, truncated or not MNIST-format."""


class DownloadError(DataError):
    """No source could deliver the dataset."""


class ModelFileError(NumbreError):
    """A model or checkpoint file is missing, truncated, tampered with or foreign."""


class TrainingError(NumbreError):
    """Training cannot start or continue (bad options, non-finite loss, ...)."""


class ImageError(NumbreError):
    """An image cannot be read: missing, empty, truncated, too large, or not an image at all."""
