"""Every Redis key and pub/sub channel rtctl uses. Nothing else spells a key.

The session pool is partitioned by node: each daemon owns the keys under its own
Cluster hash tag ``{<prefix>:n:<node>}``, so every change to its sessions, user
and room indexes is one single-slot Lua script, and no two daemons ever write the
same key (no read-modify-write races). Deployment-wide queries read every live
node's partition; removing a dead node's sessions is deleting its partition.

    <prefix>:nodes                       zset  node id -> last heartbeat (ms)
    <prefix>:node:<id>                   hash  node record (host, pid, version, …)
    {<prefix>:n:<id>}:sessions           hash  sid -> session JSON
    {<prefix>:n:<id>}:user:<user>        set   sids of a user on this node
    {<prefix>:n:<id>}:room:<room>        set   sids in a room on this node
    {<prefix>:n:<id>}:rooms              hash  room -> member count on this node
    {<prefix>:n:<id>}:users              hash  user -> session count on this node
    {<prefix>:n:<id>}:tasks              hash  task id -> task JSON (expires unless refreshed)
    {<prefix>:n:<id>}:titem:<item>       set   ids of this node's tasks for one item (chat)
    {<prefix>:n:<id>}:stop:<task>        string  a durable stop intent, expires (TTL)
    {<prefix>:usage}:models              zset  model -> last update (ms)
    {<prefix>:usage}:m:<model>           zset  sid -> expiry (ms)
    {<prefix>:usage}:s:<sid>             set   models the session marked
    <prefix>:revoked:jti:<jti>           string, expires when the token would
    <prefix>:revoked:users               hash  user -> cutoff (seconds, float)
    {<prefix>:lease:<name>}              string  holder of a lease (the reaper's)
    {<prefix>:lease:<name>}:fence        counter fencing tokens of that lease
    {<prefix>:n:<id>}:reaper             string  fencing token of the reaper sweeping it
    <prefix>:reply:<token>               list  one command's reply, expires after a minute

Channels (sharded pub/sub on Cluster):

    <prefix>:ch:room:<room>              events for a room; subscribed by nodes hosting it
    <prefix>:ch:node:<id>                commands for one node (kick, call, emit to a sid)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str

    # node registry
    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    # one node's partition of the session pool (one hash slot per node)
    def partition(self, node_id: str) -> str:
        return "{" + f"{self.prefix}:n:{node_id}" + "}"

    def sessions(self, node_id: str) -> str:
        return f"{self.partition(node_id)}:sessions"

    def user_sids(self, node_id: str, user_id: str) -> str:
        return f"{self.partition(node_id)}:user:{user_id}"

    def room_sids(self, node_id: str, room: str) -> str:
        return f"{self.partition(node_id)}:room:{room}"

    def tasks(self, node_id: str) -> str:
        return f"{self.partition(node_id)}:tasks"

    def task_item(self, node_id: str, item_id: str) -> str:
        return f"{self.partition(node_id)}:titem:{item_id}"

    def stop_intent(self, node_id: str, task_id: str) -> str:
        return f"{self.partition(node_id)}:stop:{task_id}"

    def room_counts(self, node_id: str) -> str:
        return f"{self.partition(node_id)}:rooms"

    def user_counts(self, node_id: str) -> str:
        return f"{self.partition(node_id)}:users"

    # model usage
    @property
    def usage_models(self) -> str:
        return "{" + self.prefix + ":usage}:models"

    def usage(self, model: str) -> str:
        return "{" + self.prefix + ":usage}:m:" + model

    def usage_session(self, sid: str) -> str:
        return "{" + self.prefix + ":usage}:s:" + sid

    # revocation
    def revoked_jti(self, jti: str) -> str:
        return f"{self.prefix}:revoked:jti:{jti}"

    @property
    def revoked_jti_index(self) -> str:
        return f"{self.prefix}:revoked:jtis"

    @property
    def revoked_users(self) -> str:
        return f"{self.prefix}:revoked:users"

    # auth hook answers, shared by every node
    def hook_answer(self, digest: str) -> str:
        return f"{self.prefix}:hook:answer:{digest}"

    def hook_generation(self, user_id: str) -> str:
        return f"{self.prefix}:hook:gen:{user_id}"

    # leases
    def lease(self, name: str) -> str:
        return "{" + f"{self.prefix}:lease:{name}" + "}"

    def fence(self, name: str) -> str:
        return self.lease(name) + ":fence"

    def partition_claim(self, node_id: str) -> str:
        return f"{self.partition(node_id)}:reaper"

    def reply(self, token: str) -> str:
        return f"{self.prefix}:reply:{token}"

    # channels
    def room_channel(self, room: str) -> str:
        return f"{self.prefix}:ch:room:{room}"

    def node_channel(self, node_id: str) -> str:
        return f"{self.prefix}:ch:node:{node_id}"
