"""OpenAI's wire format: the objects, lists, events and error bodies assistd answers with."""
