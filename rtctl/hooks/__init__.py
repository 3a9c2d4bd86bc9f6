"""The daemon's link to the app it serves (SPEC §9): the auth hook it asks who a
token is, and the webhooks it sends of what the app must record.

``AppLink.from_settings`` builds what the settings ask for; an unset URL leaves
that part out (``None``), and the hub then works on token claims alone and tells
the app nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtctl.config import Settings
    from rtctl.hooks.auth import AuthHook, HookCache
    from rtctl.hooks.documents import DocumentWebhooks
    from rtctl.hooks.webhooks import WebhookSender
    from rtctl.state.base import StateBackend


@dataclass
class AppLink:
    cache: HookCache
    auth: AuthHook | None = None
    webhooks: WebhookSender | None = None
    documents: DocumentWebhooks | None = None

    @classmethod
    def from_settings(cls, settings: Settings, state: StateBackend) -> AppLink:
        from rtctl.hooks.auth import AuthHook
        from rtctl.hooks.http import KeptAliveHttp

        link = cls(hook_cache(settings, state))
        if settings.auth_hook_url:
            poster = KeptAliveHttp(settings.auth_hook_url, timeout=settings.auth_hook_timeout,
                                max_idle=32)  # fmt: skip
            link.auth = AuthHook(poster, link.cache, ttl=settings.auth_hook_cache)
        if settings.webhook_url:
            from rtctl.hooks.documents import DocumentWebhooks
            from rtctl.hooks.webhooks import WebhookSender

            link.webhooks = WebhookSender(settings.webhook_url, settings.webhook_secret)
            link.documents = DocumentWebhooks(link.webhooks, settings.webhook_debounce)
        return link

    def start(self) -> None:
        if self.webhooks is not None:
            self.webhooks.start()

    async def close(self, grace: float = 5.0) -> None:
        """After the documents closed: what they left pending is sent, within ``grace``."""
        if self.documents is not None:
            await self.documents.close()
        if self.webhooks is not None:
            await self.webhooks.close(grace)
        if self.auth is not None:
            self.auth.poster.close()


def hook_cache(settings: Settings, state: Any) -> HookCache:
    """Where auth hook answers are cached: in Redis when the deployment has it, so every
    node (and the CLI, making them stale) shares them."""
    from rtctl.hooks.cache import MemoryHookCache, RedisHookCache

    if settings.embedded:
        return MemoryHookCache()
    return RedisHookCache(state.redis, state.keys)


__all__ = ["AppLink", "hook_cache"]
