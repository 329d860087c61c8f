"""NamedTuple for isol8's records, without typing's cost at run time, nor namedtuple's.

`class Spec(NamedTuple): name: str; size: int = 0` makes a tuple class with the fields,
defaults, methods and class attributes of typing's NamedTuple. typing's imports typing and
compiles each field's annotation (a string, under `from __future__ import annotations`) into a
ForwardRef that nothing here reads; collections.namedtuple, beneath it, compiles a `__new__` for
each class. Together about half a millisecond a record, paid by every `isol8 run` for the two
dozen records on its way. Here one shared `__new__` maps arguments to fields. Type checkers see
typing's own NamedTuple, so the classes are checked as theirs are.
"""

from __future__ import annotations

from operator import itemgetter

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

    class _Record(tuple):
        """What every record shares: typing's NamedTuple methods, one __new__ for all."""

        __slots__ = ()
        _fields = ()
        _field_defaults = {}

        def __new__(cls, /, *args, **kwargs):  # positional-only: a field may be named cls
            fields = cls._fields
            if not kwargs and len(args) == len(fields):
                return tuple.__new__(cls, args)
            if len(args) > len(fields):
                raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments but {len(args)} were given")
            values = list(args)
            for name in fields[len(args) :]:
                if name in kwargs:
                    values.append(kwargs.pop(name))
                elif name in cls._field_defaults:
                    values.append(cls._field_defaults[name])
                else:
                    raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
            for name in kwargs:
                how = "got multiple values for argument" if name in fields else "got an unexpected keyword argument"
                raise TypeError(f"{cls.__name__}() {how} {name!r}")
            return tuple.__new__(cls, values)

        @classmethod
        def _make(cls, iterable):
            made = tuple.__new__(cls, iterable)
            if len(made) != len(cls._fields):
                raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(made)}")
            return made

        def _replace(self, **changes):
            made = self._make(map(changes.pop, self._fields, self))
            if changes:
                raise ValueError(f"Got unexpected field names: {list(changes)!r}")
            return made

        __replace__ = _replace  # copy.replace (Python 3.13)

        def _asdict(self):
            return dict(zip(self._fields, self, strict=True))

        def __getnewargs__(self):
            return tuple(self)

        def __repr__(self):
            return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in zip(self._fields, self, strict=True))})"

    class _RecordMeta(type):
        def __new__(mcls, typename, bases, namespace):
            annotations = namespace.get("__annotations__", {})
            fields = tuple(annotations)
            defaults = {}
            for name in fields:
                if name in namespace:
                    defaults[name] = namespace[name]
                elif defaults:
                    raise TypeError(f"{typename}: field {name} without a default follows one with a default")
            body = {"__doc__": f"{typename}({', '.join(fields)})"}
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"{typename}: cannot overwrite NamedTuple attribute {key}")
                if key not in fields:
                    body[key] = value
            body.update(__slots__=(), _fields=fields, _field_defaults=defaults, __match_args__=fields)
            body["__annotations__"] = dict(annotations)
            for index, name in enumerate(fields):
                body[name] = property(itemgetter(index), doc=f"Alias for field number {index}")
            return type(typename, (_Record,), body)

    _Base = type.__new__(_RecordMeta, "NamedTuple", (), {})

    def NamedTuple(*args, **kwargs):  # noqa: N802 (typing's name)
        raise TypeError("isol8.records.NamedTuple is for class syntax only")

    NamedTuple.__mro_entries__ = lambda bases: (_Base,)
