# From actorio 0.1.4's sdist (tests/test_spawning.py), under its MIT license (LICENSE beside this file).
# Harness modernized only: nothing.
# Left out: test_all_actors_should_be_stopped_if_one_fails, whose BadActor overrides the private
# Actor._mainloop (and its Application, used by that test only).

import asyncio

import pytest

from actorio import Actor


@pytest.mark.asyncio
async def test_actor_starts_child_actor_on_register():
    a = Actor()
    async with a:
        child = Actor()
        await a.register_child(child)
        assert child.started, "Child should be started on register"
        assert child.running, "Child should be running on register"
    assert not child.running, "Child should have been stopped when parent actor stopped"


@pytest.mark.asyncio
async def test_parent_actor_is_properly_registered_on_child():
    a = Actor()
    async with a:
        child = Actor()
        await a.register_child(child)
        assert child in a.children
