"""The state store's errors, importable without the store itself (the cold path needs only these)."""


class StateError(Exception):
    """The store cannot be read or written (unreachable, corrupt, full); the message names it."""


class RunConflictError(Exception):
    """The run id or task name already belongs to another run or workflow."""


class LeaseLost(StateError):
    """This process no longer owns the run (its lease expired and another owner took it)."""
