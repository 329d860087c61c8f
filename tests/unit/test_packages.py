"""Package specs: validation, normalisation, splitting, version matching and requirements files per ecosystem."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from isol8 import ecosystems
from isol8.ecosystems import Spec, parse_spec, parse_specs, read_requirements, satisfies, screen
from isol8.errors import UsageError
from isol8.runtimes import RUNTIMES

# ---- ecosystems ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [("python", "pip"), ("node", "npm"), ("bun", "npm"), ("deno", "deno"), ("bash", "apt")],
)
def test_each_runtime_names_its_ecosystem_plugin(runtime: str, expected: str) -> None:
    assert RUNTIMES[runtime].ecosystem == expected
    assert ecosystems.of(RUNTIMES[runtime]).__name__ == f"isol8.ecosystems.{expected}"


# ---- accepted and normalised ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "raw", "expected"),
    [
        ("python", "numpy==2.1.3", Spec("numpy", "numpy==2.1.3", "==2.1.3")),
        ("python", "requests[socks]>=2.31", Spec("requests", "requests[socks]>=2.31", ">=2.31")),
        ("python", "Foo_Bar.baz", Spec("foo-bar-baz", "foo-bar-baz", "")),
        ("python", "NumPy", Spec("numpy", "numpy", "")),
        ("python", "NumPy==1.26.4", Spec("numpy", "numpy==1.26.4", "==1.26.4")),
        # specifier clauses and extras come out sorted, so equal requests have equal texts
        ("python", "numpy>=1,<2", Spec("numpy", "numpy<2,>=1", "<2,>=1")),
        ("python", "numpy<2,>=1", Spec("numpy", "numpy<2,>=1", "<2,>=1")),
        ("python", "Pkg[Zeta,alpha]~=1.4", Spec("pkg", "pkg[alpha,zeta]~=1.4", "~=1.4")),
        ("python", "six==1.0rc1", Spec("six", "six==1.0rc1", "==1.0rc1")),
        ("python", "  six  ", Spec("six", "six", "")),
        ("node", "lodash", Spec("lodash", "lodash", "")),
        ("node", "lodash@4.17.21", Spec("lodash", "lodash@4.17.21", "4.17.21")),
        ("node", "@scope/pkg@^1", Spec("@scope/pkg", "@scope/pkg@^1", "^1")),
        ("node", "@scope/pkg", Spec("@scope/pkg", "@scope/pkg", "")),
        ("node", "lodash@~1.2", Spec("lodash", "lodash@~1.2", "~1.2")),
        ("node", "lodash@1.x||2.x", Spec("lodash", "lodash@1.x||2.x", "1.x||2.x")),
        ("node", "lodash@latest", Spec("lodash", "lodash", "")),  # a dist-tag is no constraint
        ("bun", "zod@3", Spec("zod", "zod@3", "3")),
        ("deno", "npm:zod@3", Spec("npm:zod", "npm:zod@3", "3")),
        ("deno", "npm:@scope/pkg@^1", Spec("npm:@scope/pkg", "npm:@scope/pkg@^1", "^1")),
        ("deno", "jsr:@std/path", Spec("jsr:@std/path", "jsr:@std/path", "")),
        ("deno", "jsr:@std/path@^1.0", Spec("jsr:@std/path", "jsr:@std/path@^1.0", "^1.0")),
        ("bash", "jq", Spec("jq", "jq", "")),
        ("bash", "jq=1.6-2", Spec("jq", "jq=1.6-2", "==1.6-2")),
        ("bash", "g++", Spec("g++", "g++", "")),
        ("bash", "libfoo1=1:2.3-4+deb12u1", Spec("libfoo1", "libfoo1=1:2.3-4+deb12u1", "==1:2.3-4+deb12u1")),
    ],
)
def test_parse_spec_accepts_and_normalises(runtime: str, raw: str, expected: Spec) -> None:
    assert parse_spec(RUNTIMES[runtime], raw) == expected


# ---- refused -------------------------------------------------------------------------------------

BAD_EVERYWHERE = [
    "--index-url=https://x",
    "-e .",
    "-r",
    "a;b",
    "a`id`",
    "`id`",
    "$(id)",
    "a$(id)",
    "a b",
    "a\nb",
    "a\tb",
    "a&&b",
    "a|b",
    "a>x;touch /tmp/pwned",
    "'a'",
    '"a"',
    "",
    "   ",
]


@pytest.mark.parametrize("runtime", ["python", "node", "bun", "deno", "bash"])
@pytest.mark.parametrize("raw", BAD_EVERYWHERE)
def test_parse_spec_refuses_options_and_shell_syntax_in_every_ecosystem(runtime: str, raw: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_spec(RUNTIMES[runtime], raw)
    assert "refusing package spec" in str(info.value)
    assert repr(raw.strip() or raw) in str(info.value) or repr(raw) in str(info.value)


@pytest.mark.parametrize(
    ("runtime", "raw", "why"),
    [
        ("python", "pkg @ https://x", "no URLs"),
        ("python", "pkg@https://x/p.whl", "no URLs"),
        ("python", "pkg; python_version < '3.12'", "markers"),
        ("python", "pkg;python_version<'3.12'", "markers"),
        ("python", "numpy ==1", "spaces"),
        ("python", "numpy==", "numpy=="),
        ("python", "numpy[", "numpy["),
        ("python", "./local/dir", "only a name"),
        ("python", "git+https://github.com/x/y", "only a name"),
        ("node", "Lodash", "lowercase"),
        ("node", "@Scope/pkg", "lowercase"),
        ("node", "lodash@notarange", "not a version range"),
        ("node", "lodash@1.2.3.4", "not a version range"),
        ("node", "lodash@>=1 <2", "expected NAME"),  # a space: refused even though npm would take it
        ("node", "github:user/repo", "expected NAME"),
        ("node", "https://x/y.tgz", "expected NAME"),
        ("node", "lodash@npm:other@1", "expected NAME"),
        ("bun", "Zod", "lowercase"),
        ("deno", "zod", "npm:NAME"),
        ("deno", "zod@3", "npm:NAME"),
        ("deno", "https://deno.land/x/mod.ts", "npm:NAME"),
        ("deno", "npm:Zod", "lowercase"),
        ("deno", "npm:zod@notarange", "not a version range"),
        ("deno", "jsr:std/path", "jsr:@scope/name"),
        ("deno", "jsr:@Std/path", "jsr:@scope/name"),
        ("bash", "JQ", "Debian package name"),
        ("bash", "jq=", "Debian package name"),
        ("bash", "jq=1 2", "Debian package name"),
        ("bash", "libc6:amd64", "Debian package name"),
        ("bash", "jq/bookworm", "Debian package name"),
    ],
)
def test_parse_spec_refuses_with_a_message_naming_the_spec(runtime: str, raw: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_spec(RUNTIMES[runtime], raw)
    message = str(info.value)
    assert message.startswith(f"refusing package spec {raw!r}"), message
    assert why in message


def test_the_option_check_comes_before_the_ecosystem_rules() -> None:
    """`-...` is refused as an option, not merely as an odd name, whatever the ecosystem."""
    for runtime in ("python", "node", "deno", "bash"):
        with pytest.raises(UsageError, match="looks like an option"):
            parse_spec(RUNTIMES[runtime], "--registry=https://evil.example")


# ---- parse_specs: splitting, dedupe, order ------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "values", "texts"),
    [
        ("python", ["numpy>=1,<2"], ["numpy<2,>=1"]),
        ("python", ["numpy>=1,<2,six"], ["numpy<2,>=1", "six"]),
        ("python", ["six,numpy>=1,<2"], ["numpy<2,>=1", "six"]),
        ("python", ["pkg[b,a]>=1,<2,six"], ["pkg[a,b]<2,>=1", "six"]),
        ("python", ["b,a", "c"], ["a", "b", "c"]),
        ("python", ["six", "SIX", "Six"], ["six"]),
        ("python", ["Foo_Bar", "foo-bar", "foo.bar"], ["foo-bar"]),
        ("python", ["numpy<2,>=1", "numpy>=1,<2"], ["numpy<2,>=1"]),
        ("python", ["six,", ",six", "six,,"], ["six"]),
        ("python", [], []),
        ("node", ["lodash@4,zod@3", "lodash@4"], ["lodash@4", "zod@3"]),
        ("node", ["@b/x,@a/y"], ["@a/y", "@b/x"]),
        ("bun", ["zod,lodash"], ["lodash", "zod"]),
        ("deno", ["npm:zod@3,jsr:@std/path"], ["jsr:@std/path", "npm:zod@3"]),
        ("bash", ["jq,curl", "jq"], ["curl", "jq"]),
    ],
)
def test_parse_specs_splits_dedupes_and_sorts(runtime: str, values: list[str], texts: list[str]) -> None:
    assert [s.text for s in parse_specs(RUNTIMES[runtime], values)] == texts


@pytest.mark.parametrize(
    ("runtime", "values"),
    [
        ("python", ["zeta", "Alpha==1", "mid[x]>=2", "beta<3,>1"]),
        ("node", ["zod@3", "@scope/pkg@^1", "lodash"]),
        ("bash", ["jq", "curl=7", "bc"]),
    ],
)
def test_parse_specs_gives_the_same_tuple_for_any_input_order(runtime: str, values: list[str]) -> None:
    results = {parse_specs(RUNTIMES[runtime], list(order)) for order in itertools.permutations(values)}
    assert len(results) == 1
    (result,) = results
    assert list(result) == sorted(result)
    assert isinstance(result, tuple)


def test_parse_specs_refuses_a_bad_part_of_a_comma_separated_value() -> None:
    with pytest.raises(UsageError) as info:
        parse_specs(RUNTIMES["python"], ["six,$(id),numpy"])
    assert "'$(id)'" in str(info.value)


def test_parse_specs_refuses_an_option_hidden_after_a_comma() -> None:
    with pytest.raises(UsageError, match="looks like an option"):
        parse_specs(RUNTIMES["node"], ["lodash,--registry=https://evil.example"])


# ---- satisfies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "version", "expected"),
    [
        ("six==1.17.0", "1.17.0", True),
        ("six==1.17", "1.17.0", True),  # PEP 440: zero padding
        ("six==1.17.0", "1.16.0", False),
        ("six==1.*", "1.17.0", True),
        ("six==1.*", "2.0.0", False),
        ("six>=1.16", "1.17.0", True),
        ("six>=1.18", "1.17.0", False),
        ("six<2,>=1", "1.9", True),
        ("six<2,>=1", "2.0", False),
        ("six~=1.16", "1.17.0", True),
        ("six~=1.16", "2.0", False),
        ("six~=1.16.0", "1.16.9", True),
        ("six~=1.16.0", "1.17.0", False),
        ("six!=1.17.0", "1.17.0", False),
        # a prerelease that is installed counts when it meets the specifier...
        ("six>=1", "2.0rc1", True),
        ("six==2.0rc1", "2.0rc1", True),
        # ...but is still below its final release
        ("six>=2", "2.0rc1", False),
        ("six<2", "2.0rc1", False),
        ("six==1.17.0", "not-a-version", False),
    ],
)
def test_satisfies_pep440(raw: str, version: str, expected: bool) -> None:
    assert satisfies(RUNTIMES["python"], parse_spec(RUNTIMES["python"], raw), version) is expected


@pytest.mark.parametrize(
    ("raw", "version", "expected"),
    [
        ("a@4.17.21", "4.17.21", True),
        ("a@4.17.21", "4.17.20", False),
        ("a@^1", "1.0.0", True),
        ("a@^1", "1.9.3", True),
        ("a@^1", "2.0.0", False),
        ("a@^1", "0.9.0", False),
        ("a@^0.2.3", "0.2.9", True),
        ("a@^0.2.3", "0.3.0", False),
        ("a@~1.2", "1.2.9", True),
        ("a@~1.2", "1.3.0", False),
        ("a@1.x", "1.5.0", True),
        ("a@1.x", "2.0.0", False),
        ("a@1.2.x", "1.2.7", True),
        ("a@1.2.x", "1.3.0", False),
        ("a@*", "0.0.1", True),
        ("a@3", "3.23.8", True),
        ("a@3", "4.0.0", False),
        ("a@^1||^3", "3.1.0", True),
        ("a@^1||^3", "1.0.1", True),
        ("a@^1||^3", "2.1.0", False),
        ("a@>=1.2.0", "1.10.0", True),  # numeric, not string, comparison
        ("a@^1.0.0", "1.1.0-beta.1", False),  # npm: prereleases only match ranges that name them
        ("a@^1", "garbage", False),
    ],
)
def test_satisfies_npm_ranges(raw: str, version: str, expected: bool) -> None:
    assert satisfies(RUNTIMES["node"], parse_spec(RUNTIMES["node"], raw), version) is expected


@pytest.mark.parametrize(
    ("raw", "version", "expected"),
    [("npm:zod@3", "3.23.8", True), ("npm:zod@3", "4.0.0", False), ("jsr:@std/path@^1", "1.0.8", True)],
)
def test_satisfies_deno_uses_npm_ranges(raw: str, version: str, expected: bool) -> None:
    assert satisfies(RUNTIMES["deno"], parse_spec(RUNTIMES["deno"], raw), version) is expected


@pytest.mark.parametrize(
    ("raw", "version", "expected"),
    [("jq=1.6-2", "1.6-2", True), ("jq=1.6-2", "1.6-3", False), ("jq", "1.6-2", True)],
)
def test_satisfies_debian_is_an_exact_version(raw: str, version: str, expected: bool) -> None:
    assert satisfies(RUNTIMES["bash"], parse_spec(RUNTIMES["bash"], raw), version) is expected


@pytest.mark.parametrize(
    ("runtime", "unconstrained", "constrained"),
    [
        ("python", "six", "six==1.17.0"),
        ("node", "lodash", "lodash@^4"),
        ("node", "lodash@latest", "lodash@4.17.21"),
        ("deno", "npm:zod", "npm:zod@3"),
        ("bash", "jq", "jq=1.6-2"),
    ],
)
@pytest.mark.parametrize("unknown", [None, ""])
def test_an_unknown_version_is_only_ok_when_unconstrained(
    runtime: str, unconstrained: str, constrained: str, unknown: str | None
) -> None:
    assert satisfies(RUNTIMES[runtime], parse_spec(RUNTIMES[runtime], unconstrained), unknown) is True
    assert satisfies(RUNTIMES[runtime], parse_spec(RUNTIMES[runtime], constrained), unknown) is False


@pytest.mark.parametrize(
    "value",
    ["--index-url=https://x", "-e .", "six; id", "six`id`", "$(id)", "six six", "six\nnumpy", "a|b;c", "x'y", 'x"y'],
)
def test_screen_refuses_options_and_shell_syntax_without_parsing(value: str) -> None:
    with pytest.raises(UsageError, match="refusing package spec"):
        screen([value])


@pytest.mark.parametrize(
    "value", ["numpy==2.1.3", "requests[socks]>=2.31,<3", "@scope/pkg@^1", "npm:zod@3", "jsr:@std/path", "a@^1||^2"]
)
def test_screen_lets_real_specs_through(value: str) -> None:
    screen([value])


# ---- read_requirements ---------------------------------------------------------------------------


def test_requirements_txt_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(
        "# pinned for the sandbox\n"
        "\n"
        "numpy>=1,<2   # inline comment\n"
        "   \n"
        "Requests[socks]>=2.31\r\n"
        "six\n"
        "SIX\n"
        "  # indented comment\n"
    )
    assert [s.text for s in read_requirements(RUNTIMES["python"], str(path))] == [
        "numpy<2,>=1",
        "requests[socks]>=2.31",
        "six",
    ]


def test_an_empty_requirements_txt_is_no_specs(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("# nothing yet\n\n")
    assert read_requirements(RUNTIMES["python"], str(path)) == ()


@pytest.mark.parametrize(
    "line", ["-r other.txt", "--index-url https://evil.example", "-e .", "six; python_version<'3'", "pkg @ https://x"]
)
def test_requirements_txt_options_urls_and_markers_are_refused(tmp_path: Path, line: str) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(f"six\n{line}\n")
    with pytest.raises(UsageError) as info:
        read_requirements(RUNTIMES["python"], str(path))
    assert repr(line) in str(info.value)


@pytest.mark.parametrize("runtime", ["node", "bun"])
def test_package_json_dependencies(tmp_path: Path, runtime: str) -> None:
    path = tmp_path / "package.json"
    path.write_text(
        json.dumps(
            {
                "name": "app",
                "dependencies": {"lodash": "^4.17.21", "zod": "*", "left-pad": "", "@scope/pkg": "~1.2"},
                "devDependencies": {"jest": "^29"},
            }
        )
    )
    texts = [s.text for s in read_requirements(RUNTIMES[runtime], str(path))]
    assert texts == ["@scope/pkg@~1.2", "left-pad", "lodash@^4.17.21", "zod"]


@pytest.mark.parametrize(
    "content", [{"name": "app"}, {"dependencies": {}}, {"dependencies": None}], ids=["none", "empty", "null"]
)
def test_package_json_without_dependencies_is_no_specs(tmp_path: Path, content: object) -> None:
    path = tmp_path / "package.json"
    path.write_text(json.dumps(content))
    assert read_requirements(RUNTIMES["node"], str(path)) == ()


@pytest.mark.parametrize("text", ["not json", "[]", '"a string"'])
def test_package_json_that_is_not_an_object_is_a_usage_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "package.json"
    path.write_text(text)
    with pytest.raises(UsageError, match="is not a package.json with a dependencies object"):
        read_requirements(RUNTIMES["node"], str(path))


@pytest.mark.parametrize("deps", [["lodash"], "lodash"])
def test_package_json_with_dependencies_that_are_not_an_object_is_a_usage_error(tmp_path: Path, deps: object) -> None:
    path = tmp_path / "package.json"
    path.write_text(json.dumps({"dependencies": deps}))
    with pytest.raises(UsageError):
        read_requirements(RUNTIMES["node"], str(path))


@pytest.mark.parametrize("spec", ["github:user/repo", "file:../local", "https://x/y.tgz", "npm:other@1"])
def test_package_json_with_a_non_registry_dependency_is_refused(tmp_path: Path, spec: str) -> None:
    path = tmp_path / "package.json"
    path.write_text(json.dumps({"dependencies": {"dep": spec}}))
    with pytest.raises(UsageError) as info:
        read_requirements(RUNTIMES["node"], str(path))
    assert repr(f"dep@{spec}") in str(info.value)


def test_requirements_file_that_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(UsageError, match=f"--requirements: cannot read {path}"):
        read_requirements(RUNTIMES["python"], str(path))


@pytest.mark.parametrize("runtime", ["deno", "bash"])
def test_requirements_is_only_for_python_node_and_bun(tmp_path: Path, runtime: str) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("jq\n")
    with pytest.raises(UsageError, match=f"not {runtime}"):
        read_requirements(RUNTIMES[runtime], str(path))
