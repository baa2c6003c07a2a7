"""Refusals of the services and the run lifecycle: the message always says what is wrong.

The REST API answers them as 400 (``InvalidInput``), 404 (``NotFound``) and 409
(``Conflict``); pages show the message on the form or at the top of the page.
"""


class ServiceError(Exception):
    """A request Stepstone refuses; the message says what is wrong."""


class InvalidInput(ServiceError):
    """The input is malformed or of the wrong type (HTTP 400)."""


class NotFound(ServiceError):
    """The workflow, run, checkpoint or request does not exist (HTTP 404)."""


class Conflict(ServiceError):
    """The action conflicts with the current state, e.g. resuming a running run (HTTP 409)."""
