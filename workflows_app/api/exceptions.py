"""Service errors as HTTP answers: bad input 400, missing 404, conflict 409, each with a
``detail`` naming the problem; a body larger than the site accepts 413."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .. import errors
from ..limits import too_large_message

STATUS = {errors.InvalidInput: status.HTTP_400_BAD_REQUEST,
          errors.NotFound: status.HTTP_404_NOT_FOUND,
          errors.Conflict: status.HTTP_409_CONFLICT}


def handle_exception(exc, context):
    """DRF's handler, plus ``ServiceError``s (the services validate everything they do) and
    Django's refusal of a body beyond ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (one that declared no
    length, so ``stepstone.middleware.RequestSizeLimitMiddleware`` could not refuse it
    first): DRF would let that one become Django's bare 400 page."""
    if isinstance(exc, errors.ServiceError):
        code = next((code for kind, code in STATUS.items() if isinstance(exc, kind)),
                    status.HTTP_400_BAD_REQUEST)
        return Response({"detail": str(exc)}, status=code)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": too_large_message(None, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    return exception_handler(exc, context)
