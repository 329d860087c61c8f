"""isol8.records.NamedTuple makes the classes typing's NamedTuple makes, without typing."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from isol8.records import NamedTuple


class Spec(NamedTuple):
    """A record."""

    name: str
    size: int = 1
    tags: tuple[str, ...] = ()

    @property
    def big(self) -> bool:
        return self.size > 10

    def grown(self, by: int) -> Spec:
        return self._replace(size=self.size + by)


class Typed(typing.NamedTuple):
    """A record."""

    name: str
    size: int = 1
    tags: tuple[str, ...] = ()


def test_a_record_is_typings_named_tuple_in_all_but_its_cost() -> None:
    spec = Spec("a")
    assert spec == ("a", 1, ()) and spec == Typed("a")
    assert (Spec._fields, Spec._field_defaults) == (Typed._fields, Typed._field_defaults)
    # as written (strings, under postponed evaluation); typing's compiles each into a ForwardRef
    assert Spec.__annotations__ == {"name": "str", "size": "int", "tags": "tuple[str, ...]"}
    assert list(Spec.__annotations__) == list(Typed.__annotations__)
    assert (Spec.__doc__, Spec.__module__, Spec.__qualname__) == ("A record.", __name__, "Spec")
    assert spec.grown(20).big and not spec.big
    assert Spec._make(["b", 2, ("x",)])._asdict() == {"name": "b", "size": 2, "tags": ("x",)}
    assert repr(spec) == "Spec(name='a', size=1, tags=())"
    with pytest.raises(AttributeError):
        spec.name = "b"  # type: ignore[misc]
    assert isinstance(spec, tuple) and not hasattr(spec, "__dict__")


def test_what_typing_refuses_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default follows one with a default"):

        class Broken(NamedTuple):
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(AttributeError, match="cannot overwrite"):

        class Clobbers(NamedTuple):
            a: int

            def _replace(self, **kwargs: object) -> Clobbers:  # type: ignore[override]
                return self

    with pytest.raises(TypeError, match="class syntax only"):
        NamedTuple("Point", [("x", int)])  # type: ignore[call-overload]


def test_making_records_imports_no_typing() -> None:
    code = "import isol8.records as r, sys\nclass P(r.NamedTuple):\n    x: int = 0\nprint('typing' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "False\n"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("a",), {}),
        (("a", 2), {}),
        (("a", 2, ("t",)), {}),
        ((), {"name": "a"}),
        (("a",), {"tags": ("t",)}),
        ((), {"tags": (), "size": 3, "name": "n"}),
        ((), {}),  # name is missing
        (("a", 2, (), "extra"), {}),
        (("a",), {"name": "b"}),  # name twice
        (("a",), {"colour": "red"}),
    ],
)
def test_arguments_become_fields_as_in_typings(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    try:
        expected: object = Typed(*args, **kwargs)  # type: ignore[arg-type]
    except TypeError as exc:
        expected = TypeError
        with pytest.raises(TypeError, match=r"^Spec\(\) "):
            Spec(*args, **kwargs)  # type: ignore[arg-type]
        assert exc  # typing's refused it too
    else:
        made = Spec(*args, **kwargs)  # type: ignore[arg-type]
        assert made == expected and type(made) is Spec


def test_a_record_copies_pickles_matches_and_subclasses_as_typings() -> None:
    import copy
    import pickle

    spec = Spec("a", 2, ("t",))
    assert pickle.loads(pickle.dumps(spec)) == spec and copy.deepcopy(spec) == spec
    assert Spec.__match_args__ == Typed.__match_args__ == ("name", "size", "tags")
    match spec:
        case Spec(name, size):
            assert (name, size) == ("a", 2)
    assert (spec.name, spec[1], Spec.size.__doc__) == ("a", 2, "Alias for field number 1")
    with pytest.raises(ValueError, match="unexpected field names"):
        spec._replace(colour="red")
    with pytest.raises(TypeError, match="Expected 3 arguments, got 1"):
        Spec._make(["a"])

    class Bigger(Spec):
        __slots__ = ()

        def twice(self) -> int:
            return self.size * 2

    assert Bigger("b", 4).twice() == 8 and Bigger("b")._replace(size=5) == ("b", 5, ())
    assert type(Bigger("b")._replace(size=5)) is Bigger


def test_a_field_may_have_any_name_typing_allows() -> None:
    class Odd(NamedTuple):
        cls: int
        self: int = 2

    assert Odd(cls=1) == (1, 2) and Odd(1, self=3).self == 3
    assert Odd(1).__replace__(cls=5) == (5, 2)
