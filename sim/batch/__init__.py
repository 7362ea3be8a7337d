"""One batch: its prefill, then one decode pass per generated token (speculative decoding, memory check)."""
