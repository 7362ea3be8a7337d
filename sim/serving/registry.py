"""The schedulers a serving run can use, keyed by ``scheduler.kind``: each entry's label and how it
builds the server (one instance with that scheduler, or disaggregated prefill and decode instances).

A new scheduler is a class in sim/serving/schedulers.py (with its ``label``), a member of
``SchedulerKind``, a preset in conf/scheduler/ and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.config.placement import layout_of
from sim.config.schema import RunConfig, SchedulerKind
from sim.engine.costing import send_op
from sim.engine.pipeline import split
from sim.serving.disaggregated import disaggregated_server
from sim.serving.kv_cache import KvCache
from sim.serving.routers import make_router
from sim.serving.schedulers import ChunkedPrefillScheduler, ContinuousScheduler, Scheduler, StaticScheduler
from sim.serving.server import Instance, Pipeline, Server
from sim.serving.step_cost import StepCoster
from sim.serving.traffic import Traffic

MakeServer = Callable[[RunConfig, Traffic, Callable[[], KvCache], StepCoster], Server]


@dataclass(frozen=True)
class SchedulerEntry:
    """A scheduler kind: its label, how a server is built with it, and whether long prompts run alone."""

    label: str
    make_server: MakeServer
    whole_prompts: bool = True  # a prompt longer than token_budget runs alone in one step


def one_instance(cls: type[Scheduler]) -> SchedulerEntry:
    """The entry of a scheduler that serves on ``parallel.dp`` replicas of one tensor-parallel group each,
    arrivals shared among them by the router (one replica is named ``chip``)."""

    def make(cfg: RunConfig, traffic: Traffic, new_cache: Callable[[], KvCache], coster: StepCoster) -> Server:
        dp, pp, ex = cfg.parallel.dp, cfg.parallel.pp, cfg.execution()
        names = ["chip"] if dp == 1 else [f"replica{i}" for i in range(dp)]
        if pp > 1:  # each replica runs pp virtual engines whose steps share its stages
            instances = [Instance(f"{name}.engine{v}", "both", cls(cfg.scheduler, new_cache(), cfg.model, ex),
                                  pipe=name) for name in names for v in range(pp)]
        else:
            instances = [Instance(name, "both", cls(cfg.scheduler, new_cache(), cfg.model, ex)) for name in names]
        server = Server(traffic, instances, coster, make_router(cfg.router.kind, cfg.seed))
        if pp > 1:
            token_bytes = cfg.model.hidden_size * cfg.precision.activations.bytes
            nodes = max(layout_of(cfg).send_nodes)  # one send cost for every boundary: the slowest tier's
            server.pipeline = Pipeline(tuple(split(cfg.model.num_layers, pp)),
                                       lambda tokens: coster.coster(send_op(tokens * token_bytes, nodes)).time_s)
        return server

    return SchedulerEntry(cls.label, make, cls.whole_prompts)


SCHEDULERS: dict[SchedulerKind, SchedulerEntry] = {
    SchedulerKind.static: one_instance(StaticScheduler),
    SchedulerKind.continuous: one_instance(ContinuousScheduler),
    SchedulerKind.chunked_prefill: one_instance(ChunkedPrefillScheduler),
    SchedulerKind.disaggregated: SchedulerEntry("disaggregated prefill and decode", disaggregated_server),
}


def scheduler_label(kind: SchedulerKind | str) -> str:
    """How the console and charts name a scheduler kind (its value, as summary.json's ``run.scheduler``)."""
    return SCHEDULERS[SchedulerKind(kind)].label
