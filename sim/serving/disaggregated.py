"""Disaggregated serving (Splitwise, Patel et al. ISCA 2024; DistServe, Zhong et al. OSDI 2024).

``scheduler=disaggregated``: ``prefill_instances`` tensor-parallel groups only prefill and
``decode_instances`` groups only decode, so a long prompt never stalls anybody's decodes. A
prefill instance admits whole prompts within ``token_budget`` tokens per step; the step makes
each request's first token. The request's KV blocks then move to the decode instance with the
most free blocks (first come, first served; a request waits, holding its blocks, until one has
room): every chip sends its shard to its peer at the same time, so a move takes one
point-to-point transfer of the blocks' bytes per chip: a ``send`` op costed by ``Coster`` like any
op (kernel overhead and link latency, then the bytes at the calibrated link rate), and the moves
out of one prefill instance share its links (a processor-sharing server, sim/engine/resources.py).
A move's dynamic energy (its link bytes) is added to the run's energy. The decode instance reserves the
blocks when the move starts; the prefill instance frees them when it ends. A decode instance is
a continuous-batching scheduler whose requests arrive already prefilled; one it preempts by
recompute is prefilled again there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from sim.config.schema import RunConfig
from sim.engine.costing import send_op
from sim.engine.resources import SharedServer
from sim.serving.kv_cache import KvCache
from sim.serving.request import Request, State
from sim.serving.routers import make_router
from sim.serving.schedulers import ContinuousScheduler, Scheduler, StepPlan
from sim.serving.server import Instance, Server
from sim.serving.step_cost import StepCoster
from sim.serving.traffic import Traffic


class PrefillScheduler(Scheduler):
    """Prefills whole prompts; a prefilled request keeps its blocks until its KV cache has moved."""

    def plan(self, now: float) -> StepPlan | None:
        prefills, admitted = self._admit_whole_prompts(now, self.cfg.token_budget)
        if not prefills:
            return None
        return StepPlan(self._shape(prefills, []), prefills, [], admitted)

    def hand_off(self, req: Request) -> None:
        """The request's KV cache has moved: free its blocks here."""
        self.kv.release(req)
        self.running.remove(req)


class DecodeScheduler(ContinuousScheduler):
    """Continuous batching of requests that arrive prefilled (and of its own recomputes)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.incoming = 0  # requests whose KV cache is on its way

    def has_room(self, blocks: int) -> bool:
        return self.kv.free >= blocks and len(self.running) + self.incoming < self.cfg.max_batch

    def accept(self, req: Request) -> None:
        req.state = State.decoding
        self.running.append(req)


class KvMover:
    """Moves prefilled requests' KV caches from prefill to decode instances (the server's handoff)."""

    def __init__(self, server: Server, coster: StepCoster) -> None:
        """Moves are ``send`` ops costed by ``coster``'s op coster, their energy by its energy model."""
        self.server, self.env, self.coster = server, server.env, coster
        self.decoders = [i for i in server.instances if i.role == "decode"]
        self.links = {i.name: SharedServer(server.env, f"{i.name}.link") for i in server.instances
                      if i.role == "prefill"}
        self.pending: deque[tuple[Instance, Request]] = deque()
        self.moved_bytes = 0.0  # per chip, all moves
        self.moves = 0
        self.move_s = 0.0  # summed over moves

    def after_step(self, inst: Instance, plan: StepPlan) -> None:
        if inst.role == "prefill":
            self.pending.extend((inst, r) for r, _ in plan.prefills if r.state is State.decoding)
        self._start_moves()

    def _start_moves(self) -> None:
        while self.pending:
            source, req = self.pending[0]
            blocks = source.scheduler.kv.blocks_for(req.kv_tokens + 1)
            fits = [d for d in self.decoders if d.scheduler.has_room(blocks)]
            if not fits:
                return  # first come, first served: the head waits for room
            target = max(fits, key=lambda d: d.scheduler.kv.free)
            self.pending.popleft()
            target.scheduler.kv.used += blocks
            target.scheduler.incoming += 1
            self.env.process(self._move(source, target, req, blocks))

    def _move(self, source: Instance, target: Instance, req: Request, blocks: int):
        nbytes = req.blocks * source.scheduler.kv.bytes_per_block
        cost = self.coster.coster(send_op(nbytes))
        start = self.env.now
        if cost.delay_s > 0:
            yield self.env.timeout(cost.delay_s)
        if cost.link_transfer_s > 0:
            yield self.links[source.name].submit(cost.link_transfer_s)
        self.server.log.energy(self.coster.energy.work(link_bytes=cost.link_bytes).total_J)
        self.moved_bytes += nbytes
        self.moves += 1
        self.move_s += self.env.now - start
        source.scheduler.hand_off(req)
        target.scheduler.incoming -= 1
        req.blocks = blocks
        target.scheduler.accept(req)
        self.server.wake(target)
        self.server.wake(source)  # its blocks are free again
        self._start_moves()


def disaggregated_server(cfg: RunConfig, traffic: Traffic, new_cache: Callable[[], KvCache],
                         coster: StepCoster) -> Server:
    """A server of ``scheduler.prefill_instances`` prefill and ``decode_instances`` decode groups."""
    sched, model, ex = cfg.scheduler, cfg.model, cfg.execution()
    instances = [Instance(f"prefill{i}", "prefill", PrefillScheduler(sched, new_cache(), model, ex))
                 for i in range(sched.prefill_instances)]
    instances += [Instance(f"decode{i}", "decode", DecodeScheduler(sched, new_cache(), model, ex))
                  for i in range(sched.decode_instances)]
    server = Server(traffic, instances, coster, make_router(cfg.router.kind, cfg.seed))
    server.handoff = KvMover(server, coster)
    return server
