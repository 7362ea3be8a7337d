"""The paged KV cache of a serving run: blocks on the chip, their capacity, swaps to host memory.

Capacity (per chip; with tensor parallelism every chip holds its shard of every block):
``HBM - weights - activation workspace``, or ``scheduler.kv_cache_GB`` when that is smaller,
in blocks of ``kv_block_tokens`` tokens (vLLM's PagedAttention, Kwon et al. SOSP 2023). A
request holds ``ceil(tokens in the cache / block)`` blocks; nothing else is reserved.

Prefix caching (``scheduler.prefix_caching``, as vLLM's automatic prefix caching): the whole
blocks of the shared prefix (``workload.shared_prefix_tokens``; a partial last block is not
shared) stay in the cache once a request has prefilled them; a later request that starts with
the prefix references them instead of holding and prefilling its own (its attention still reads
them). They are freed only when no running request references them and blocks are needed:
the cache evicts them before any running request is preempted. One shared prefix is modelled.

Conversations (``workload.turns`` > 1): when a turn that another follows completes, the whole
blocks of its KV (its prompt and output but the last token, whose KV was never computed) stay
cached as its conversation's entry; the next turn, if it lands on the same instance, reads them
instead of prefilling its earlier turns again, and when it completes its own blocks extend the
entry. A conversation's last turn frees it. Entries nobody reads are evicted oldest first, before
the shared prefix and before any running request is preempted.

Preemption by swapping copies a request's blocks to host memory over the host link
(``hardware.host_link_GBps`` per direction) and back when it resumes; each copy delays the step
it happens in by ``bytes per chip / host link bandwidth``. Host memory is taken as unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.config.schema import RunError
from sim.serving.request import Request

GB = 1e9


@dataclass(frozen=True)
class CacheSize:
    """How the HBM of one chip is shared out, bytes, and the blocks that gives."""

    hbm: float
    weights: float
    activations: float
    kv: float
    bytes_per_block: float
    blocks: int


def cache_size(hbm: float, weights: float, activations: float, bytes_per_block: float, cap_GB: float | None,
               what: str) -> CacheSize:
    """The KV cache that fits beside the weights and the activation workspace (all per chip, bytes).

    Args:
        what: names the model and chip in the error.

    Raises:
        RunError: no room for one block, or ``cap_GB`` larger than the room there is.
    """
    room = hbm - weights - activations
    if room < bytes_per_block:
        raise RunError(
            f"{what}: weights {weights / GB:.2f} GB + activation workspace {activations / GB:.2f} GB leave no room "
            f"for a KV cache in {hbm / GB:.4g} GB of HBM per chip; raise parallel.tp, lower precision.weights or "
            "scheduler.token_budget"
        )
    kv = room
    if cap_GB is not None:
        if cap_GB * GB > room:
            raise RunError(f"scheduler.kv_cache_GB={cap_GB:g} does not fit: {what} leaves {room / GB:.2f} GB per chip "
                           "after weights and activations; lower it or set null")
        kv = cap_GB * GB
    blocks = int(kv // bytes_per_block)
    return CacheSize(hbm, weights, activations, blocks * bytes_per_block, bytes_per_block, blocks)


class KvCache:
    """Blocks of the paged cache on one chip (the same on every chip of a TP group)."""

    def __init__(self, blocks: int, block_tokens: int, bytes_per_block: float, host_link_Bps: float) -> None:
        self.blocks = blocks
        self.block_tokens = block_tokens
        self.bytes_per_block = bytes_per_block
        self.host_link_Bps = host_link_Bps
        self.used = 0
        self.swapped_bytes = 0.0  # bytes copied over the host link, both ways, per chip
        self.prefix_blocks = 0  # blocks of the cached shared prefix (0: none cached)
        self.prefix_refs = 0  # requests reading them now
        self.lookups = self.hits = self.evictions = 0
        self.saved_tokens = 0  # prompt tokens not prefilled because their KV was cached
        self.convs: dict[int, list] = {}  # conversation -> [cached blocks, read by its next turn now], oldest first

    @property
    def free(self) -> int:
        return self.blocks - self.used

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens of one sequence."""
        return -(-tokens // self.block_tokens)

    def needed(self, req: Request, tokens: int) -> int:
        """More blocks ``req`` needs to hold ``tokens`` tokens (the cached prefix's it reads count as held)."""
        return max(0, self.blocks_for(tokens) - req.shared_blocks - req.blocks)

    def grow(self, req: Request, tokens: int) -> bool:
        """Give ``req`` the blocks to hold ``tokens`` tokens, evicting an unused cached prefix if that makes
        room; False (and nothing taken) if too few are free."""
        more = self.needed(req, tokens)
        while more > self.free and self.evict_unused():
            pass
        if more > self.free:
            return False
        self.take(req, more)
        return True

    def take(self, req: Request, blocks: int) -> None:
        """Give ``req`` ``blocks`` more blocks, known to be free (``grow`` once it found the room)."""
        self.used += blocks
        req.blocks += blocks

    def release(self, req: Request) -> None:
        """Free every block ``req`` holds on the chip (and drop its reference to the cached prefix)."""
        self.used -= req.blocks
        req.blocks = 0
        if req.shared_blocks:
            self._unread(req)
            req.shared_blocks = 0

    def _unread(self, req: Request) -> None:
        if req.conv >= 0:
            self.convs[req.conv][1] = False  # still cached for the turn, now read by nobody
        else:
            self.prefix_refs -= 1

    def end_turn(self, req: Request) -> None:
        """A turn of a conversation completed: keep the whole blocks of its KV as the conversation's entry
        for its next turn, or free everything with its last."""
        held = req.blocks + req.shared_blocks
        old = self.convs.pop(req.conv, None)  # what it read is part of what it holds
        if old is not None and not req.shared_blocks:
            self.used -= old[0]  # an entry it did not read (none is expected): freed, not leaked
        keep = 0 if req.last_turn else min(held, req.kv_tokens // self.block_tokens)
        self.used -= held - keep
        req.blocks = req.shared_blocks = 0
        if keep:
            self.convs[req.conv] = [keep, False]

    # The cached shared prefix ----------------------------------------------------------------------
    def lookup(self, req: Request) -> int:
        """Prompt tokens of ``req`` whose KV is cached (whole blocks of its shared prefix), now referenced
        by it; 0 on a miss."""
        self.lookups += 1
        if req.context:
            entry = self.convs.get(req.conv)
            if entry is None or entry[1]:
                return 0
            self.hits += 1
            entry[1] = True
            req.shared_blocks = entry[0]
            return entry[0] * self.block_tokens
        if not self.prefix_blocks or req.shared < self.prefix_blocks * self.block_tokens:
            return 0
        self.hits += 1
        self.prefix_refs += 1
        req.shared_blocks = self.prefix_blocks
        return self.prefix_blocks * self.block_tokens

    def unlookup(self, req: Request) -> None:
        """Undo a hit of a request that was not admitted after all."""
        if req.shared_blocks:
            self.hits -= 1
            self._unread(req)
            req.shared_blocks = 0
        self.lookups -= 1

    def insert(self, req: Request) -> None:
        """``req`` has prefilled its shared prefix: keep the prefix's whole blocks (taken from its own)
        cached, if none are."""
        whole = req.shared // self.block_tokens
        if self.prefix_blocks or not whole or req.shared_blocks or req.blocks < whole:
            return
        req.blocks -= whole
        req.shared_blocks = self.prefix_blocks = whole
        self.prefix_refs += 1

    def evict_unused(self) -> bool:
        """Free the oldest conversation entry no turn reads, else the cached prefix if no request reads it;
        whether blocks were freed."""
        for conv, (blocks, read) in self.convs.items():
            if not read:
                del self.convs[conv]
                self.used -= blocks
                self.evictions += 1
                return True
        if not self.prefix_blocks or self.prefix_refs:
            return False
        self.used -= self.prefix_blocks
        self.prefix_blocks = 0
        self.evictions += 1
        return True

    def swap_out(self, req: Request) -> float:
        """Copy ``req``'s blocks to host memory and free them; the seconds the copy takes."""
        req.host_blocks = req.blocks
        self.release(req)
        return self._copy(req.host_blocks)

    def swap_in(self, req: Request) -> float | None:
        """Copy ``req``'s blocks back from the host if they fit (None if not); the seconds it takes."""
        if req.host_blocks > self.free:
            return None
        self.used += req.host_blocks
        req.blocks, req.host_blocks = req.host_blocks, 0
        return self._copy(req.blocks)

    def _copy(self, blocks: int) -> float:
        nbytes = blocks * self.bytes_per_block
        self.swapped_bytes += nbytes
        return nbytes / self.host_link_Bps
