"""Diagrams of definitions: what ``cairn.diagram`` draws and how ``cairn graph`` writes it."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cairn import diagram as graph
from cairn.cli import graph as graph_cli
from cairn.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
ORDER = ROOT / "definitions" / "order"

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Every state type, nested scopes, and names that would break an unescaped diagram.
AWKWARD = """
Name: awkward
Version: 1
StartAt: 'Say "hi" #1'
States:
  'Say "hi" #1':
    Type: Pass
    Next: end
  end:
    Type: Choice
    Choices:
      - Condition: "name == 'a|b' && note == '<b>x</b> & \\"q\\"'"
        Next: class
      - Condition: "contains(path, '\\\\n') && tags[?@ == `\\"x\\"`]"
        Next: subgraph
    Default: o
  class:
    Type: Task
    Activity: Charge.Card
    Catch:
      - ErrorEquals: [CardDeclined, States.Timeout]
        Next: x-y.z
    Next: a b
  a b:
    Type: Task
    Workflow: child@2
    Callback: true
    End: true
  x-y.z:
    Type: Fail
    Error: Declined
  subgraph:
    Type: Parallel
    Branches:
      - StartAt: graph
        States:
          graph:
            Type: Wait
            Seconds: 5
            Signal: go
            Next: style
          style:
            Type: Succeed
      - StartAt: default
        States:
          default:
            Type: Map
            ItemsPath: items
            ItemProcessor:
              StartAt: a-b
              States:
                a-b:
                  Type: Wait
                  Timestamp: "2026-01-01T00:00:00Z"
                  End: true
            End: true
    Catch:
      - ErrorEquals: [States.ALL]
        Next: x-y.z
    Next: a_b
  a_b:
    Type: Compensate
    Next: Überprüfung ✓
  Überprüfung ✓:
    Type: ContinueAsNew
  o:
    Type: Succeed
