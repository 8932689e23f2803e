"""Route modules; each is a few lines per endpoint: parse, call one service, return."""
