"""The one exception type of magicmask."""

from __future__ import annotations

import os


class MagicmaskError(Exception):
    """Something magicmask cannot do, with the file concerned and what to do about it.

    Parameters
    ----------
    message : str
        What went wrong, in one line.
    path : str or os.PathLike, optional
        The file the problem is about; named first in the message.
    hint : str, optional
        What the user can do about it.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, hint: str | None = None):
        self.message = " ".join(str(message).split())
        self.path = os.fspath(path) if path is not None else None
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text
