"""Service errors as HTTP answers: bad input 400, missing 404, conflict 409, each with a
``detail`` naming the problem."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .. import errors

STATUS = {errors.InvalidInput: status.HTTP_400_BAD_REQUEST,
          errors.NotFound: status.HTTP_404_NOT_FOUND,
          errors.Conflict: status.HTTP_409_CONFLICT}


def handle_exception(exc, context):
    """DRF's handler, plus ``ServiceError``s (the services validate everything they do)."""
    if isinstance(exc, errors.ServiceError):
        code = next((code for kind, code in STATUS.items() if isinstance(exc, kind)),
                    status.HTTP_400_BAD_REQUEST)
        return Response({"detail": str(exc)}, status=code)
    return exception_handler(exc, context)
