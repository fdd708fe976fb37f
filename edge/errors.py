"""The project's one error type for user mistakes.

A user error (missing file, model without config, unknown URI scheme, camera not found,
backend not installed) raises :class:`EdgeError`; the CLI prints its one line and exits
non-zero. Bugs are anything else and keep their traceback.
"""

from typing import Optional


class EdgeError(Exception):
    """A mistake the user can fix: says what is wrong, where, and how to fix it."""

    def __init__(self, what: str, fix: Optional[str] = None, where: Optional[str] = None) -> None:
        self.what = what
        self.fix = fix
        self.where = where
        super().__init__(self.message())

    def message(self) -> str:
        """One line: ``where | what. Fix: fix``."""
        text = self.what.rstrip(".")
        if self.where:
            text = f"{self.where} | {text}"
        if self.fix:
            text = f"{text}. Fix: {self.fix.rstrip('.')}."
        else:
            text = f"{text}."
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.message()


class MissingDependency(EdgeError):
    """An optional library is not installed; the fix names the pip extra or JetPack package."""

    def __init__(self, module: str, purpose: str, fix: str) -> None:
        super().__init__(f"{purpose} needs the Python module '{module}', which is not installed", fix)
        self.module = module
