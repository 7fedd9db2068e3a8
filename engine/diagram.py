"""Draw a definition as a diagram, so a flow can be reviewed as a picture next to its YAML.

The definition is first turned into one small picture model (nodes, nested clusters, edges);
``to_mermaid`` and ``to_dot`` then only spell that model in their language. Keeping the
layout decisions in one place means both diagrams always show the same flow.

State names may hold any character but ``/``, ``[`` and ``]``, so they never become node ids:
every node gets a fresh identifier of ASCII letters, digits and underscores, and names only
ever appear inside escaped labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

# What a node stands for decides its shape and colour in both languages.
Kind = Literal[
    "start",
    "end",
    "join",
    "Task",
    "Pass",
    "Wait",
    "Choice",
    "Parallel",
    "Map",
    "Succeed",
    "Fail",
    "Compensate",
    "ContinueAsNew",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """One box of the diagram; ``lines`` are its label, first line the state name."""

    id: str
    kind: Kind
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """A framed group: a Parallel or Map state, or one branch of a Parallel."""

    id: str
    title: str
    members: tuple[Node | Cluster, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """An arrow; dashed arrows are Catch routes taken on an error."""

    source: str
    target: str
    label: str = ""
    dashed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Picture:
    """The whole diagram, independent of the language it is written in."""

    members: tuple[Node | Cluster, ...]
    edges: tuple[Edge, ...]


def to_mermaid(body: dict[str, Any]) -> str:
    """Return a Mermaid ``flowchart TD`` of a validated definition body."""
    picture = picture_of(body)
    lines = ["flowchart TD"]
    lines += _mermaid_members(picture.members, depth=1)
    catch_links: list[str] = []
    for number, edge in enumerate(picture.edges):
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
        if edge.dashed:
            catch_links.append(str(number))
    lines += [
        "    classDef terminal fill:#e8f5e9,stroke:#2e7d32",
        "    classDef fail fill:#fdecea,stroke:#c62828,color:#7f0000",
    ]
    for kind, css_class in (("Fail", "fail"), ("end", "terminal"), ("Succeed", "terminal")):
        ids = [node.id for node in _nodes(picture.members) if node.kind == kind]
        if ids:
            lines.append(f"    class {','.join(ids)} {css_class}")
    if catch_links:
        lines.append(f"    linkStyle {','.join(catch_links)} stroke:#c62828,color:#c62828")
    return "\n".join(lines) + "\n"


def to_dot(body: dict[str, Any]) -> str:
    """Return a Graphviz ``digraph`` of a validated definition body."""
    picture = picture_of(body)
    lines = [
        f"digraph {_dot_string(str(body.get('Name', 'workflow')))} {{",
        '    graph [rankdir=TB, fontname="Helvetica", fontsize=11];',
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica",'
        " fontsize=11];",
        '    edge [fontname="Helvetica", fontsize=9];',
    ]
    lines += _dot_members(picture.members, depth=1)
    for edge in picture.edges:
        attributes = []
        if edge.label:
            attributes.append(f"label={_dot_string(edge.label)}")
        if edge.dashed:
            attributes.append('style=dashed, color="#c62828", fontcolor="#c62828"')
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def picture_of(body: dict[str, Any]) -> Picture:
    """Lay out the nodes, clusters and edges both diagram languages draw."""
    drawing = _Drawing()
    start = Node(id=drawing.fresh_id("x_start"), kind="start", lines=("start",))
    drawing.edge(start.id, drawing.state_id(body["StartAt"]))
    members: list[Node | Cluster] = [start, *drawing.scope(body["States"], exit_id=drawing.end_id)]
    if drawing.end_used:
        members.append(Node(id=drawing.end_id, kind="end", lines=("end",)))
    return Picture(members=tuple(members), edges=tuple(drawing.edges))


@dataclass(slots=True)
class _Drawing:
    """Collects edges and hands out unique ids while the definition is walked once."""

    used_ids: set[str] = field(default_factory=set)
    state_ids: dict[str, str] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    end_id: str = ""
    end_used: bool = False

    def __post_init__(self) -> None:
        self.end_id = self.fresh_id("x_end")

    def fresh_id(self, base: str) -> str:
        """Return ``base`` made into an identifier, suffixed until no other node has it."""
        safe = re.sub(r"[^A-Za-z0-9_]", "_", base)
        candidate, number = safe, 1
        while candidate in self.used_ids:
            number += 1
            candidate = f"{safe}_{number}"
        self.used_ids.add(candidate)
        return candidate

    def state_id(self, name: str) -> str:
        """Return the id of a state's node; names are unique across a valid definition."""
        if name not in self.state_ids:
            self.state_ids[name] = self.fresh_id(f"s_{name}")
        return self.state_ids[name]

    def edge(self, source: str, target: str, label: str = "", *, dashed: bool = False) -> None:
        if target == self.end_id:
            self.end_used = True
        self.edges.append(Edge(source=source, target=target, label=label, dashed=dashed))

    def scope(self, states: dict[str, Any], *, exit_id: str) -> list[Node | Cluster]:
        """Draw the states of one scope; its ends lead to ``exit_id``."""
        return [self.state(name, state, exit_id=exit_id) for name, state in states.items()]

    def state(self, name: str, state: dict[str, Any], *, exit_id: str) -> Node | Cluster:
        """Draw one state and the edges leaving it; a Parallel or Map becomes a frame."""
        node_id = self.state_id(name)
        kind: Kind = state["Type"]
        node = Node(id=node_id, kind=kind, lines=(name, _describe(state)))
        drawn: Node | Cluster = node
        leaves_from = node_id
        if kind in ("Parallel", "Map"):
            drawn, leaves_from = self.frame(name, state, node)
        match kind:
            case "Choice":
                for choice in state["Choices"]:
                    self.edge(node_id, self.state_id(choice["Next"]), choice["Condition"])
                if "Default" in state:
                    self.edge(node_id, self.state_id(state["Default"]), "default")
            case "Succeed":
                self.edge(node_id, exit_id)
            case "ContinueAsNew":
                # It ends the whole run, even from inside a branch; the next run starts afresh.
                self.edge(node_id, self.end_id, "continue as new")
            case "Fail":
                pass  # the execution (or the branch, which fails its Parallel) stops here
            case _:
                target = self.state_id(state["Next"]) if "Next" in state else exit_id
                self.edge(leaves_from, target)
        for catcher in state.get("Catch", []):
            errors = ", ".join(catcher["ErrorEquals"])
            self.edge(node_id, self.state_id(catcher["Next"]), errors, dashed=True)
        return drawn

    def frame(self, name: str, state: dict[str, Any], node: Node) -> tuple[Cluster, str]:
        """Draw a Parallel or Map around its inner states; return it and its join's id.

        The inner scopes end at a join point and the state's Next leaves from there, so the
        arrow onwards visibly starts once every branch or item is done.
        """
        join = Node(id=self.fresh_id(f"j_{name}"), kind="join", lines=("join",))
        inner: list[Node | Cluster] = []
        if state["Type"] == "Parallel":
            for number, branch in enumerate(state["Branches"], start=1):
                self.edge(node.id, self.state_id(branch["StartAt"]))
                branch_members = self.scope(branch["States"], exit_id=join.id)
                inner.append(
                    Cluster(
                        id=self.fresh_id(f"c_{name}_branch_{number}"),
                        title=f"branch {number}",
                        members=tuple(branch_members),
                    )
                )
        else:
            processor = state["ItemProcessor"]
            self.edge(node.id, self.state_id(processor["StartAt"]), "each item")
            inner += self.scope(processor["States"], exit_id=join.id)
        cluster = Cluster(
            id=self.fresh_id(f"c_{name}"),
            title=f"{name} ({state['Type']})",
            members=(node, *inner, join),
        )
        return cluster, join.id


