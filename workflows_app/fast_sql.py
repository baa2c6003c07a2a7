"""The worker's hot-path statements: INSERT many rows, and UPDATE ... WHERE, with cached SQL.

A worker saves a checkpoint and its events every superstep (group-committed). Django's
``bulk_create`` and ``QuerySet.update`` spend several times longer building the statement
than the database takes to run it, so these two build it once per model and reuse it.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router

_INSERT_SQL: dict[tuple, tuple[str, list]] = {}

# Column types whose Python values reach the database as they are (when of these types), on
# every backend: no need for the field's get_db_prep_save, which costs more than the insert.
_PASS_THROUGH = {
    "CharField": (str,), "TextField": (str,), "BooleanField": (bool,),
    "IntegerField": (int,), "PositiveIntegerField": (int,), "BigIntegerField": (int,),
    "PositiveBigIntegerField": (int,), "SmallIntegerField": (int,),
    "PositiveSmallIntegerField": (int,),
}


def _converter(field, connection):
    """A function giving the database value of ``field`` for a Python value."""
    prepare = field.get_db_prep_save
    kinds = _PASS_THROUGH.get(field.get_internal_type())
    if kinds is None:
        return lambda value: prepare(value, connection)
    # Exact types only: a str or int subclass (an enum member) goes through Django.
    return lambda value: value if type(value) in kinds or value is None else prepare(
        value, connection)


def insert_rows(model: type, objects: list) -> None:
    """INSERT rows (model instances, or dicts of attribute values with every column) with
    one prepared statement (no signals, no returned ids).

    The worker saves a checkpoint and its events every superstep; Django's ``bulk_create``
    spends several times longer building the statement than the database takes to run it.
    Values go through each field's ``get_db_prep_save``, as ``bulk_create`` does, except
    plain strings, integers and booleans for columns that store them as they are.
    """
    if not objects:
        return
    connection = connections[router.db_for_write(model)]
    key = (model, connection.alias)
    if key not in _INSERT_SQL:
        fields = [f for f in model._meta.concrete_fields
                  if not (f.primary_key and f.get_internal_type().endswith("AutoField"))]
        quote = connection.ops.quote_name
        sql = (f"INSERT INTO {quote(model._meta.db_table)} "
               f"({', '.join(quote(f.column) for f in fields)}) "
               f"VALUES ({', '.join(['%s'] * len(fields))})")
        _INSERT_SQL[key] = (sql, [(f.attname, _converter(f, connection)) for f in fields])
    sql, columns = _INSERT_SQL[key]
    if isinstance(objects[0], dict):
        rows = [tuple(convert(obj[name]) for name, convert in columns) for obj in objects]
    else:
        rows = [tuple(convert(getattr(obj, name)) for name, convert in columns)
                for obj in objects]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


_UPDATE_SQL: dict[tuple, str] = {}


def update_where(model: type, where: dict[str, Any], values: dict[str, Any]) -> int:
    """``UPDATE model SET values WHERE where`` (all equalities, by attribute name) with a
    cached statement; returns the number of rows changed. The hot-path twin of
    ``QuerySet.filter(**where).update(**values)``, whose query building costs more than the
    update itself."""
    connection = connections[router.db_for_write(model)]
    key = (model, connection.alias, tuple(values), tuple(where))
    meta = model._meta
    if key not in _UPDATE_SQL:
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in values)
        conditions = " AND ".join(f"{quote(meta.get_field(name).column)} = %s" for name in where)
        _UPDATE_SQL[key] = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {conditions}"
    params = [meta.get_field(name).get_db_prep_save(value, connection)
              for name, value in (*values.items(), *where.items())]
    with connection.cursor() as cursor:
        cursor.execute(_UPDATE_SQL[key], params)
        return cursor.rowcount
