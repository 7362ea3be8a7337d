"""Thin entry points of the console commands: parse, call, one-line error, exit 2. Nothing imports them."""
