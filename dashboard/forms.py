"""Forms generated from JSON schemas: a request's response form, and the start-run form.

``SchemaForm`` turns a JSON schema (``services`` derives it from a Python type with
pydantic) into fields: ``str`` a text box, ``int``/``float`` a number (with the schema's
range as ``min``/``max``), an ``Enum`` a choice, ``bool`` a yes/no choice with nothing
chosen, an optional value (``X | None``) an optional field, and a dataclass or pydantic
model one field per attribute; anything else (a list, a union of several types) is typed
as JSON. ``to_json()`` gives the value as JSON for the services, which validate it against
the real type.

- ``ResponseForm`` answers a request; a bare ``bool`` is approve/reject buttons.
- ``StartRunForm`` starts a run: the same fields for the start executor's input, and a JSON
  editor ("Edit as JSON"), which is the only way in for inputs the fields cannot express.

Every message is in the user's terms and worded as ``workflows_app.schemas`` words the
services' refusals ("must be a whole number"), so the form and the service say the same.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from workflows_app.limits import JSONDecoder, TooDeep, load_json
from workflows_app.schemas import FIELD_ORDER, Problem

# No default: an approval is a decision the person makes, never one a form makes for them.
BOOL_CHOICES = [("", "— choose —"), ("true", "yes"), ("false", "no")]
REQUIRED = "a value is required"


def _resolve(schema: dict, root: dict) -> dict:
    """Follow a local ``$ref`` (pydantic puts nested types under ``$defs``)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return root.get("$defs", {}).get(ref.split("/")[-1], {})
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve(schema["allOf"][0], root)
    return schema


def _optional(schema: dict) -> dict | None:
    """The schema of ``X`` when ``schema`` is ``X | None``."""
    options = schema.get("anyOf") or []
    others = [option for option in options if option.get("type") != "null"]
    return others[0] if len(options) == 2 and len(others) == 1 else None


def alternatives(schema: dict) -> list[dict]:
    """The types a value of ``schema`` may be, each a schema of its own (with the
    ``$defs`` it needs); ``null`` is left out. A start executor with several handlers
    takes several types: their schemas are the alternatives of an ``anyOf``."""
    root = schema or {}
    resolved = _resolve(root, root)
    if not resolved.get("anyOf"):
        return [root] if root else []
    found = []
    for option in resolved["anyOf"]:
        if option.get("type") == "null":
            continue
        merged = {**root.get("$defs", {}), **option.get("$defs", {})}
        option = _resolve(option, {"$defs": merged})
        found.append({**option, "$defs": merged} if merged else option)
    return found


def _range(schema: dict, integer: bool) -> dict:
    """The schema's bounds as a form field's ``min_value``/``max_value`` (exclusive bounds
    only for whole numbers, where the next number is the bound)."""
    bounds = {}
    if "minimum" in schema:
        bounds["min_value"] = schema["minimum"]
    elif integer and isinstance(schema.get("exclusiveMinimum"), int):
        bounds["min_value"] = schema["exclusiveMinimum"] + 1
    if "maximum" in schema:
        bounds["max_value"] = schema["maximum"]
    elif integer and isinstance(schema.get("exclusiveMaximum"), int):
        bounds["max_value"] = schema["exclusiveMaximum"] - 1
    return bounds


def _field(schema: dict, root: dict, *, required: bool, label: str) -> forms.Field:
    # What the property says of itself (its default) outlives following its $ref.
    schema = {**_resolve(schema, root),
              **{key: schema[key] for key in ("default", "description") if key in schema}}
    inner = _optional(schema)
    if inner is not None:  # X | None: the field of X, which may be left empty
        field = _field({**inner, **{k: schema[k] for k in ("default", "description")
                                    if k in schema}}, root, required=False, label=label)
        field.nullable = True
        return field
    kind = schema.get("type")
    common: dict[str, Any] = {"required": required, "label": label,
                              "help_text": schema.get("description", "")}
    if "default" in schema and kind != "boolean" and schema["default"] not in (None, ""):
        common["initial"] = schema["default"]
    messages = {"required": REQUIRED}
    if "enum" in schema:
        choices = [(json.dumps(v), str(v)) for v in schema["enum"]]
        if "initial" in common:
            common["initial"] = json.dumps(common["initial"])
        listed = ", ".join(label for _, label in choices)
        return forms.TypedChoiceField(choices=choices, coerce=json.loads, **common,
                                      error_messages={**messages,
                                                      "invalid_choice": f"must be one of {listed}"})
    if kind == "boolean":
        return forms.TypedChoiceField(choices=BOOL_CHOICES, coerce=lambda v: v == "true",
                                      **{**common, "required": True},
                                      error_messages={**messages,
                                                      "invalid_choice": "must be yes or no"})
    if kind in ("integer", "number"):
        messages.update(min_value="must be at least %(limit_value)s",
                        max_value="must be at most %(limit_value)s")
        if kind == "integer":
            return forms.IntegerField(**common, **_range(schema, True), error_messages={
                **messages, "invalid": "must be a whole number"})
        return forms.FloatField(**common, **_range(schema, False), error_messages={
            **messages, "invalid": "must be a number"})
    if kind == "string":
        lengths = {"min_length": schema.get("minLength"), "max_length": schema.get("maxLength")}
        messages.update(min_length="must have at least %(limit_value)d characters",
                        max_length="must have at most %(limit_value)d characters")
        return forms.CharField(**common, **{k: v for k, v in lengths.items() if v is not None},
                               error_messages=messages)
    # Anything else (lists, nested objects, unions) is entered as JSON.
    return forms.JSONField(**common, decoder=JSONDecoder,  # within the nesting limit
                           error_messages={**messages, "invalid": "is not valid JSON"})