"""

MERMAID_NODE = re.compile(r"^\s*([A-Za-z0-9_]+)(\(\(\(|\(\(|\[\[|\[/|\(\[|\{\{|\[|\(|\{)\"")
MERMAID_EDGE = re.compile(r"^\s*(\S+) (-->|-\.->)(?:\|\"([^\"]*)\"\|)? (\S+)$")
DOT_NODE = re.compile(r"^\s*([A-Za-z0-9_]+) \[label=\"((?:[^\"\\]|\\.)*)\"")
DOT_EDGE = re.compile(r"^\s*(\S+) -> (\S+?)(?: \[(.*)\])?;$")


def awkward() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(AWKWARD)
    return body


def state_names(states: dict[str, Any]) -> list[str]:
    names = []
    for name, state in states.items():
        names.append(name)
        for branch in state.get("Branches", []):
            names += state_names(branch["States"])
        if "ItemProcessor" in state:
            names += state_names(state["ItemProcessor"]["States"])
    return names


def mermaid_nodes(text: str) -> dict[str, str]:
    """Map each declared node id to its declaration line."""
    found = {}
    for line in text.splitlines():
        match = MERMAID_NODE.match(line)
        if match:
            assert match.group(1) not in found, f"node declared twice: {line}"
            found[match.group(1)] = line
    return found


def mermaid_edges(text: str) -> list[tuple[str, str, str, str]]:
    """Return (source, arrow, label, target) for every edge line."""
    edges = []
    for line in text.splitlines():
        match = MERMAID_EDGE.match(line)
        if match:
            source, arrow, label, target = match.groups()
            edges.append((source, arrow, label or "", target))
    return edges


def dot_nodes(text: str) -> dict[str, str]:
    """Map each node id to its (escaped) label."""
    return {m.group(1): m.group(2) for m in map(DOT_NODE.match, text.splitlines()) if m}


def dot_edges(text: str) -> list[tuple[str, str, str]]:
    """Return (source, target, attributes) for every edge line."""
    matches = [DOT_EDGE.match(line) for line in text.splitlines()]
    return [(m.group(1), m.group(2), m.group(3) or "") for m in matches if m]


def node_of(picture: graph.Picture, name: str) -> graph.Node:
    """Return the node whose label starts with the state ``name``."""
    nodes = all_nodes(picture.members)
    (node,) = [n for n in nodes if n.lines[0] == name and n.kind not in ("start", "end", "join")]
    return node


def all_nodes(members: tuple[graph.Node | graph.Cluster, ...]) -> list[graph.Node]:
    nodes: list[graph.Node] = []
    for member in members:
        if isinstance(member, graph.Cluster):
            nodes += all_nodes(member.members)
        else:
            nodes.append(member)
    return nodes


def cluster_titled(members: tuple[graph.Node | graph.Cluster, ...], title: str) -> graph.Cluster:
    for member in members:
        if isinstance(member, graph.Cluster):
            if member.title == title:
                return member
            try:
                return cluster_titled(member.members, title)
            except LookupError:
                continue
    raise LookupError(title)


def join_of(cluster: graph.Cluster) -> graph.Node:
    (join,) = [m for m in cluster.members if isinstance(m, graph.Node) and m.kind == "join"]
    return join


# --- the picture both languages draw -------------------------------------------------------


def test_every_state_is_one_node_labelled_with_its_name_and_type() -> None:
    body = awkward()
    picture = graph.picture_of(body)
    labels = {
        n.lines[0]: n.lines[1]
        for n in all_nodes(picture.members)
        if n.kind not in ("start", "end", "join")
    }
    assert sorted(labels) == sorted(state_names(body["States"]))
    assert labels["class"] == "Task: Charge.Card"
    assert labels["a b"] == "Task: workflow child@2 (callback)"
    assert labels["graph"] == "Wait: 5s or signal go"
    assert labels["a-b"] == "Wait: until 2026-01-01T00:00:00Z"
    assert labels["default"] == "Map over items"
    assert labels["x-y.z"] == "Fail: Declined"
    assert labels["subgraph"] == "Parallel"


def test_node_ids_are_unique_identifiers_even_for_awkward_names() -> None:
    ids = [n.id for n in all_nodes(graph.picture_of(awkward()).members)]
    assert len(ids) == len(set(ids))
    assert all(IDENTIFIER.match(node_id) for node_id in ids), ids
    # "a b", "a-b" and "a_b" all clean up to the same text; each still gets its own id.
    picture = graph.picture_of(awkward())
    assert len({node_of(picture, name).id for name in ("a b", "a-b", "a_b")}) == 3


def test_edges_follow_next_choice_default_and_catch() -> None:
    picture = graph.picture_of(awkward())

    def edge(source: str, target: str) -> graph.Edge:
        (found,) = [
            e
            for e in picture.edges
            if e.source == node_of(picture, source).id and e.target == node_of(picture, target).id
        ]
        return found

    assert edge('Say "hi" #1', "end") == graph.Edge(
        source=node_of(picture, 'Say "hi" #1').id, target=node_of(picture, "end").id
    )
    assert edge("end", "class").label == "name == 'a|b' && note == '<b>x</b> & \"q\"'"
    assert edge("end", "o").label == "default"
    catch = edge("class", "x-y.z")
    assert catch.dashed
    assert catch.label == "CardDeclined, States.Timeout"
    assert not edge("class", "a b").dashed
    continue_as_new = [e for e in picture.edges if e.label == "continue as new"]
    assert [e.target for e in continue_as_new] == ["x_end"]


def test_start_points_at_start_at_and_ends_reach_the_end_node() -> None:
    picture = graph.picture_of(awkward())
    first = picture.edges[0]
    assert (first.source, first.target) == ("x_start", node_of(picture, 'Say "hi" #1').id)
    into_end = {e.source for e in picture.edges if e.target == "x_end"}
    assert into_end == {
        node_of(picture, "a b").id,
        node_of(picture, "o").id,
        node_of(picture, "Überprüfung ✓").id,
    }
    fail = node_of(picture, "x-y.z")
    assert fail.kind == "Fail"
    assert not [e for e in picture.edges if e.source == fail.id]


def test_parallel_and_map_are_clusters_and_their_next_leaves_from_a_join() -> None:
    picture = graph.picture_of(awkward())
    parallel = cluster_titled(picture.members, "subgraph (Parallel)")
    branches = [m for m in parallel.members if isinstance(m, graph.Cluster)]
    assert [b.title for b in branches] == ["branch 1", "branch 2"]
    assert {n.lines[0] for n in all_nodes(branches[0].members)} == {"graph", "style"}
    mapped = cluster_titled(picture.members, "default (Map)")
    assert {n.lines[0] for n in all_nodes(mapped.members) if n.kind != "join"} == {
        "default",
        "a-b",
    }

    join = join_of(parallel)
    leaving = [e for e in picture.edges if e.source == join.id]
    assert [e.target for e in leaving] == [node_of(picture, "a_b").id]
    # Branch ends (Succeed, End) meet at the join instead of ending the whole flow.
    into_join = {e.source for e in picture.edges if e.target == join.id}
    assert into_join == {node_of(picture, "style").id, join_of(mapped).id}
    # The Parallel's Catch leaves from the Parallel state itself.
    catch = [e for e in picture.edges if e.dashed and e.source == node_of(picture, "subgraph").id]
    assert [e.label for e in catch] == ["States.ALL"]


def test_end_node_is_left_out_when_nothing_reaches_it() -> None:
    body = {"Name": "n", "Version": 1, "StartAt": "F", "States": {"F": {"Type": "Fail"}}}
    assert "x_end" not in {n.id for n in all_nodes(graph.picture_of(body).members)}
    assert "x_end" not in graph.to_mermaid(body)
    assert "x_end" not in graph.to_dot(body)


# --- Mermaid --------------------------------------------------------------------------------


def test_mermaid_declares_every_node_once_before_any_edge() -> None:
    text = graph.to_mermaid(awkward())
    assert text.startswith("flowchart TD\n")
    nodes = mermaid_nodes(text)
    edges = mermaid_edges(text)
    assert len(edges) == len(graph.picture_of(awkward()).edges)
    for source, _, _, target in edges:
        assert source in nodes and target in nodes
    lines = text.splitlines()
    first_edge = min(i for i, line in enumerate(lines) if MERMAID_EDGE.match(line))
    assert all(lines.index(decl) < first_edge for decl in nodes.values())


def test_mermaid_escapes_quotes_and_special_characters() -> None:
    text = graph.to_mermaid(awkward())
    say_hi = mermaid_nodes(text)["s_Say__hi___1"]
    assert say_hi == '    s_Say__hi___1("Say #34;hi#34; #35;1<br>Pass")'
    condition = [label for _, _, label, _ in mermaid_edges(text) if label.startswith("name")]
    assert condition == ["name == 'a#124;b' #38;#38; note == '#60;b#62;x#60;/b#62; #38; #34;q#34;'"]
    # Mermaid would break the line at a literal backslash-n.
    assert "contains(path, '#92;n') #38;#38; tags[?@ == #96;#34;x#34;#96;]" in text
    # Nothing between a label's quotes may close it or start Markdown, HTML or an entity.
    for line in text.splitlines():
        for quoted in re.findall(r'"([^"]*)"', line):
            assert not set(quoted) & set("`|&\\"), line
            assert not re.search(r"<(?!br>)", quoted), line


def test_mermaid_draws_catch_dashed_and_styles_fail_states() -> None:
    text = graph.to_mermaid(awkward())
    dashed = [(s, label, t) for s, arrow, label, t in mermaid_edges(text) if arrow == "-.->"]
    assert dashed == [
        ("s_class", "CardDeclined, States.Timeout", "s_x_y_z"),
        ("s_subgraph", "States.ALL", "s_x_y_z"),
    ]
    assert "    class s_x_y_z fail\n" in text
    numbers = [str(i) for i, e in enumerate(mermaid_edges(text)) if e[1] == "-.->"]
    assert f"    linkStyle {','.join(numbers)} stroke:#c62828,color:#c62828\n" in text


def test_mermaid_subgraphs_hold_the_branch_states() -> None:
    lines = graph.to_mermaid(awkward()).splitlines()
    opening = lines.index('    subgraph c_subgraph ["subgraph (Parallel)"]')
    closing = lines.index("    end", opening)
    inside = "\n".join(lines[opening:closing])
    for node_id in ("s_subgraph", "s_graph", "s_style", "s_default", "s_a_b_2", "j_subgraph"):
        assert f"        {node_id}" in inside or f"            {node_id}" in inside
    assert '        subgraph c_subgraph_branch_1 ["branch 1"]' in inside
    assert '            subgraph c_default ["default (Map)"]' in inside
    assert "    j_subgraph --> s_a_b_3" in lines


# --- Graphviz dot ----------------------------------------------------------------------------


def test_dot_is_a_digraph_with_clusters_for_parallel_and_map() -> None:
    text = graph.to_dot(awkward())
    assert text.startswith('digraph "awkward" {\n')
    assert text.endswith("}\n")
    assert text.count("{") == text.count("}")
    assert "    subgraph cluster_c_subgraph {\n" in text
    assert "        subgraph cluster_c_subgraph_branch_1 {\n" in text
    assert "            subgraph cluster_c_default {\n" in text
    nodes = dot_nodes(text)
    for source, target, _ in dot_edges(text):
        assert source in nodes and target in nodes
    assert all(IDENTIFIER.match(node_id) for node_id in nodes)


def test_dot_escapes_labels_and_draws_catch_dashed() -> None:
    text = graph.to_dot(awkward())
    assert dot_nodes(text)["s_Say__hi___1"] == 'Say \\"hi\\" #1\\nPass'
    edges = {(s, t): attributes for s, t, attributes in dot_edges(text)}
    assert edges[("s_end", "s_subgraph")] == (
        'label="contains(path, \'\\\\n\') && tags[?@ == `\\"x\\"`]"'
    )
    assert edges[("s_class", "s_x_y_z")].startswith(
        'label="CardDeclined, States.Timeout", style=dashed'
    )
    assert edges[("s_end", "s_o")] == 'label="default"'
    assert 's_x_y_z [label="x-y.z\\nFail: Declined", fillcolor="#fdecea"' in text


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_order_flows_draw_every_state_and_catch_in_both_languages(version: str) -> None:
    path = ORDER / f"{version}.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    mermaid = CliRunner().invoke(main, ["graph", str(path), "--format", "mermaid"])
    dot = CliRunner().invoke(main, ["graph", str(path), "--format", "dot"])
    assert (mermaid.exit_code, dot.exit_code) == (0, 0), mermaid.output + dot.output
    mermaid_labels = list(mermaid_nodes(mermaid.stdout).values())
    dot_labels = list(dot_nodes(dot.stdout).values())
    for name in state_names(body["States"]):
        assert any(f'"{name}<br>' in line for line in mermaid_labels), name
        assert any(label.startswith(f"{name}\\n") for label in dot_labels), name
    catchers = sum(len(state.get("Catch", [])) for state in body["States"].values())
    dashed = [e for e in mermaid_edges(mermaid.stdout) if e[1] == "-.->"]
    assert len(dashed) == catchers
    assert len([e for e in dot_edges(dot.stdout) if "style=dashed" in e[2]]) == catchers


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def definition_file(tmp_path: Path) -> Path:
    path = tmp_path / "awkward.yaml"
    path.write_text(AWKWARD, encoding="utf-8")
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["graph", *args])


def test_cli_prints_mermaid_by_default_and_dot_on_request(definition_file: Path) -> None:
    result = run(str(definition_file))
    assert result.exit_code == 0, result.output
    assert result.stdout == graph.to_mermaid(awkward())
    result = run(str(definition_file), "--format", "dot")
    assert result.exit_code == 0, result.output
    assert result.stdout == graph.to_dot(awkward())


@pytest.mark.parametrize(
    ("name", "draw"),
    [("out.mmd", graph.to_mermaid), ("out.dot", graph.to_dot), ("out.gv", graph.to_dot)],
)
def test_cli_writes_text_files_in_the_language_of_their_suffix(
    definition_file: Path, tmp_path: Path, name: str, draw: Any
) -> None:
    output = tmp_path / name
    result = run(str(definition_file), "-o", str(output))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert output.read_text(encoding="utf-8") == draw(awkward())


def test_cli_refuses_a_format_the_suffix_contradicts(definition_file: Path, tmp_path: Path) -> None:
    result = run(str(definition_file), "--format", "mermaid", "-o", str(tmp_path / "out.dot"))
    assert result.exit_code == 2
    assert "out.dot is written as dot, not mermaid" in result.stderr
    result = run(str(definition_file), "-o", str(tmp_path / "out.txt"))
    assert result.exit_code == 2
    assert ".mmd, .dot, .gv, .svg, .png" in result.stderr
    assert not (tmp_path / "out.txt").exists()


def test_cli_explains_how_to_install_graphviz_when_dot_is_missing(
    definition_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = run(str(definition_file), "-o", str(tmp_path / "out.svg"))
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: drawing .svg needs Graphviz's `dot` program")
    assert "apt-get install graphviz" in line and "brew install graphviz" in line
    assert not (tmp_path / "out.svg").exists()


def fake_dot(directory: Path, *, exit_code: int = 0) -> Path:
    """Put a stand-in ``dot`` on ``directory`` that records its arguments and standard input."""
    directory.mkdir()
    script = directory / "dot"
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        "here = pathlib.Path(__file__).parent\n"
        "(here / 'args').write_text('\\n'.join(sys.argv[1:]))\n"
        "(here / 'stdin').write_text(sys.stdin.read())\n"
        f"if {exit_code}:\n"
        "    sys.stderr.write('Error: <stdin>: syntax error in line 1\\n')\n"
        f"    sys.exit({exit_code})\n"
        "out = sys.argv[sys.argv.index('-o') + 1]\n"
        "pathlib.Path(out).write_text('drawn')\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return directory


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_cli_draws_pictures_by_piping_dot_text_to_graphviz(
    definition_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    bin_dir = fake_dot(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(bin_dir))
    output = tmp_path / f"order.{suffix.upper()}"
    result = run(str(definition_file), "-o", str(output))
    assert result.exit_code == 0, result.output
    assert (bin_dir / "args").read_text().splitlines() == [f"-T{suffix}", "-o", str(output)]
    assert (bin_dir / "stdin").read_text() == graph.to_dot(awkward())
    assert output.read_text() == "drawn"


def test_cli_reports_graphviz_failing_in_one_line(
    definition_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path / "bin", exit_code=3)))
    result = run(str(definition_file), "-o", str(tmp_path / "out.svg"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: Graphviz could not draw {tmp_path / 'out.svg'}: "
        "Error: <stdin>: syntax error in line 1\n"
    )


def test_dot_command_reads_stdin_and_names_the_picture_format() -> None:
    assert graph_cli.dot_command("/usr/bin/dot", Path("a/b.PNG")) == [
        "/usr/bin/dot",
        "-Tpng",
        "-o",
        "a/b.PNG",
    ]


def test_cli_reports_an_invalid_definition_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("Name: bad\nVersion: 1\nStartAt: Nowhere\nStates:\n  A: {Type: Succeed}\n")
    result = run(str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Nowhere" in result.stderr


def test_cli_help_teaches_with_an_example() -> None:
    result = CliRunner().invoke(main, ["graph", "--help"])
    assert result.exit_code == 0
    assert "cairn graph definitions/order/v2.yaml -o order.svg" in result.stdout
    assert "--format [mermaid|dot]" in result.stdout