def _describe(state: dict[str, Any]) -> str:
    """Return the second label line: the type and what the state does at a glance."""
    kind = state["Type"]
    match kind:
        case "Task":
            detail = str(state.get("Activity") or f"workflow {state['Workflow']}")
            if state.get("Callback"):
                detail += " (callback)"
            return f"Task: {detail}"
        case "Wait":
            ends = []
            if "Seconds" in state:
                ends.append(f"{state['Seconds']}s")
            if "SecondsPath" in state:
                ends.append(f"seconds from {state['SecondsPath']}")
            if "Timestamp" in state:
                ends.append(f"until {state['Timestamp']}")
            if "TimestampPath" in state:
                ends.append(f"until {state['TimestampPath']}")
            if "Signal" in state:
                ends.append(f"signal {state['Signal']}")
            return f"Wait: {' or '.join(ends)}"
        case "Map" if "ItemsPath" in state:
            return f"Map over {state['ItemsPath']}"
        case "Fail" if "Error" in state:
            return f"Fail: {state['Error']}"
        case _:
            return str(kind)


def _nodes(members: tuple[Node | Cluster, ...]) -> list[Node]:
    found: list[Node] = []
    for member in members:
        if isinstance(member, Cluster):
            found += _nodes(member.members)
        else:
            found.append(member)
    return found


