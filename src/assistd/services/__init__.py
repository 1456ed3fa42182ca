"""The rules. Each service takes the caller's Principal and returns wire objects or raises typed errors."""
