"""Golden outputs: what a command prints, kept in a file and compared by tests/test_golden.py.

Regenerate after a change that moves printed numbers on purpose (and say so in the commit):
``.venv/bin/python -m tests.golden.update`` (rewrites the golden file and the README blocks made from it).
"""
