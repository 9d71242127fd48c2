"""Domain errors: each message says what is wrong and what to do about it."""


class FleetdeskError(Exception):
    """A request that cannot be carried out as asked; the message is for the person who asked."""


class NotFound(FleetdeskError):
    pass


class InvalidInput(FleetdeskError):
    pass


class Conflict(FleetdeskError):
    pass
