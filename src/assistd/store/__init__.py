"""Persistence: tables, project-scoped repositories, ids and migrations."""
