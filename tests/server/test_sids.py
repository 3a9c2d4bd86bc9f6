"""Session ids are safe to pass on an operator's command line."""

from rtctl.server.sio import HubEngine, HubServer


def test_session_ids_never_begin_with_a_dash() -> None:
    sio = HubServer(async_mode="asgi")
    assert isinstance(sio.eio, HubEngine)
    ids = [sio.eio.generate_id() for _ in range(20_000)]  # one in 64 would, unguarded
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
    assert any("-" in i for i in ids)  # the alphabet itself is unchanged
