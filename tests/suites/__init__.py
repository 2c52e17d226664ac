"""Tests of the suites' case declarations."""
