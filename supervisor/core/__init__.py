"""The process core: spawn, signals, reaping, stop; the event loop; exit codes."""
