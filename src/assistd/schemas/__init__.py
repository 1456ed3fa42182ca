"""Request models with OpenAI's documented limits. Unknown fields are rejected (400 naming the field)."""
