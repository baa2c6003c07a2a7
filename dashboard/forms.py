"""Forms generated from JSON schemas: a request's response form, and the start-run form.

A request stores the JSON schema of its response type (``services`` derives it with
pydantic). ``ResponseForm`` turns that schema into fields: a bare ``bool`` becomes
approve/reject buttons (a yes/no choice with nothing chosen inside an object), ``str`` a
text box, ``int``/``float`` a number, an ``Enum`` a choice,
and a dataclass or pydantic model one field per attribute. ``to_json()`` gives the answer as
JSON for ``services.respond``, which validates it against the real type.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

# No default: an approval is a decision the person makes, never one a form makes for them.
BOOL_CHOICES = [("", "— choose —"), ("true", "yes"), ("false", "no")]


def _resolve(schema: dict, root: dict) -> dict:
    """Follow a local ``$ref`` (pydantic puts nested types under ``$defs``)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return root.get("$defs", {}).get(ref.split("/")[-1], {})
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve(schema["allOf"][0], root)
    return schema


def _field(schema: dict, root: dict, *, required: bool, label: str) -> forms.Field:
    schema = _resolve(schema, root)
    kind = schema.get("type")
    help_text = schema.get("description", "")
    common = {"required": required, "label": label, "help_text": help_text}
    if "enum" in schema:
        choices = [(json.dumps(v), str(v)) for v in schema["enum"]]
        return forms.TypedChoiceField(choices=choices, coerce=json.loads, **common)
    if kind == "boolean":
        return forms.TypedChoiceField(choices=BOOL_CHOICES, coerce=lambda v: v == "true",
                                      **{**common, "required": True})
    if kind == "integer":
        return forms.IntegerField(**common)
    if kind == "number":
        return forms.FloatField(**common)
    if kind == "string":
        return forms.CharField(**{**common, "required": False} if not required else common)
    # Anything else (lists, nested objects, unions) is entered as JSON.
    return forms.JSONField(**common)


class ResponseForm(forms.Form):
    """The form answering one request; field names are the response's attribute names, or
    ``value`` for a bare ``str``/``int``/``float``/``Enum``; a bare ``bool`` has no fields
    and is answered by the ``decision`` button pressed."""

    def __init__(self, schema: dict, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema or {}
        resolved = _resolve(self.schema, self.schema)
        self.is_decision = resolved.get("type") == "boolean" and "enum" not in resolved
        self.is_object = resolved.get("type") == "object" and "properties" in resolved
        if self.is_object:
            required = set(resolved.get("required", []))
            for name, prop in resolved["properties"].items():
                self.fields[name] = _field(prop, self.schema, required=name in required,
                                           label=prop.get("title", name))
        elif not self.is_decision:
            self.fields["value"] = _field(resolved, self.schema, required=True,
                                          label=resolved.get("title", "answer"))

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.is_decision and self.data.get("decision") not in ("true", "false"):
            raise forms.ValidationError("choose approve or reject")
        return cleaned

    def to_json(self) -> Any:
        if self.is_decision:
            return self.data.get("decision") == "true"
        if self.is_object:
            return {name: value for name, value in self.cleaned_data.items()
                    if value is not None and not (value == "" and not self.fields[name].required)}
        return self.cleaned_data["value"]


class StartRunForm(forms.Form):
    input = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
                            help_text="JSON; a bare string may be typed as it is")

    def __init__(self, input_schema: dict, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.input_schema = input_schema or {}

    def value(self) -> Any:
        """The input as JSON; text that is not JSON is taken as a string where the
        workflow's input is a string."""
        text = self.cleaned_data["input"]
        try:
            return json.loads(text)
        except ValueError:
            if self.input_schema.get("type") == "string":
                return text
            raise forms.ValidationError(
                "input is not valid JSON (this workflow takes "
                f"{self.input_schema.get('title') or self.input_schema.get('type', 'a JSON value')})")


def example_input(schema: dict) -> str:
    """A starting point for the start form, made from the input schema."""
    root = schema or {}
    schema = _resolve(root, root)
    if schema.get("anyOf"):  # several input types: start from the first
        first = schema["anyOf"][0]
        return example_input({**first, "$defs": {**root.get("$defs", {}), **first.get("$defs", {})}})
    if schema.get("type") == "string":
        return ""
    if schema.get("type") == "object":
        example = {}
        for name, prop in schema.get("properties", {}).items():
            if "default" in prop:
                example[name] = prop["default"]
                continue
            prop = _resolve(prop, schema)
            if "enum" in prop:
                example[name] = prop["enum"][0]
            else:
                example[name] = {"string": "", "integer": 0, "number": 0, "boolean": False,
                                 "array": []}.get(prop.get("type"), None)
        return json.dumps(example)
    return ""
