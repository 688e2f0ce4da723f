"""Serving the apps safely: ASGI middleware and the upload policy.

It owns what sits between a browser and the handlers: upload limits and neutral upload names,
path confinement and the scrubbing of server paths from messages, the per-client fair queue
(`asgi`). It may import `detector.core`; it imports no UI code, so either app can mount it.
"""
