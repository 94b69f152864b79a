"""A test app whose import fails: the master must stop, not respawn forever."""

raise RuntimeError("this app fails at import on purpose")

app = None  # never reached
