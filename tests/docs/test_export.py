"""Exporting documents: JSON and plain text of updates built by the real ``yjs`` package
(``yjs_fixtures.mjs``, run with Node) and by pycrdt, root kinds inferred from content,
and fuzzing: random and mutated bytes give a result or ``MalformedUpdate``, nothing else."""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtctl.docs import yjs
from rtctl.docs.export import export_json, export_text, root_kinds
from tests.conftest import ROOT

SCRIPT = Path(__file__).with_name("yjs_fixtures.mjs")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def _run_fixtures() -> dict[str, dict[str, Any]]:
    if NODE is None:
        return {}
    if not (ROOT / "node_modules" / "yjs").is_dir():
        pytest.fail("node_modules lacks yjs: run `npm ci` at the repository root")
    out = subprocess.run(
        [NODE, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if out.returncode != 0:
        pytest.fail(f"yjs_fixtures.mjs failed: {out.stderr}")
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return {line["name"]: line for line in lines}


_CACHE: dict[str, dict[str, Any]] = {}


def fixtures() -> dict[str, dict[str, Any]]:
    if not _CACHE:
        _CACHE.update(_run_fixtures())
    return _CACHE


FIXTURE_NAMES = [
    "text_formatting",
    "map_nested",
    "array",
    "prosemirror",
    "mix",
    "concurrent_1",
    "concurrent_1_merged",
    "concurrent_2",
    "concurrent_2_merged",
    "concurrent_3",
    "concurrent_3_merged",
    "large_text",
]


def fixture(name: str) -> tuple[bytes, dict[str, Any]]:
    line = fixtures()[name]
    return base64.b64decode(line["update"]), line


@needs_node
def test_the_fixture_script_builds_every_document() -> None:
    assert sorted(fixtures()) == sorted(FIXTURE_NAMES)


@needs_node
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_json_matches_yjs(name: str) -> None:
    update, line = fixture(name)
    got = export_json(update)
    assert got == line["json"]
    assert json.loads(json.dumps(got, allow_nan=False)) == line["json"]


@needs_node
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_text_matches_yjs(name: str) -> None:
    update, line = fixture(name)
    assert export_text(update) == line["text"]


@needs_node
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_root_kinds_are_inferred(name: str) -> None:
    update, line = fixture(name)
    assert root_kinds(update) == line["kinds"]


@needs_node
def test_the_documented_value_mappings() -> None:
    meta = export_json(fixture("map_nested")[0])["meta"]
    assert meta["bytes"] == base64.b64encode(bytes([0, 1, 2, 250, 255])).decode()
    assert meta["sub"] == {"subdoc": "sub-doc-guid"}
    assert meta["bigint"] == 12345678901234
    assert meta["big"] == 2**40 and isinstance(meta["big"], int)
    assert "undef" not in meta and meta["nested"]["g"] == [None]
    assert meta["inner"] == {
        "x": 1,
        "y": "two",
        "list": [1, "a", {"k": "v"}],
        "note": "nested text",
    }


@needs_node
def test_a_surrogate_pair_cut_by_a_deletion_reads_as_yjs_does() -> None:
    # the fixture deletes half of an emoji; Yjs replaces both halves with U+FFFD
    text = export_json(fixture("text_formatting")[0])["content"]
    assert "\ufffd" in text
    assert text == fixture("text_formatting")[1]["json"]["content"]


@needs_node
def test_prosemirror_text_is_one_line_per_block() -> None:
    update, _ = fixture("prosemirror")
    lines = export_text(update).split("\n")
    assert lines[0] == "Release notes"
    assert lines[1] == "quick brown fox jumps 🦊"
    assert lines[2] == ""  # an empty paragraph


@needs_node
def test_text_roots_are_in_name_order_with_blank_lines_between() -> None:
    update, _ = fixture("mix")
    text = export_text(update)
    assert text.startswith("Body text\n\nA note\nover two lines\n\nRelease notes\n")


# pycrdt-built documents (yrs encodes them) ------------------------------------------------


def _norm(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def pycrdt_history(seed: int, steps: int = 60) -> pycrdt.Doc[Any]:
    rnd = random.Random(seed)
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    text = doc.get("text", type=pycrdt.Text)
    meta = doc.get("meta", type=pycrdt.Map)
    items = doc.get("items", type=pycrdt.Array)
    xml = doc.get("prosemirror", type=pycrdt.XmlFragment)
    for i in range(steps):
        text.insert(rnd.randint(0, len(text)), rnd.choice(["ab", "c", "xyz ", "é", "漢字"]))
        if len(text) > 4 and rnd.random() < 0.3:
            del text[1:3]
        if rnd.random() < 0.2:
            text.format(0, min(2, len(text)), {"bold": True})
        meta[f"k{i % 4}"] = rnd.choice([i, 2.5, None, True, "s", [1, {"a": "b"}], b"\x00\xff"])
        items.append(rnd.choice([i, "s", {"n": i}]))
        if len(items) > 3 and rnd.random() < 0.2:
            del items[rnd.randrange(len(items))]
        if rnd.random() < 0.2:
            xml.children.append(pycrdt.XmlElement("p", {"id": str(i)}, [pycrdt.XmlText("hi")]))
    meta["sub"] = pycrdt.Text("nested")
    return doc


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pycrdt_documents_export_as_pycrdt_reads_them(seed: int) -> None:
    doc = pycrdt_history(seed)
    got = export_json(doc.get_update())
    assert got["text"] == str(doc.get("text", type=pycrdt.Text))
    assert got["meta"] == _norm(doc.get("meta", type=pycrdt.Map).to_py())
    assert got["items"] == _norm(doc.get("items", type=pycrdt.Array).to_py())
    xml = doc.get("prosemirror", type=pycrdt.XmlFragment)
    lines = "\n".join("hi" for _ in xml.children)
    assert got.get("prosemirror", "") == str(xml)
    assert export_text(doc.get_update()) == (f"{lines}\n\n{got['text']}" if lines else got["text"])


def test_a_cleared_text_root_has_nothing_to_infer_from() -> None:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    text = doc.get("t", type=pycrdt.Text)
    text += "gone"
    del text[0:4]
    assert export_json(doc.get_update()) == {"t": []}  # documented: an empty Array
    assert export_text(doc.get_update()) == ""


def test_an_empty_update_has_no_roots() -> None:
    assert export_json(yjs.EMPTY_UPDATE) == {}
    assert export_text(yjs.EMPTY_UPDATE) == ""


def test_an_update_missing_its_history_is_malformed() -> None:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    text = doc.get("t", type=pycrdt.Text)
    text += "one"
    text += "two"
    assert export_json(updates[0]) == {"t": "one"}
    with pytest.raises(yjs.MalformedUpdate):
        export_json(updates[1])


def _struct_update(content: bytes, kind: int, root: str = "a") -> bytes:
    """One item of ``kind`` at the start of root ``root``, written by hand."""
    out = bytearray()
    for n in (1, 1, 7, 0):  # one client section, one struct, client 7, clock 0
        yjs.write_uint(out, n)
    out.append(kind)  # info: no origins, so the parent follows
    yjs.write_uint(out, 1)
    yjs.write_string(out, root)
    out += content
    yjs.write_uint(out, 0)  # empty delete set
    return bytes(out)


def test_legacy_json_content_and_undefined() -> None:
    content = bytearray()
    yjs.write_uint(content, 3)
    for s in ('{"a": [1, 2]}', "undefined", "null"):
        yjs.write_string(content, s)
    assert export_json(_struct_update(bytes(content), 2)) == {"a": [{"a": [1, 2]}, None, None]}


def test_deeply_nested_embedded_json_is_malformed() -> None:
    content = bytearray()
    yjs.write_uint(content, 1)
    yjs.write_string(content, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(yjs.MalformedUpdate):
        export_json(_struct_update(bytes(content), 2))


def test_deeply_nested_types_are_malformed() -> None:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    m = doc.get("root", type=pycrdt.Map)
    for _ in range(150):
        m["x"] = pycrdt.Map()
        m = m["x"]
    with pytest.raises(yjs.MalformedUpdate, match="nested too deeply"):
        export_json(doc.get_update())


def test_not_bytes_is_malformed() -> None:
    with pytest.raises(yjs.MalformedUpdate):
        export_json("not bytes")  # type: ignore[arg-type]


# fuzzing -----------------------------------------------------------------------------------


def _bounded(update: bytes) -> None:
    """A result (JSON-serialisable) or MalformedUpdate; any other exception fails."""
    try:
        got = export_json(update)
    except yjs.MalformedUpdate:
        got = None
    if got is not None:
        json.dumps(got, allow_nan=False)
    try:
        text = export_text(update)
    except yjs.MalformedUpdate:
        return
    assert isinstance(text, str)


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_export_or_raise_malformed(data: bytes) -> None:
    _bounded(data)


_SEEDS: list[bytes] = []


def _seeds() -> list[bytes]:
    """Real updates to mutate, built once: the draws must not change between runs."""
    if not _SEEDS:
        _SEEDS.append(pycrdt_history(1, steps=15).get_update())
        if NODE is not None:
            for name in ("text_formatting", "map_nested", "array", "prosemirror", "concurrent_1"):
                _SEEDS.append(fixture(name)[0])
    return _SEEDS


@FUZZ
@given(st.data())
def test_mutated_real_updates_export_or_raise_malformed(data: st.DataObject) -> None:
    seeds = _seeds()
    update = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        i = data.draw(st.integers(0, max(0, len(update) - 1)))
        if op == "flip" and update:
            update[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and update:
            update[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            update[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and update:
            del update[i : i + data.draw(st.integers(1, 4))]
        elif op == "truncate":
            del update[i:]
    _bounded(bytes(update))


def test_every_prefix_of_a_real_update_is_bounded() -> None:
    update = pycrdt_history(2, steps=10).get_update()
    for end in range(len(update)):
        _bounded(update[:end])


def test_xml_fragments_as_prosemirror_json() -> None:
    """What y-prosemirror's yXmlFragmentToProsemirrorJSON gives, for a note as Open WebUI's
    editor writes it: elements with attributes, marked text, empty blocks, hard breaks."""
    from rtctl.docs.export import export_prosemirror

    doc = pycrdt.Doc()
    fragment = doc.get("prosemirror", type=pycrdt.XmlFragment)
    fragment.children.append(pycrdt.XmlElement("heading", {"level": 2}))
    paragraph = fragment.children.append(pycrdt.XmlElement("paragraph"))
    text = paragraph.children.append(pycrdt.XmlText())
    text.insert(0, "hello ")
    text.insert(6, "bold", attrs={"bold": {}})
    text.insert(10, " link", attrs={"link": {"href": "https://example.org"}})
    paragraph.children.append(pycrdt.XmlElement("hard_break"))
    fragment.children.append(pycrdt.XmlElement("paragraph"))
    doc.get("title", type=pycrdt.Text).insert(0, "not a fragment")

    assert export_prosemirror(doc.get_update()) == {"prosemirror": {"type": "doc", "content": [
        {"type": "heading", "attrs": {"level": 2}},
        {"type": "paragraph", "content": [
            {"type": "text", "text": "hello "},
            {"type": "text", "text": "bold", "marks": [{"type": "bold", "attrs": {}}]},
            {"type": "text", "text": " link",
             "marks": [{"type": "link", "attrs": {"href": "https://example.org"}}]},
            {"type": "hard_break"},
        ]},
        {"type": "paragraph"},
    ]}}  # fmt: skip
