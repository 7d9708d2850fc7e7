"""Infrastructure below every app: the state store, the outbound HTTP client, database helpers
and the usage event schema.

Nothing here imports an app. Where infrastructure must hand data to one (the embedded usage
writer), the app registers a callback at start-up (see infra.state.set_usage_sink).
"""