def _label(name: str, schema: dict) -> str:
    """A field's label: the title its type gave it, or its name as words ("fail_at" is
    "Fail at"; pydantic's own title of it, "Fail At", is not one a person chose)."""
    title = schema.get("title")
    words = name.replace("_", " ")
    if title and title != words.title():
        return title
    return words[:1].upper() + words[1:]


def _in_declared_order(schema: dict) -> list[tuple[str, dict]]:
    """An object schema's properties in the order its type declares them (``FIELD_ORDER``;
    a schema stored without it keeps the order it has)."""
    properties = schema["properties"]
    order = [name for name in schema.get(FIELD_ORDER, []) if name in properties]
    order += [name for name in properties if name not in order]
    return [(name, properties[name]) for name in order]


class SchemaForm(forms.Form):
    """Fields for a value of a JSON schema: one per property of an object (``is_object``),
    else one named ``value``. ``to_json()`` gives the value entered."""

    def __init__(self, schema: dict, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema or {}
        resolved = _resolve(self.schema, self.schema)
        self.is_object = resolved.get("type") == "object" and "properties" in resolved
        self.required_keys = set(resolved.get("required", [])) if self.is_object else set()
        if self.is_object:
            for name, prop in _in_declared_order(resolved):
                self.fields[name] = _field(prop, self.schema, required=name in self.required_keys,
                                           label=_label(name, prop))
        elif self._has_value_field(resolved):
            self.fields["value"] = _field(resolved, self.schema, required=True,
                                          label=resolved.get("title", "answer"))

    def _has_value_field(self, resolved: dict) -> bool:
        return True

    @property
    def expressible(self) -> bool:
        """Whether the fields say more than a JSON text would (a value that can only be typed
        as JSON is better typed in a JSON editor)."""
        return self.is_object or not isinstance(self.fields.get("value"), forms.JSONField)

    def to_json(self) -> Any:
        if self.is_object:
            value = {}
            for name, item in self.cleaned_data.items():
                field = self.fields[name]
                if item is None or (item == "" and not field.required):
                    # Left empty: the type's default applies, unless it has none and takes null.
                    if getattr(field, "nullable", False) and name in self.required_keys:
                        value[name] = None
                    continue
                value[name] = item
            return value
        return self.cleaned_data["value"]


class ResponseForm(SchemaForm):
    """The form answering one request; field names are the response's attribute names, or
    ``value`` for a bare ``str``/``int``/``float``/``Enum``; a bare ``bool`` has no fields
    and is answered by the ``decision`` button pressed."""

    def __init__(self, schema: dict, *args: Any, **kwargs: Any) -> None:
        resolved = _resolve(schema or {}, schema or {})
        self.is_decision = resolved.get("type") == "boolean" and "enum" not in resolved
        super().__init__(schema, *args, **kwargs)

    def _has_value_field(self, resolved: dict) -> bool:
        return not self.is_decision

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.is_decision and self.data.get("decision") not in ("true", "false"):
            raise forms.ValidationError("choose approve or reject")
        return cleaned

    def to_json(self) -> Any:
        if self.is_decision:
            return self.data.get("decision") == "true"
        return super().to_json()


class StartRunForm(forms.Form):
    """The form starting a run: fields generated from the start executor's input schema
    (``input_form``, a ``SchemaForm``) and a JSON editor.

    Which one is the input (``uses_json``): the JSON editor's text when the form has no
    fields (the input is one the fields cannot express: a list, a union of several types
    of value, ...), or when "Edit as JSON" is ticked and the text is not blank; otherwise
    the fields. When the input may be one of several types and the first is an object (a
    start executor with several handlers: the first is its main entry), the fields are
    that object's and the JSON editor takes any of the types.

    The editor's names hold a hyphen, which no attribute of a Python type can, so they
    never collide with the generated fields (which are named after the attributes).
    """

    JSON = "input-json"
    AS_JSON = "input-as-json"

    def __init__(self, input_schema: dict, data: Any = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.input_schema = input_schema or {}
        self.alternatives = alternatives(self.input_schema)
        self.fields[self.JSON] = forms.CharField(
            required=False, strip=False, label="Input as JSON",
            widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false",
                                         "placeholder": example_input(self.input_schema)}))
        self.fields[self.AS_JSON] = forms.BooleanField(required=False, label="Edit as JSON")
        self.input_form: SchemaForm | None = None
        self.json_toggle = False  # whether "Edit as JSON" is offered next to the fields
        if self.alternatives:
            # Same data, ids and prefix: the generated fields are part of this form's HTML.
            generated = SchemaForm(self.alternatives[0], data, **kwargs)
            several_values = len(self.alternatives) > 1 and not generated.is_object
            if generated.fields and generated.expressible and not several_values:
                self.input_form = generated
                if not generated.is_object and isinstance(generated.fields["value"],
                                                          forms.CharField):
                    generated.fields["value"].widget = forms.Textarea(attrs={"rows": 4})
                    generated.fields["value"].label = "Input"
                # A bare value's field takes what its JSON would say: no editor for it.
                self.json_toggle = generated.is_object or len(self.alternatives) > 1
        if self.input_form is None:
            self.fields[self.JSON].label = "Input"
        elif self.is_bound and self.uses_json:
            # The fields are not the input: shown as they were typed, never checked.
            typed = {name: data[name] for name in self.input_form.fields if name in data}
            self.input_form = SchemaForm(self.alternatives[0], initial=typed, **kwargs)
        self._value: Any = None

    @property
    def json_field(self) -> forms.BoundField:
        return self[self.JSON]

    @property
    def as_json_field(self) -> forms.BoundField:
        return self[self.AS_JSON]

    @property
    def json_only(self) -> bool:
        return self.input_form is None

    @property
    def json_open(self) -> bool:
        """Whether the JSON editor shows: always for a JSON-only form, else when ticked."""
        return self.json_only or (self.json_toggle and self.is_bound
                                  and self.data.get(self.AS_JSON) not in (None, "", "false", "0"))

    @property
    def uses_json(self) -> bool:
        """Whether the JSON editor's text, not the fields, is the input (see the class)."""
        if self.json_only:
            return True
        return self.json_open and bool(str(self.data.get(self.JSON, "")).strip())

    def is_valid(self) -> bool:
        valid = super().is_valid()
        if not self.uses_json:
            valid = self.input_form.is_valid() and valid
        return valid

    def clean(self) -> dict:
        cleaned = super().clean()
        # A name this form does not have is refused, never ignored: a run started with
        # defaults in place of what was sent is the worst answer to a mistyped request.
        known = {*self.fields, *(self.input_form.fields if self.input_form else ()),
                 "csrfmiddlewaretoken"}
        unknown = sorted(name for name in self.data if name not in known)
        if unknown:
            quoted = ", ".join(f'"{name}"' for name in unknown)
            raise forms.ValidationError(
                f"unknown form field{'s' if len(unknown) > 1 else ''} {quoted}")
        if not self.uses_json:
            return cleaned
        text = cleaned.get(self.JSON, "")
        try:
            self._value = load_json(text)
        except TooDeep as error:  # it was a 500: the parser ran out of stack
            self.add_error(self.JSON, str(error))
        except ValueError as error:
            if self.takes_text:  # a string input may be typed as it is
                self._value = text
            elif not text.strip():
                self.add_error(self.JSON, REQUIRED)
            else:
                self.add_error(self.JSON, f"is not valid JSON ({error.msg} at line "
                                          f"{error.lineno}, column {error.colno})")
        return cleaned

    @property
    def takes_text(self) -> bool:
        """Whether text that is not JSON is taken as it is (the input may be a string)."""
        return any(option.get("type") == "string" for option in self.alternatives)

    def value(self) -> Any:
        """The input as JSON (call after ``is_valid()``)."""
        return self._value if self.uses_json else self.input_form.to_json()

    def add_problems(self, problems: list[Problem]) -> None:
        """Show the service's refusal of the input where it belongs: on the field it names,
        else on the JSON editor or the whole form."""
        for problem in problems:
            if self.uses_json:  # said from the root of the JSON typed
                where = problem.where("").lstrip(".")
                self.add_error(self.JSON, f"{where}: {problem.message}" if where
                               else problem.message)
                continue
            target = self.input_form
            field = problem.path[0] if problem.path else ("value" if not target.is_object else None)
            if field in target.fields:
                inside = Problem(problem.path[1:], problem.message).where("").lstrip(".")
                target.add_error(field, f"{inside}: {problem.message}" if inside
                                 else problem.message)
            else:
                self.add_error(None, problem.describe("input"))

    def problems(self) -> list[dict[str, str]]:
        """Every error of the form, for a summary: ``label`` (empty for the whole form),
        ``message`` and ``anchor`` (the id of the field to go to)."""
        found = [{"label": "", "message": message, "anchor": ""}
                 for message in self.non_field_errors()]
        forms_and_fields = [(self, [self.JSON])]
        if self.input_form is not None and not self.uses_json:
            forms_and_fields.append((self.input_form, list(self.input_form.fields)))
        for form, names in forms_and_fields:
            for name in names:
                bound = form[name]
                found += [{"label": str(bound.label), "message": message,
                           "anchor": bound.id_for_label} for message in bound.errors]
        return found


def example_input(schema: dict) -> str:
    """A starting point for JSON input, made from the input schema."""
    options = alternatives(schema)
    if not options:
        return ""
    schema = options[0]
    if schema.get("type") == "string":
        return ""
    if schema.get("type") == "object":
        example = {}
        for name, prop in (_in_declared_order(schema) if "properties" in schema else []):
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
