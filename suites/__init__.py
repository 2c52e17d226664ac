"""Case declarations, one module per model family; pytest collects them as benchmarks."""
