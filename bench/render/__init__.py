"""Console tables, markdown and plots of results; formatting only, no measurement logic."""
