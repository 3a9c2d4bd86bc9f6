"""An app for ``rtctl serve --app tests.tasks.sample_app:setup``, using only ``rtctl.*``."""

from __future__ import annotations

import asyncio
from typing import Any

import rtctl


async def shout(ctx: rtctl.TaskContext) -> None:
    for word in str(ctx.data["messages"][-1]["content"]).split():
        await asyncio.sleep(0.05)
        await ctx.emit("chat:completion", {"delta": word.upper()})
    await ctx.emit("chat:completion", {"done": True})


def setup(app: rtctl.App) -> None:
    app.task_kind("shout", shout, models=["shout"])

    async def poke(sid: str, user: rtctl.Identity, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise rtctl.UsageError("text must be a string")
        task_id = await app.start_task("shout", user.user_id, item_id="poked",
                                       data={"messages": [{"content": data["text"]}]})  # fmt: skip
        return {"task_id": task_id, "user": user.user_id}

    app.event("app:poke", poke)
