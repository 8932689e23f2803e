"""Business rules: every check (ownership, limits, key validation) lives here, once."""
