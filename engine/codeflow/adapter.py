"""The code-as-workflow adapter: ``@workflow`` functions become definitions at deploy time.

A decorated function is run once, when it is deployed or exported, to build the definition
(``codeflow.flow``); the result is checked by the same schema and semantic rules as a YAML
file, every problem moved to the user's file and line, and deployed like any definition:
same versions, same content hash, same immutability. Only the stored definition runs later,
so a changed, broken or deleted function never touches executions already deployed.

This module also finds workflows for the command line (``MODULE:NAME``, ``FILE.py``) and
writes a definition as YAML that loads back to the same content hash.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Collection, Mapping
from types import ModuleType
from typing import Any, NoReturn

import yaml

from cairn import activities, errors
from cairn.codeflow import builder, flow, options, sites
from cairn.codeflow.sites import Site
from cairn.codeflow.symbolic import Value
from cairn.definitions import loader


class TargetError(errors.CairnError):
    """A command-line target names no importable module, file or workflow."""

    exit_code = 2


REGISTERED: Any = object()
"""``activities=REGISTERED``: check Activity names against the process-wide registry."""

WorkflowFunction = Callable[[flow.Flow, Value], object]


class Workflow:
    """A workflow written as a Python function; ``compile()`` gives its definition."""

    def __init__(
        self,
        function: WorkflowFunction,
        *,
        name: str,
        version: int,
        site: Site,
        timeout: options.Duration | None = None,
        input_schema: Mapping[str, Any] | None = None,
        comment: str | None = None,
    ) -> None:
        self.function = function
        self.name = name
        self.version = version
        self.site = site
        self.timeout = timeout
        self.input_schema = input_schema
        self.comment = comment if comment is not None else _docstring(function)
        self.module = getattr(function, "__module__", "")
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return f"<Workflow {self.name}@{self.version} ({self.site})>"

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        raise errors.CairnError(
            f"workflow {self.name}@{self.version} is not called: it is deployed "
            f"(`cairn deploy {self.module}:{self.function.__name__}`) and started by name"
        )

    @property
    def file(self) -> str:
        code = getattr(self.function, "__code__", None)
        return sites.shown_file(code.co_filename) if code is not None else self.site.file

    def build(self) -> builder.Built:
        """Run the function once and return what it built (problems not yet raised)."""
        try:
            return flow.build(
                self.function,
                name=self.name,
                version=self.version,
                site=self.site,
                comment=self.comment,
                timeout=self.timeout,
                input_schema=self.input_schema,
            )
        except errors.CairnError:
            raise
        except Exception as exc:
            message = f"building the flow raised {type(exc).__name__}: {exc}"
            raise errors.DefinitionError(
                [sites.raised_at(exc, self.site).problem(message)]
            ) from exc

    def compile(self, activities: Collection[str] | None = REGISTERED) -> loader.Document:
        """The definition, checked; raises DefinitionError naming the user's lines.

        ``activities`` are the registered names Activity fields may use: by default the
        process-wide registry as it stands now, None to skip that check.
        """
        built = self.build()
        names = _names(activities)
        problems = list(built.problems)
        try:
            loader.validate(built.body, self.file, names)
        except errors.DefinitionError as exc:
            hint = "" if names is None or names else _NO_ACTIVITIES
            for problem in exc.problems:
                located = built.locate(problem)
                if hint and "is not registered" in located.message:
                    located = dataclasses.replace(located, message=located.message + hint)
                problems.append(located)
        if problems:
            unique = {(p.file, p.line, p.column, p.message): p for p in problems}
            raise errors.DefinitionError(sorted(unique.values(), key=_order))
        header = (
            f"# {self.name} v{self.version}, built from {self.file} "
            f"({self.module}:{self.function.__name__}).\n"
        )
        text = header + to_yaml(built.body)
        return loader.Document(
            body=built.body, source=text, file=self.file, sha256=loader.digest(built.body)
        )

    def export(self, activities: Collection[str] | None = REGISTERED) -> str:
        """The definition as YAML text that validates and deploys to the same content hash."""
        document = self.compile(activities)
        again = loader.loads(document.source, f"{self.name}.yaml")
        if again.sha256 != document.sha256:
            raise errors.CairnError(
                f"the YAML of {self.name}@{self.version} does not read back the same; "
                "please report this with the workflow"
            )
        return document.source


_NO_ACTIVITIES = (
    " (no activities are registered: import the module that registers them in the "
    "workflow's module, or pass --activities MODULE)"
)


def workflow(
    *,
    name: str,
    version: int,
    timeout: options.Duration | None = None,
    input_schema: Mapping[str, Any] | None = None,
    comment: str | None = None,
) -> Callable[[WorkflowFunction], Workflow]:
    """Declare a function ``(flow, input)`` as version ``version`` of workflow ``name``.

    ``timeout`` bounds the whole execution; ``input_schema`` is checked at start;
    ``comment`` (default: the docstring) describes it. The function is run at deploy time
    only; see ``codeflow.flow.Flow`` for what it may do.
    """
    site = sites.user_site()

    def register(function: WorkflowFunction) -> Workflow:
        return Workflow(
            function,
            name=name,
            version=version,
            site=site,
            timeout=timeout,
            input_schema=input_schema,
            comment=comment,
        )

    return register


def _names(activities_: Collection[str] | None) -> list[str] | None:
    if activities_ is None:
        return None
    if activities_ is REGISTERED:
        return list(activities.registry)
    return list(activities_)


def _order(problem: errors.Problem) -> tuple[str, int, int, str]:
    return (problem.file, problem.line, problem.column, problem.message)


def _docstring(function: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(function)
    return doc or None


# --- YAML --------------------------------------------------------------------------------


_BREAKS = ("\x85", "\u2028", "\u2029", "\r")


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key, short scalar lists inline."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if any(c in data for c in _BREAKS):
        # YAML reads these as line breaks in any other style; double quotes escape them.
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data.rstrip("\n"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_str(data)


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    scalars = all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in data)
    inline = bool(data) and scalars and sum(len(str(v)) + 2 for v in data) < 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


def _dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    # Short literal objects read best inline ({type: string}); templates stay in blocks.
    scalars = all(
        isinstance(v, (int, float)) or (isinstance(v, str) and "\n" not in v) for v in data.values()
    )
    inline = not data or (
        scalars
        and len(data) <= 3
        and "Type" not in data
        and not any(k.endswith(".$") for k in data)
        and sum(len(k) + len(str(v)) + 4 for k, v in data.items()) < 50
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=inline)


_Dumper.add_representer(str, _text)
_Dumper.add_representer(list, _list)
_Dumper.add_representer(dict, _dict)


def to_yaml(body: Mapping[str, Any]) -> str:
    """A definition body as YAML, in the order it was built (loads back to the same body)."""
    return yaml.dump(
        body,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 16,
        indent=2,
    )


# --- finding workflows -------------------------------------------------------------------


def is_target(text: str) -> bool:
    """Whether a command-line argument names Python (``FILE.py``, ``MODULE:NAME``)."""
    if os.path.isdir(text):
        return False
    if text.endswith(".py"):
        return True
    return ":" in text and not os.path.exists(text)


def load(target: str) -> list[Workflow]:
    """The workflows a target names: ``MODULE:NAME``, ``FILE.py:NAME`` or ``FILE.py`` (all).

    ``NAME`` is the attribute holding the workflow, or its workflow name (``name@version``
    to pick one version).
    """
    where, attribute = target, None
    if ":" in target and not os.path.exists(target):
        where, attribute = target.rsplit(":", 1)
    module = import_file(where) if where.endswith(".py") else import_module(where)
    if attribute is None:
        return workflows_in(module)
    found = getattr(module, attribute, None)
    if isinstance(found, Workflow):
        return [found]
    name, _, version = attribute.partition("@")
    every = [v for v in vars(module).values() if isinstance(v, Workflow)]
    matches = [w for w in every if w.name == name and (not version or str(w.version) == version)]
    if not matches:
        known = ", ".join(sorted({k for k, v in vars(module).items() if isinstance(v, Workflow)}))
        raise TargetError(
            f"{where} has no workflow {attribute!r}"
            + (f" (it has: {known})" if known else " (it defines no @workflow)")
        )
    return matches


def documents(target: str, *, required: bool = True) -> list[loader.Document]:
    """The checked definitions of the workflows a target names, against the registry.

    A file found in a folder may hold no workflow (a helper module): ``required=False``.
    """
    found = load(target)
    if not found and required:
        raise TargetError(f"{target}: defines no @workflow function")
    return [w.compile() for w in found]


def workflows_in(module: ModuleType) -> list[Workflow]:
    """The workflows a module defines (not those it imports), in the order written."""
    seen: list[Workflow] = []
    for value in vars(module).values():
        if isinstance(value, Workflow) and value.module == module.__name__ and value not in seen:
            seen.append(value)
    return seen


def import_module(name: str) -> ModuleType:
    """Import a module by name for its workflows; problems name the user's line."""
    activities.search_first()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise TargetError(f"cannot import {name!r}: {exc}") from exc
        raise _import_problem(exc) from exc
    except Exception as exc:
        raise _import_problem(exc) from exc


