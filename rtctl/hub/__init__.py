"""The hub's domain: sessions, rooms, channels, usage and operator actions.

Nothing here knows Socket.IO or HTTP. The daemon hands the hub a ``Transport``
(how to reach connected clients) and a state backend (what the deployment shares).
"""
