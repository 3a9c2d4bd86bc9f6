"""The Yjs wire formats: real updates of every content kind, pending history, merging,
sync and awareness messages, and fuzzing of everything that parses untrusted bytes."""

from __future__ import annotations

import contextlib
import random

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtctl.docs import awareness, yjs
from rtctl.docs.store import shape_clocks


def history(seed: int = 1, steps: int = 30) -> tuple[pycrdt.Doc, list[bytes]]:
    """A document built by many small transactions over every kind of shared type."""
    rnd = random.Random(seed)
    doc = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    text = doc.get("text", type=pycrdt.Text)
    meta = doc.get("meta", type=pycrdt.Map)
    items = doc.get("items", type=pycrdt.Array)
    xml = doc.get("prosemirror", type=pycrdt.XmlFragment)
    for i in range(steps):
        text.insert(rnd.randint(0, len(text)), rnd.choice(["ab", "c", "xyz "]))
        if len(text) > 4 and rnd.random() < 0.3:
            del text[1:3]
        if rnd.random() < 0.2:
            text.format(0, min(2, len(text)), {"bold": True})
        meta[f"k{i % 4}"] = rnd.choice([i, 2.5, None, True, "s", [1, {"a": "b"}], b"\x00\xff"])
        items.append(rnd.choice([i, "s", {"n": i}]))
        if rnd.random() < 0.2:
            xml.children.append(pycrdt.XmlElement("p", {"id": str(i)}, [pycrdt.XmlText("hi")]))
    meta["sub"] = pycrdt.Text("nested")
    return doc, updates


def test_real_updates_integrate_one_by_one() -> None:
    doc, updates = history()
    copy = pycrdt.Doc()
    for update in updates:
        shape = yjs.inspect_update(update)
        assert shape.integrates_into(yjs.doc_state(copy))
        yjs.apply_checked(copy, update, shape)
    assert yjs.doc_state(copy) == yjs.doc_state(doc)
    assert str(copy.get("text", type=pycrdt.Text)) == str(doc.get("text", type=pycrdt.Text))
    whole = yjs.inspect_update(doc.get_update())
    assert whole.covered_by(yjs.doc_state(doc))


def test_an_update_with_missing_history_is_refused_before_it_touches_the_copy() -> None:
    _, updates = history()
    copy = pycrdt.Doc()
    yjs.apply_checked(copy, updates[0])
    before = copy.get_update()
    for later in updates[2:6]:  # each builds on updates[1], which the copy lacks
        with pytest.raises(yjs.PendingHistory):
            yjs.apply_checked(copy, later)
    assert copy.get_update() == before  # nothing pending hides in the copy
    yjs.apply_checked(copy, updates[1])
    yjs.apply_checked(copy, updates[2])


def test_out_of_order_delivery_converges_once_complete() -> None:
    doc, updates = history(seed=7)
    rnd = random.Random(3)
    shuffled = updates[:]
    rnd.shuffle(shuffled)
    copy = pycrdt.Doc()
    waiting = shuffled
    while waiting:  # a client applying what it can, holding the rest, as a provider would
        held = []
        for update in waiting:
            try:
                yjs.apply_checked(copy, update)
            except yjs.PendingHistory:
                held.append(update)
        assert len(held) < len(waiting)
        waiting = held
    assert yjs.doc_state(copy) == yjs.doc_state(doc)


def test_merge_sheds_garbage_and_refuses_a_log_with_holes() -> None:
    doc, updates = history(seed=5, steps=60)
    merged = yjs.merge(None, updates)
    assert yjs.doc_state(yjs.load(merged)) == yjs.doc_state(doc)
    assert len(merged) < sum(map(len, updates))
    snapshot = yjs.merge(None, updates[:20])
    assert yjs.doc_state(yjs.load(yjs.merge(snapshot, updates[20:]))) == yjs.doc_state(doc)
    with pytest.raises(yjs.PendingHistory):
        yjs.merge(snapshot, updates[21:])  # update 21 is missing: never snapshot around it
    assert yjs.merge(None, []) == yjs.EMPTY_UPDATE


