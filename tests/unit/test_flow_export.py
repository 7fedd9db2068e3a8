"""A code workflow's YAML export validates and loads back to the very definition it came from
(same sha256), whatever literals it holds; the CLI exports, validates and finds code
workflows; the README's Python and YAML are one definition."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn import Flow, Value, workflow
from cairn.cli.main import main
from cairn.codeflow import adapter
from cairn.definitions import loader

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "definitions/order_code/v1.py"

_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30
) | st.sampled_from(
    ["yes", "No", "on", "null", "~", "true", "1e3", "0x1F", "2026-01-01", "- a", "a: b", "#x",
     "`x`", "'q'", '"q"', "$$.Execution.Id", "{a: b}", "[1]", " lead", "trail ", "a\nb", "a\n",
     "\t", "\u00e9\u4e2d", "|", ">", "*ref", "&anchor", "!tag", "%", "@", "..."]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # what a definition may hold: cairn.core.limits
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    params=st.dictionaries(_TEXT.filter(lambda k: not k.endswith(".$")), _JSON, max_size=4),
    result=_JSON,
    comment=_TEXT,
)
def test_any_literal_survives_the_yaml_round_trip(
    params: dict[str, Any], result: Any, comment: str
) -> None:
    def flow_(flow: Flow, order: Value) -> object:
        flow.task("Do", params, comment=comment or None)
        flow.compute(result, name="Keep")
        return {"kept": result, "id": order.id}

    built = workflow(name="literals", version=1, comment=comment or None)(flow_)
    document = built.compile(activities=None)
    text = built.export(activities=None)
    assert loader.loads(text).sha256 == document.sha256


def test_cli_export_prints_yaml_that_deploys_to_the_same_hash(tmp_path: Path) -> None:
    out = tmp_path / "order_code.yaml"
    result = CliRunner().invoke(main, ["export", EXAMPLE, "-o", str(out)])
    assert result.exit_code == 0, result.output
    (code,) = adapter.load(EXAMPLE)
    exported = loader.load(out)
    assert exported.sha256 == code.compile().sha256
    assert exported.source.startswith("# order_code v1, built from definitions/order_code/v1.py")
    by_module = CliRunner().invoke(main, ["export", "definitions.order_code.v1:order"])
    assert by_module.exit_code == 0, by_module.output
    assert by_module.stdout == out.read_text(encoding="utf-8")


def test_cli_export_needs_one_workflow(tmp_path: Path) -> None:
    module = tmp_path / "two.py"
    module.write_text(
        "from cairn import workflow\n"
        "@workflow(name='a', version=1)\n"
        "def a(flow, input):\n    flow.task('X')\n"
        "@workflow(name='b', version=1)\n"
        "def b(flow, input):\n    flow.task('X')\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    two = runner.invoke(main, ["export", str(module)])
    assert two.exit_code == 2
    assert "defines 2 workflows (a (a@1), b (b@1)); name one" in two.stderr
    named = runner.invoke(main, ["export", f"{module}:b", "--activities", "tests.unit.flow_stubs"])
    assert named.exit_code == 0, named.output
    assert "Name: b\n" in named.stdout
    by_name = runner.invoke(
        main, ["export", f"{module}:a@1", "--activities", "tests.unit.flow_stubs"]
    )
    assert "Name: a\n" in by_name.stdout
    missing = runner.invoke(main, ["export", f"{module}:c"])
    assert missing.exit_code == 2
    assert "has no workflow 'c' (it has: a, b)" in missing.stderr
    nowhere = runner.invoke(main, ["export", "no_such_module_at_all:flow"])
    assert nowhere.exit_code == 2
    assert "cannot import 'no_such_module_at_all'" in nowhere.stderr


def test_validate_finds_code_workflows_in_folders_and_skips_helper_modules(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("X = 1\n", encoding="utf-8")
    (tmp_path / "__pycache__").mkdir()
    result = CliRunner().invoke(main, ["validate", "definitions/", str(tmp_path / "helpers.py")])
    assert result.exit_code == 2
    assert f"ok {EXAMPLE} (order_code v1)" in result.stdout.splitlines()
    assert "ok definitions/order/v2.yaml (order v2)" in result.stdout.splitlines()
    assert "helpers.py: defines no @workflow function" in result.stderr
    folder = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert "no definition files" in folder.stderr


def test_the_same_definition_in_a_fresh_interpreter_with_another_hash_seed() -> None:
    (code,) = adapter.load(EXAMPLE)
    script = (
        "from cairn.codeflow import adapter\n"
        f"print(adapter.load({EXAMPLE!r})[0].compile().sha256)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    assert completed.stdout.strip() == code.compile().sha256


def test_the_readme_shows_one_definition_in_yaml_and_in_python() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python or YAML?") :]
    yaml_text = re.search(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    python_text = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert yaml_text is not None and python_text is not None
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(python_text.group(1), "README.md", "exec"), namespace)
    (flow,) = [v for v in namespace.values() if isinstance(v, adapter.Workflow)]
    assert flow.compile(activities=None).sha256 == loader.loads(yaml_text.group(1)).sha256
