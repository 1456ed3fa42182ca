"""File search: parse, chunk, embed and index files; hybrid (full-text + vector) search over vector stores."""