def clocks_of(updates: list[bytes]) -> dict[int, int]:
    """The clock summary a store keeps for a log of these updates."""
    summary: dict[int, int] = {}
    for update in updates:
        clocks = shape_clocks(yjs.inspect_update(update))
        assert clocks is not None
        for c, end in clocks.items():
            summary[c] = max(summary.get(c, 0), end)
    return summary


def test_merge_checks_a_clock_summary_instead_of_inspecting() -> None:
    doc, updates = history(seed=5, steps=60)
    merged = yjs.merge(None, updates, clocks_of(updates))
    assert merged == yjs.merge(None, updates)
    snapshot = yjs.merge(None, updates[:20], clocks_of(updates[:20]))
    whole = clocks_of(updates)  # cumulative: the snapshot's updates included
    assert yjs.merge(snapshot, updates[20:], whole) == yjs.merge(snapshot, updates[20:])
    assert yjs.doc_state(yjs.load(yjs.merge(snapshot, updates[20:], whole))) == yjs.doc_state(doc)
    with pytest.raises(yjs.PendingHistory):
        yjs.merge(snapshot, updates[21:], whole)  # update 21 is missing
    with pytest.raises(yjs.PendingHistory):  # the summary is what counts: more than there is
        yjs.merge(None, updates, {**whole, 12345: 1})
    (client,) = yjs.doc_state(doc)
    with pytest.raises(yjs.PendingHistory):
        yjs.merge(None, updates, {client: whole[client] + 1})
    assert yjs.merge(None, [], {}) == yjs.EMPTY_UPDATE


@pytest.mark.parametrize("summary", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_merge_of_a_log_out_of_causal_order(seed: int, summary: bool) -> None:
    """Never written so by rtctl, but complete: merged in as many passes as it takes,
    and exactly what the log in order makes; incomplete, refused."""
    doc, updates = history(seed=seed, steps=40)
    shuffled = updates[:]
    random.Random(seed).shuffle(shuffled)
    clocks = clocks_of(updates) if summary else None
    merged = yjs.merge(None, shuffled, clocks)
    assert yjs.doc_state(yjs.load(merged)) == yjs.doc_state(doc)
    assert yjs.load(merged).get_update() == yjs.load(yjs.merge(None, updates)).get_update()
    assert yjs.merge(None, list(reversed(updates)), clocks) == merged
    snapshot = yjs.merge(None, updates[:10], clocks_of(updates[:10]) if summary else None)
    rest = [u for u in shuffled if u not in updates[:10]]
    assert yjs.merge(snapshot, rest, clocks) == merged
    with pytest.raises(yjs.PendingHistory):  # a snapshot of a prefix without its history
        yjs.merge(None, shuffled[:10], clocks_of(shuffled[:10]) if summary else None)
    with pytest.raises(yjs.PendingHistory):
        yjs.merge(None, [u for u in shuffled if u != updates[1]], clocks)


def test_one_transaction_applies_exactly_what_many_do() -> None:
    """merge and the service apply a log in one transaction: the same document."""
    for seed in range(3):
        doc, updates = history(seed=seed, steps=40)
        one, many = pycrdt.Doc(), pycrdt.Doc()
        with one.transaction():
            for update in updates:
                one.apply_update(update)
        for update in updates:
            many.apply_update(update)
        assert one.get_update() == many.get_update() == doc.get_update()
        assert yjs.doc_state(one) == yjs.doc_state(many)


def test_sync_and_awareness_messages() -> None:
    doc, _ = history()
    message = yjs.sync_message(yjs.SYNC_STEP1, doc.get_state())
    assert yjs.read_sync_message(message) == (yjs.SYNC_STEP1, doc.get_state())
    for bad in [b"", b"\x03\x00", b"\x00\x05ab", b"\x00\x01ab"]:
        with pytest.raises(yjs.MalformedUpdate):
            yjs.read_sync_message(bad)
    entries = [
        awareness.AwarenessEntry(1, 2, {"user": {"name": "é"}}),
        awareness.AwarenessEntry(9, 1, None),
    ]
    assert awareness.read(awareness.encode(entries)) == entries
    with pytest.raises(yjs.MalformedUpdate):
        awareness.read(awareness.encode(entries), max_entries=1)
    with pytest.raises(yjs.MalformedUpdate):
        awareness.read(b"\x01\x01\x01\x03{x}")


SEEDS = history(seed=11)[1] + [history(seed=11)[0].get_update()]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["set", "delete", "insert"]))
        if op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "delete" and data:
            del data[at]
        else:
            data.insert(at, draw(st.integers(0, 255)))
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.binary(max_size=64)))
def test_fuzz_updates_are_refused_cleanly_or_integrate_completely(data: bytes) -> None:
    copy = pycrdt.Doc()
    try:
        yjs.apply_checked(copy, data)
    except (yjs.MalformedUpdate, yjs.PendingHistory):
        assert copy.get_update() == yjs.EMPTY_UPDATE  # refused before touching the copy
        return
    except yjs.CopyPolluted:
        return  # the service drops such a copy; what matters is the clean signal
    # Accepted: the copy holds everything, and a snapshot of it loses nothing.
    reloaded = yjs.load(copy.get_update())
    assert yjs.doc_state(reloaded) == yjs.doc_state(copy)


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_messages_never_raise_anything_but_a_clean_refusal(data: bytes) -> None:
    for parse in (yjs.read_sync_message, awareness.read, yjs.decode_state_vector,
                  yjs.inspect_update):  # fmt: skip
        with contextlib.suppress(yjs.MalformedUpdate):
            parse(data)


