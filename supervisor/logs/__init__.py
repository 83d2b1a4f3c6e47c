"""Logs: framing of the child's output, relay, renderers, our own events, metrics."""
