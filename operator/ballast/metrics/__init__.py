"""Metric providers: where analysis data and alert rules come from, behind a small interface."""