def _one_line(text: str) -> str:
    # Conditions may be YAML block scalars; a label keeps them on one line.
    return " ".join(text.split())


# Mermaid shapes: the text goes between the two halves.
_MERMAID_SHAPES: dict[Kind, tuple[str, str]] = {
    "start": ("((", "))"),
    "end": ("(((", ")))"),
    "join": ("((", "))"),
    "Task": ("[", "]"),
    "Pass": ("(", ")"),
    "Wait": ("{{", "}}"),
    "Choice": ("{", "}"),
    "Parallel": ("[[", "]]"),
    "Map": ("[[", "]]"),
    "Succeed": ("([", "])"),
    "Fail": ("([", "])"),
    "Compensate": ("[/", "/]"),
    "ContinueAsNew": ("([", "])"),
}


def _mermaid_members(members: tuple[Node | Cluster, ...], *, depth: int) -> list[str]:
    # Nodes are declared inside their subgraph and every edge after all subgraphs: Mermaid
    # places a node in the subgraph where it is first mentioned.
    indent = "    " * depth
    lines: list[str] = []
    for member in members:
        if isinstance(member, Cluster):
            lines.append(f'{indent}subgraph {member.id} ["{_mermaid_text(member.title)}"]')
            lines += _mermaid_members(member.members, depth=depth + 1)
            lines.append(f"{indent}end")
        else:
            opening, closing = _MERMAID_SHAPES[member.kind]
            label = "<br>".join(_mermaid_text(line) for line in member.lines)
            lines.append(f'{indent}{member.id}{opening}"{label}"{closing}')
    return lines


def _mermaid_text(text: str) -> str:
    """Escape text for a double-quoted Mermaid label.

    Inside quotes Mermaid still decodes ``#...;`` entity codes, renders HTML, reads a label
    wrapped in backticks as Markdown, breaks the line at a backslash-n and ends an edge label
    at ``|``; numeric entity codes keep every such character literal.
    """
    special = '"#&<>\\`|'
    return "".join(f"#{ord(char)};" if char in special else char for char in _one_line(text))


# Graphviz attributes per kind, beyond the rounded white box every node starts as.
_DOT_STYLES: dict[Kind, str] = {
    "start": 'shape=circle, fillcolor="#000000", fontcolor="#ffffff", fontsize=9',
    "end": 'shape=doublecircle, fillcolor="#e8f5e9", color="#2e7d32", fontsize=9',
    "join": "shape=point, width=0.15",
    "Task": "style=filled",
    "Pass": "",
    "Wait": 'shape=hexagon, style=filled, fillcolor="#fff8e1"',
    "Choice": 'shape=diamond, style=filled, fillcolor="#e3f2fd"',
    "Parallel": 'shape=component, style=filled, fillcolor="#f3e5f5"',
    "Map": 'shape=component, style=filled, fillcolor="#f3e5f5"',
    "Succeed": 'fillcolor="#e8f5e9", color="#2e7d32"',
    "Fail": 'fillcolor="#fdecea", color="#c62828", fontcolor="#7f0000", penwidth=2',
    "Compensate": 'shape=parallelogram, style=filled, fillcolor="#fff3e0"',
    "ContinueAsNew": 'fillcolor="#e0f7fa"',
}


def _dot_members(members: tuple[Node | Cluster, ...], *, depth: int) -> list[str]:
    indent = "    " * depth
    lines: list[str] = []
    for member in members:
        if isinstance(member, Cluster):
            # Graphviz frames a subgraph only when its name starts with "cluster".
            lines.append(f"{indent}subgraph cluster_{member.id} {{")
            lines.append(f"{indent}    label={_dot_string(member.title)};")
            lines.append(f'{indent}    style="rounded,dashed"; color="#7e57c2";')
            lines += _dot_members(member.members, depth=depth + 1)
            lines.append(f"{indent}}}")
        else:
            label = "\\n".join(_dot_escape(line) for line in member.lines)
            style = _DOT_STYLES[member.kind]
            attributes = f'label="{label}", {style}' if style else f'label="{label}"'
            lines.append(f"{indent}{member.id} [{attributes}];")
    return lines


def _dot_escape(text: str) -> str:
    # In a Graphviz label a backslash starts an escape (\n, \N, \G...), so it is doubled.
    return _one_line(text).replace("\\", "\\\\").replace('"', '\\"')


def _dot_string(text: str) -> str:
    return f'"{_dot_escape(text)}"'
