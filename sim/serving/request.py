"""A request's life in the server: what it asks for, how far it has got, when things happened."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class State(str, Enum):
    waiting = "waiting"  # queued for admission (new, or preempted for recompute)
    prefilling = "prefilling"  # admitted; its prompt (or a recompute) is being prefilled
    decoding = "decoding"  # generating one token per step
    swapped = "swapped"  # preempted; its KV blocks are in host memory
    done = "done"


@dataclass(slots=True, eq=False)
class Request:
    """One request. Times are simulated seconds; token counts are per sequence.

    ``prefill_target`` is what the current prefill must process: the prompt, or after a
    recompute preemption the prompt plus the tokens generated so far. ``kv_tokens`` tokens have
    their keys and values in the cache; a decode attends to ``kv_tokens + 1`` keys.
    """

    rid: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    row: int  # where it came from: trace row (1-based) or request number, for error messages
    state: State = State.waiting
    generated: int = 0
    prefill_target: int = 0
    prefilled: int = 0
    kv_tokens: int = 0
    blocks: int = 0  # KV blocks held on the chip
    host_blocks: int = 0  # KV blocks held in host memory (swapped out)
    preemptions: int = 0
    instance: str = ""  # the instance (replica) the router gave it to
    shared: int = 0  # prompt tokens at its start shared with other requests (a system prompt)
    shared_blocks: int = 0  # KV blocks of the cached prefix it reads (not its own)
    conv: int = -1  # its conversation (-1: none); a later turn reads the cache entry its turn before left
    context: int = 0  # prompt tokens at its start that are its conversation's earlier turns
    last_turn: bool = True  # no later turn of its conversation follows it
    cached_prompt: int = 0  # prompt tokens its first prefill skipped: their KV was cached
    first_scheduled_s: float = math.nan
    first_token_s: float = math.nan
    finish_s: float = math.nan

    def __post_init__(self) -> None:
        self.prefill_target = self.prompt_tokens

    @property
    def admitted(self) -> bool:
        return not math.isnan(self.first_scheduled_s)
