"""What every step of the server computes: which prompts (or chunks of them) and which decodes.

Three schedulers (``scheduler.kind``):

* ``static``: when the chip is free, up to ``max_batch`` waiting requests form a batch (as many
  as fit in ``token_budget`` prompt tokens, except a single longer one, and in the KV cache);
  their prompts are padded to the longest, and the batch decodes until its longest output is
  done: a request's tokens stream out as made, but its slot stays busy to the end. A batch
  reserves its whole KV cache up front, so it is never preempted.
* ``continuous``: iteration-level batching (Orca; vLLM): every step decodes one token for each
  running request and admits waiting ones (first come, first served) with their whole prompt
  while the step stays within ``token_budget`` tokens (a longer prompt is admitted alone),
  ``max_batch`` running requests and the free KV blocks.
* ``chunked_prefill`` (Sarathi-Serve): decodes first, then the rest of ``token_budget`` is filled
  with chunks of the prompts being prefilled, then with new admissions.

KV blocks (``scheduler.admission``): ``max_utilization`` (the default) reserves the blocks of the
whole prompt at admission and a decode takes a new block when its last one is full;
``guaranteed`` reserves the blocks of the prompt and the whole output at admission, so a running
request never needs another block and nobody is ever preempted (fewer requests run at once).
When the free blocks run out, the most recently admitted request is
preempted (vLLM's policy) until the decode fits: ``recompute`` frees its blocks and puts it at
the head of the queue to prefill its prompt and the tokens it had made again; ``swap`` copies
its blocks to host memory, and it resumes (before any new admission) when they fit again.
A step that preempts admits nobody new. No request is ever dropped.

``disaggregated`` (separate prefill and decode instances) builds on these: sim/serving/disaggregated.py.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from sim.config.schema import Admission, Preemption, SchedulerConfig
from sim.serving.kv_cache import KvCache
from sim.serving.request import Request, State
from workloads.graph import Execution
from workloads.model import ModelConfig
from workloads.step import cached_keys, decode_keys


class StepShape(NamedTuple):
    """What a step computes, in the terms of ``workloads.step.build_step_totals`` (a named tuple: one is made
    for nearly every step, in a fraction of a frozen dataclass's time)."""

    chunks: tuple[tuple[int, int], ...]  # (new tokens, context) of each prefill chunk
    decodes: int
    decode_pairs: int  # keys the decodes attend to, summed
    decode_cached: int  # keys they read from the cache (paged: whole blocks), summed
    decode_contexts: int  # their contexts, summed (an unfused kernel's scores)
    samples: int  # sequences that produce a token
    drafts: int = 0  # speculative decoding: sequences the draft model extends (k passes)
    draft_contexts: int = 0  # their contexts at the first draft pass, summed

    @property
    def tokens(self) -> int:
        return sum(new for new, _ in self.chunks) + self.decodes


@dataclass(slots=True)
class StepPlan:
    """One step: the work and what it does to the requests."""

    shape: StepShape | None  # None: nothing to compute (only host copies)
    prefills: list[tuple[Request, int]]  # (request, prompt tokens it prefills in this step)
    decodes: list[Request]  # requests that make a token by decoding
    admitted: list[Request] = field(default_factory=list)  # admitted for the first time
    preempted: int = 0
    swap_s: float = 0.0  # host-link copies before the step


class Scheduler:
    """The state all schedulers share: the queue, the running and swapped requests, the cache.

    Each scheduler class states its ``label`` (how the console and charts name it) and whether a
    prompt longer than ``token_budget`` runs alone in one step (``whole_prompts``); the registry
    keyed by ``SchedulerKind`` is sim/serving/registry.py.
    """

    label = "scheduler"
    whole_prompts = True

    def __init__(self, cfg: SchedulerConfig, kv: KvCache, model: ModelConfig, ex: Execution) -> None:
        self.cfg, self.kv, self.model, self.ex = cfg, kv, model, ex
        self.waiting: deque[Request] = deque()
        self.swapped: deque[Request] = deque()
        self.running: list[Request] = []  # admitted, in admission order
        self.preemptions = 0
        self._plain = not model.sliding_window and not ex.kv_block_tokens
        # a decode attends to its whole context (``decode_keys`` is the identity)
        self._whole = bool(model.global_layer_period) or not (model.attention_chunk or model.sliding_window)
        self.prefix = cfg.prefix_caching  # sim/serving/kv_cache.py: the cached shared prefix
        self.k, self.acceptance, self.rng = 0, 0.0, None  # speculative decoding (``speculate``)
        self.made = 0  # tokens the last completed step produced
        self.guaranteed = cfg.admission is Admission.guaranteed

    def _reserve(self, req: Request) -> int:
        """Tokens whose blocks admission takes: the prefill, or with ``guaranteed`` the whole request (with
        speculative decoding, and the ``k`` drafts its last step verifies: it never needs another block)."""
        return req.prompt_tokens + req.output_tokens + self.k if self.guaranteed else req.prefill_target

    def speculate(self, k: int, acceptance: float, rng) -> None:
        """Decode speculatively: each step a draft model proposes ``k`` tokens per decoding sequence, the
        target verifies them in one pass (a chunk of ``k + 1`` tokens per sequence), and each drafted
        token is accepted with probability ``acceptance`` until the first rejection (drawn from ``rng``)."""
        self.k, self.acceptance, self.rng = k, acceptance, rng

    def add(self, req: Request) -> None:
        """A request arrives."""
        self.waiting.append(req)

    def plan(self, now: float) -> StepPlan | None:
        """The next step, or None when there is nothing to do until a request arrives."""
        raise NotImplementedError

    def complete(self, plan: StepPlan, now: float) -> list[Request]:
        """Apply a finished step at time ``now``; the requests it completed."""
        done = []
        self.made = 0
        for req, new in plan.prefills:
            req.prefilled += new
            req.kv_tokens += new
            if self.prefix and req.shared and req.prefilled >= req.shared:
                self.kv.insert(req)
            if req.prefilled >= req.prefill_target:
                req.state = State.decoding
                self._token(req, now, done)
        if self.k:
            for req in plan.decodes:
                for _ in range(self._accepted(req)):
                    req.kv_tokens += 1
                    self._token(req, now, done)
        else:  # one token per decode: ``_token`` inline but for a first or last token (a batch holds hundreds)
            made = 0
            for req in plan.decodes:
                req.kv_tokens += 1
                generated = req.generated
                if generated and generated + 1 < req.output_tokens:
                    req.generated = generated + 1
                    made += 1
                else:
                    self._token(req, now, done)
            self.made += made
        if done:
            self.running = [r for r in self.running if r.state is not State.done]
        return done

    # Shared pieces ------------------------------------------------------------------------------
    def _accepted(self, req: Request) -> int:
        """Tokens a decode makes: one, or with speculation one plus the drafts accepted before the first
        rejection, at most what the request still has to make."""
        if not self.k:
            return 1
        draws = self.rng.random(self.k) < self.acceptance
        accepted = self.k if draws.all() else int(draws.argmin())
        return min(1 + accepted, req.output_tokens - req.generated)

    def _token(self, req: Request, now: float, done: list[Request]) -> None:
        self.made += 1
        req.generated += 1
        if req.generated == 1:
            req.first_token_s = now
        if req.generated >= req.output_tokens:
            req.state = State.done
            req.finish_s = now
            self._release_finished(req)
            done.append(req)

    def _release_finished(self, req: Request) -> None:
        if self.prefix and req.conv >= 0:
            self.kv.end_turn(req)  # its KV stays cached for its conversation's next turn
        else:
            self.kv.release(req)

    def _reserve_decodes(self) -> tuple[int, float]:
        """A cache slot for every decode's next token, preempting the newest requests if needed."""
        preempted, swap_s, block, decoding = 0, 0.0, self.kv.block_tokens, State.decoding
        ahead = 1 + self.k  # tokens a decode writes to the cache: its own, and the drafts it verifies
        short = [r for r in self.running
                 if r.state is decoding and r.kv_tokens + ahead > (r.blocks + r.shared_blocks) * block]
        for req in short:  # decodes whose next tokens do not fit in the blocks they hold, in admission order
            if req.state is not State.decoding or req.kv_tokens + ahead <= (req.blocks + req.shared_blocks) * block:
                continue  # preempted meanwhile, or its blocks grew
            need = self.kv.needed(req, req.kv_tokens + ahead)
            while need > self.kv.free:
                if self.kv.evict_unused():  # a cached prefix nobody reads goes before any running request
                    continue
                victim = self.running[-1]
                swap_s += self._preempt(victim)
                preempted += 1
                if victim is req:
                    break
            if req.state is decoding:  # the loop made room: no search for it again (``KvCache.grow``)
                self.kv.take(req, need)
        return preempted, swap_s

    def _preempt(self, victim: Request) -> float:
        self.running.pop()
        victim.preemptions += 1
        self.preemptions += 1
        if self.cfg.preemption is Preemption.swap and victim.state is State.decoding:
            victim.state = State.swapped
            self.swapped.appendleft(victim)
            return self.kv.swap_out(victim)
        self.kv.release(victim)
        victim.state = State.waiting
        victim.prefill_target = victim.prompt_tokens + victim.generated
        victim.prefilled = victim.kv_tokens = 0
        self.waiting.appendleft(victim)
        return 0.0

    def _resume_swapped(self, decodes: list[Request]) -> float:
        swap_s, ahead = 0.0, 1 + self.k
        while self.swapped and len(self.running) < self.cfg.max_batch:
            req = self.swapped[0]  # back with its blocks, and any more its next tokens need (``_reserve_decodes``)
            if max(req.host_blocks, self.kv.blocks_for(req.kv_tokens + ahead)) > self.kv.free:
                break
            swap_s += self.kv.swap_in(req)
            self.kv.grow(req, req.kv_tokens + ahead)
            self.swapped.popleft()
            req.state = State.decoding
            self.running.append(req)
            decodes.append(req)
        return swap_s

    def _admit(self, now: float, admitted: list[Request], cached: int = 0) -> Request:
        """Admit the head of the queue; ``cached`` of its prompt tokens are in the cached prefix."""
        req = self.waiting.popleft()
        req.state = State.prefilling
        self.running.append(req)
        req.prefilled = req.kv_tokens = cached
        self.kv.saved_tokens += cached
        if not req.admitted:
            req.first_scheduled_s = now
            req.cached_prompt = cached
            admitted.append(req)
        return req

    def _lookup(self, req: Request) -> int:
        """Prompt tokens of ``req`` already cached (its shared prefix; 0 without prefix caching). At least
        one token is prefilled, to make the first output token's logits."""
        if not self.prefix or not (req.shared or req.context):
            return 0
        return min(self.kv.lookup(req), req.prefill_target - 1)

    def _unlookup(self, req: Request) -> None:
        if self.prefix and (req.shared or req.context):
            self.kv.unlookup(req)

    def _decodes_for_step(self) -> tuple[int, float, list[Request]]:
        """(requests preempted, swap seconds, decodes) of the next step: reserve a block for every decode,
        preempting when the cache runs out, and bring swapped requests back when nothing was."""
        (preempted, swap_s), decoding = self._reserve_decodes(), State.decoding
        decodes = [r for r in self.running if r.state is decoding]
        if not preempted:
            swap_s += self._resume_swapped(decodes)
        return preempted, swap_s, decodes

    def _admit_whole_prompts(self, now: float, budget: int) -> tuple[list[tuple[Request, int]], list[Request]]:
        """Admit waiting requests in order while their whole prompts fit ``budget`` (what the step's decodes leave of
        ``token_budget``), the batch limit and the KV cache; a prompt longer than ``token_budget`` itself, which no
        step could fit, as the step's only prompt."""
        prefills: list[tuple[Request, int]] = []
        admitted: list[Request] = []
        while self.waiting and len(self.running) < self.cfg.max_batch:
            req = self.waiting[0]
            cached = self._lookup(req)
            new = req.prefill_target - cached
            fits = new <= budget or (not prefills and new > self.cfg.token_budget)
            if not fits or not self.kv.grow(req, self._reserve(req)):
                self._unlookup(req)
                break
            self._admit(now, admitted, cached)
            prefills.append((req, new))
            budget -= new
        return prefills, admitted

    def _shape(self, prefills: list[tuple[Request, int]], decodes: list[Request]) -> StepShape | None:
        if not prefills and not decodes:
            return None
        chunks = tuple((new, req.prefilled + new) for req, new in prefills)
        samples = len(decodes) + sum(1 for req, new in prefills if req.prefilled + new >= req.prefill_target)
        if self.k and decodes:  # the target verifies k + 1 positions of each decode, with logits for each
            k = self.k
            verify = tuple((k + 1, req.kv_tokens + k + 1) for req in decodes)
            shape = self._shape_of(chunks + verify, [], samples + k * len(decodes))
            return shape._replace(drafts=len(decodes), draft_contexts=sum(req.kv_tokens + 1 for req in decodes))
        return self._shape_of(chunks, [req.kv_tokens + 1 for req in decodes], samples)

    def _shape_of(self, chunks: tuple[tuple[int, int], ...], contexts: list[int], samples: int) -> StepShape:
        total = sum(contexts)
        if self._plain:
            return StepShape(chunks, len(contexts), total, total, total, samples)
        block = self.ex.kv_block_tokens
        if self._whole:  # the loop below without its calls: keys are the contexts, read in whole blocks
            cached = sum([-(-c // block) for c in contexts]) * block if block else total
            return StepShape(chunks, len(contexts), total, cached, total, samples)
        keys = [decode_keys(c, self.model) for c in contexts]
        return StepShape(chunks, len(contexts), sum(keys), sum(cached_keys(k, self.ex) for k in keys), total, samples)


class ContinuousScheduler(Scheduler):
    """Iteration-level batching: whole prompts join the running decodes at every step."""

    label = "continuous batching"

    def plan(self, now: float) -> StepPlan | None:
        preempted, swap_s, decodes = self._decodes_for_step()
        prefills: list[tuple[Request, int]] = []
        admitted: list[Request] = []
        if not preempted and not self.swapped:
            prefills, admitted = self._admit_whole_prompts(now, self.cfg.token_budget - len(decodes))
        if not prefills and not decodes and not swap_s:
            return None
        return StepPlan(self._shape(prefills, decodes), prefills, decodes, admitted, preempted, swap_s)


class ChunkedPrefillScheduler(Scheduler):
    """Sarathi-Serve: decodes, then prompt chunks, within a token budget per step."""

    label = "chunked prefill"
    whole_prompts = False  # a prompt longer than token_budget is chunked

    def plan(self, now: float) -> StepPlan | None:
        preempted, swap_s, decodes = self._decodes_for_step()
        budget = self.cfg.token_budget - len(decodes)
        prefills: list[tuple[Request, int]] = []
        admitted: list[Request] = []
        for req in self.running:
            if budget <= 0:
                break
            if req.state is State.prefilling:
                new = min(req.prefill_target - req.prefilled, budget)
                prefills.append((req, new))
                budget -= new
        while (not preempted and not self.swapped and self.waiting and budget > 0
               and len(self.running) < self.cfg.max_batch):
            req = self.waiting[0]
            cached = self._lookup(req)
            if not self.kv.grow(req, self._reserve(req)):
                self._unlookup(req)
                break
            self._admit(now, admitted, cached)
            new = min(req.prefill_target - cached, budget)
            prefills.append((req, new))
            budget -= new
        if not prefills and not decodes and not swap_s:
            return None
        return StepPlan(self._shape(prefills, decodes), prefills, decodes, admitted, preempted, swap_s)


class StaticScheduler(Scheduler):
    """Request-level batching: a padded batch runs to its longest output; nobody joins it."""

    label = "static batching"

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.batch: list[Request] = []
        self.prompt = self.output = self.step = 0  # the batch's padded prompt and output, decode step

    def plan(self, now: float) -> StepPlan | None:
        if self.batch and all(r.state is State.done for r in self.batch):
            for req in self.batch:
                self.kv.release(req)
            self.batch = []
        if not self.batch:
            return self._start(now)
        self.step += 1
        decodes = [r for r in self.batch if r.state is State.decoding]
        contexts = [self.prompt + self.step] * len(self.batch)
        return StepPlan(self._shape_of((), contexts, len(self.batch)), [], decodes)

    def _start(self, now: float) -> StepPlan | None:
        batch: list[Request] = []
        prompt = output = 0
        for req in self.waiting:
            if len(batch) == self.cfg.max_batch:
                break
            p, o = max(prompt, req.prefill_target), max(output, req.output_tokens)
            n = len(batch) + 1
            if batch and (n * p > self.cfg.token_budget or n * self.kv.blocks_for(p + o) > self.kv.free):
                break
            batch.append(req)
            prompt, output = p, o
        if not batch or len(batch) * self.kv.blocks_for(prompt + output) > self.kv.free:
            return None
        admitted: list[Request] = []
        for req in batch:
            self._admit(now, admitted)
            self.kv.grow(req, prompt + output)
        self.batch, self.prompt, self.output, self.step = batch, prompt, output, 0
        self.running = list(batch)
        shape = self._shape_of(((prompt, prompt),) * len(batch), [], len(batch))
        return StepPlan(shape, [(r, r.prefill_target) for r in batch], [], admitted)

    def _release_finished(self, req: Request) -> None:
        pass  # the batch keeps its blocks until its longest request is done
