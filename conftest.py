"""Repository-level pytest wiring: the harness plugin is loaded through its entry point (bench.plugin)."""
