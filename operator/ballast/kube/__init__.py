"""Thin helpers around the official Kubernetes client: configuration and the few writes Ballast makes."""
