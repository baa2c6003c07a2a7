"""What the API writes: JSON, for every value stored, whatever it holds."""

from __future__ import annotations

from rest_framework import renderers

from ..display import readable


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer, which never fails on a stored value (``workflows_app.display``).

    A value whose text holds an unpaired surrogate (which UTF-8 cannot encode) is written
    with its non-ASCII characters escaped: the same JSON value, so an export stays exact.
    One nested too deeply to be written at all is written as ``display.readable`` shows it.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _ASCII.render(data, accepted_media_type, renderer_context)
        except RecursionError:
            return _ASCII.render(readable(data), accepted_media_type, renderer_context)


class _ASCIIJSONRenderer(renderers.JSONRenderer):
    ensure_ascii = True


_ASCII = _ASCIIJSONRenderer()