def import_file(path: str) -> ModuleType:
    """Import a Python file for its workflows: by its module name when it has one on
    ``sys.path`` (so it is imported once), else under a name of its own."""
    absolute = os.path.abspath(path)
    if not os.path.isfile(absolute):
        raise TargetError(f"{path}: no such file")
    activities.search_first()
    dotted = _dotted_name(absolute)
    if dotted is not None:
        return import_module(dotted)
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:10]
    name = f"_cairn_code_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _import_problem(exc) from exc
    return module


def _dotted_name(absolute: str) -> str | None:
    for entry in sys.path:
        base = os.path.abspath(entry or os.getcwd())
        if not absolute.startswith(base + os.sep):
            continue
        parts = os.path.relpath(absolute, base)[: -len(".py")].split(os.sep)
        if not all(p.isidentifier() for p in parts):
            continue
        dotted = ".".join(parts)
        try:
            spec = importlib.util.find_spec(dotted)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and os.path.abspath(spec.origin) == absolute:
            return dotted
    return None


def _import_problem(exc: BaseException) -> errors.DefinitionError:
    if isinstance(exc, SyntaxError) and exc.filename:
        site = Site(sites.shown_file(exc.filename), exc.lineno or 0, exc.offset or 0)
        return errors.DefinitionError([site.problem(f"invalid Python: {exc.msg}")])
    site = sites.raised_at(exc, Site("<import>", 0, 0))
    message = f"importing the module raised {type(exc).__name__}: {exc}"
    return errors.DefinitionError([site.problem(message)])


sites.internal(__file__)
