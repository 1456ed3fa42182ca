"""The tools of runs (function, file_search) behind one interface, and their registry."""