def test_hostile_json_and_gaps_are_refused_cleanly() -> None:
    deep = "[" * 100_000
    embed = bytearray(b"\x01\x01\x05\x00\x05\x01\x01t")  # one embed item in root "t"
    yjs.write_string(embed, deep)
    embed += b"\x00"
    with pytest.raises(yjs.MalformedUpdate, match="JSON"):
        yjs.inspect_update(bytes(embed))
    with pytest.raises(yjs.MalformedUpdate):
        awareness.read(awareness.encode([awareness.AwarenessEntry(1, 1, None)])[:-4] + b"\x04[[[[")
    # a merged update that skips clocks 1..3 of its client: pending unless they exist
    doc = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    text = doc.get("t", type=pycrdt.Text)
    for ch in "abcd":
        text += ch
    gapped = pycrdt.merge_updates(updates[0], updates[3])
    shape = yjs.inspect_update(gapped)
    assert shape.skips
    copy = pycrdt.Doc()
    with pytest.raises(yjs.PendingHistory):
        yjs.apply_checked(copy, gapped, shape)
    for update in updates[:3]:
        yjs.apply_checked(copy, update)
    assert yjs.apply_checked(copy, gapped) is True
    assert yjs.apply_checked(copy, gapped) is False  # nothing new the second time


def test_bounds_on_counts() -> None:
    huge = bytearray()
    yjs.write_uint(huge, 1 << 30)  # a count no honest update carries
    with pytest.raises(yjs.MalformedUpdate, match="out of bounds"):
        yjs.inspect_update(bytes(huge))
    with pytest.raises(yjs.MalformedUpdate, match="too long"):
        yjs.Decoder(b"\xff" * 12).uint()
    nested = b"\x01\x01\x01\x00\x08\x01\x00\x00\x01" + b"\x75\x01" * 100 + b"\x7f"
    with pytest.raises(yjs.MalformedUpdate):
        yjs.inspect_update(nested)
