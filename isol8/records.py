"""NamedTuple for isol8's records, without typing's cost at run time.

`class Spec(NamedTuple): name: str; size: int = 0` makes the same class as typing's NamedTuple:
collections.namedtuple's fields, defaults, methods and class attributes. typing's also imports
typing itself and compiles each field's annotation (a string, under `from __future__ import
annotations`) into a ForwardRef that nothing here reads: about a quarter of a millisecond a
record, paid by every `isol8 run` for the two dozen records on its way. Type checkers see
typing's own NamedTuple, so the classes are checked as theirs are.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # what typing's NamedTupleMeta keeps for itself, or leaves to namedtuple
    _PROHIBITED = frozenset(
        {
            "__new__",
            "__init__",
            "__slots__",
            "__getnewargs__",
            "_fields",
            "_field_defaults",
            "_make",
            "_replace",
            "_asdict",
            "_source",
        }
    )
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _RecordMeta(type):
        def __new__(mcls, typename, bases, namespace):
            fields = list(namespace.get("__annotations__", {}))
            defaults = []
            for name in fields:
                if name in namespace:
                    defaults.append(namespace[name])
                elif defaults:
                    raise TypeError(f"{typename}: field {name} without a default follows one with a default")
            record = collections.namedtuple(typename, fields, defaults=defaults, module=namespace.get("__module__"))
            record.__annotations__ = dict(namespace.get("__annotations__", {}))
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"{typename}: cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in fields:
                    setattr(record, key, value)
            return record

    _Base = type.__new__(_RecordMeta, "NamedTuple", (), {})

    def NamedTuple(*args, **kwargs):  # noqa: N802 (typing's name)
        raise TypeError("isol8.records.NamedTuple is for class syntax only")

    NamedTuple.__mro_entries__ = lambda bases: (_Base,)
