"""HTTP adapters: one router per resource, no business logic and no SQL."""
