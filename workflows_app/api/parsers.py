"""What the API reads: JSON bodies, within the limits every input has (``limits.py``)."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from ..limits import MAX_JSON_DEPTH, nesting_depth, too_deep_message


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested deeper than ``MAX_JSON_DEPTH`` with a 400.

    A body is parsed before any permission is checked (the session's CSRF check reads it),
    so this is what any logged-in account reaches: nested a thousand levels deep, a body
    made the parser itself give up with a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = nesting_depth(data) > MAX_JSON_DEPTH
        if too_deep:
            raise ParseError(f"JSON parse error - {too_deep_message('the body')}")
        return data
