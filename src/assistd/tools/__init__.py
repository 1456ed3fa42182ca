"""Hosted tools a run uses on its own: file_search (code_interpreter is accepted but not run yet)."""
