"""What is asked of the system: one batch or a stream of requests, its scheduler and latency targets."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from sim.config.errors import RunError, check_at_most


class WorkloadKind(str, Enum):
    single_batch = "single_batch"  # one batch: prefill its prompts, then decode
    serving = "serving"  # a stream of requests through a scheduler (sim/serving/)


class ArrivalProcess(str, Enum):
    poisson = "poisson"  # exponential inter-arrival times at rate_per_s
    gamma = "gamma"  # gamma inter-arrival times at rate_per_s, coefficient of variation cv (bursty for cv > 1)
    closed = "closed"  # concurrency users, each sending its next request when its last one completes
    trace = "trace"  # arrival times and lengths from a bundled trace (trace) or a CSV (trace_path)
    offline = "offline"  # every request at time 0: a batch job (its throughput includes the drain)


class LengthDistribution(str, Enum):
    """Lengths of prompts and outputs (sim/serving/lengths.py has the datasets' statistics and sources)."""

    fixed = "fixed"  # every request: prompt_tokens in, decode_tokens out
    uniform = "uniform"  # uniform around those means, coefficient of variation length_cv
    lognormal = "lognormal"  # lognormal with those means and coefficient of variation length_cv
    sharegpt = "sharegpt"  # ShareGPT conversations (means from the vLLM paper)
    alpaca = "alpaca"  # Alpaca instructions (means from the vLLM paper)
    chat = "chat"  # outputs only: chat answers capped at 1024 tokens (MLPerf Llama-2-70B style)
    azure_code = "azure_code"  # drawn from the rows of the Azure 2023 code trace
    azure_conv = "azure_conv"  # drawn from the rows of the Azure 2023 conversation trace


class TraceName(str, Enum):
    """The production traces shipped in data/traces/ (README there: source, licence, citation)."""

    azure_code = "azure_code"  # Azure LLM inference, code completion, one hour of 2023-11-16
    azure_conv = "azure_conv"  # Azure LLM inference, conversation, the same hour


DRAWN_REQUESTS = 1000  # requests of a drawn (not replayed) workload when num_requests is null
MOST_REQUESTS = 10_000_000  # requests of a run at most (why: ``MOST_REQUESTS_WHY``)
MOST_REQUESTS_WHY = "every request is simulated; 10 million take hours"


@dataclass
class WorkloadConfig:
    kind: WorkloadKind = WorkloadKind.single_batch
    batch: int = 1  # sequences processed together
    prompt_tokens: int = 512  # prompt length per sequence
    decode_tokens: int = 128  # tokens generated per sequence (the first comes from the prefill)
    # Serving (kind=serving, sim/serving/): prompt_tokens and decode_tokens are the mean lengths.
    num_requests: Optional[int] = None  # requests in the run; null: 1000 drawn, or every row of a trace
    arrival: ArrivalProcess = ArrivalProcess.poisson
    rate_per_s: float = 10.0  # mean arrival rate, requests per second (poisson, gamma)
    cv: float = 2.0  # coefficient of variation of gamma inter-arrival times (1 is Poisson)
    concurrency: int = 16  # closed loop: users, each with one request outstanding
    trace: Optional[TraceName] = None  # a shipped trace (data/traces/): azure_code | azure_conv
    trace_path: Optional[str] = None  # CSV with arrival_s, prompt_tokens, output_tokens (or Azure's own columns)
    trace_scale: float = 1.0  # a trace replays this many times as fast (its gaps divided by it)
    lengths: LengthDistribution = LengthDistribution.fixed  # prompts and outputs; a trace brings its own
    output_lengths: Optional[LengthDistribution] = None  # outputs only; null: as lengths
    length_cv: float = 0.5  # coefficient of variation of uniform and lognormal lengths
    shared_prefix_tokens: int = 0  # a system prompt of this many tokens before every drawn prompt
    # Multi-turn conversations (sim/serving/traffic.py): each conversation has ``turns`` requests; a turn's
    # prompt is the earlier turns' prompts and outputs plus its own drawn tokens.
    turns: int = 1
    # Mean pause, seconds, between a turn's answer and the next turn's arrival (exponential). ESTIMATE: a
    # user reads a ~300-token answer (~225 words at ~240 words/min, about 55 s) and types a short reply;
    # 30 s is taken as a round middle for a chat user who skims. Set it for your own users.
    think_s: float = 30.0

    def __post_init__(self) -> None:
        if self.shared_prefix_tokens < 0:
            raise RunError(f"workload.shared_prefix_tokens must be >= 0 (got {self.shared_prefix_tokens})")
        if self.shared_prefix_tokens and self.arrival is ArrivalProcess.trace:
            raise RunError("workload.shared_prefix_tokens adds a system prompt to drawn prompts; a trace's prompts are "
                           "replayed as they are: set it to 0")
        self._check_turns()
        for key in ("batch", "prompt_tokens", "decode_tokens", "num_requests", "concurrency"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise RunError(f"workload.{key} must be >= 1 (got {value})")
        if not self.rate_per_s > 0:
            raise RunError(f"workload.rate_per_s must be > 0 requests per second (got {self.rate_per_s})")
        if not self.cv > 0:
            raise RunError(f"workload.cv must be > 0 (got {self.cv})")
        if not self.length_cv >= 0:
            raise RunError(f"workload.length_cv must be >= 0 (got {self.length_cv})")
        if not self.trace_scale > 0:
            raise RunError(f"workload.trace_scale must be > 0 (got {self.trace_scale}); 2 replays twice as fast")
        self._check_tops()
        if self.arrival is ArrivalProcess.trace and not (self.trace or self.trace_path):
            raise RunError("workload.arrival=trace needs workload.trace=azure_code|azure_conv or "
                           "workload.trace_path=<CSV with arrival_s, prompt_tokens, output_tokens>")
        if self.trace and self.trace_path:
            raise RunError(f"workload.trace={self.trace.value} and workload.trace_path={self.trace_path} both name a "
                           "trace; set one of them to null")
        if (self.trace or self.trace_path) and self.arrival is not ArrivalProcess.trace:
            named = f"workload.trace={self.trace.value}" if self.trace else f"workload.trace_path={self.trace_path}"
            raise RunError(f"{named} names a trace, but workload.arrival={self.arrival.value} draws the requests: add "
                           "workload.arrival=trace to replay it (and workload=serving), or drop the trace")
        if self.lengths is LengthDistribution.chat:
            raise RunError("workload.lengths=chat gives output lengths only; set workload.output_lengths=chat and "
                           "lengths for the prompts (fixed, uniform, lognormal or a dataset)")

    def _check_turns(self) -> None:
        if not 1 <= self.turns <= 10_000:
            raise RunError(f"workload.turns must be an integer from 1 to 10000 (got {self.turns})")
        if not 0 <= self.think_s <= 1e6:
            raise RunError(f"workload.think_s must be from 0 to 1e6 seconds (got {self.think_s})")
        if self.turns > 1 and self.arrival in (ArrivalProcess.closed, ArrivalProcess.trace):
            raise RunError(f"workload.turns={self.turns} draws conversations whose first turns arrive by "
                           f"poisson, gamma or offline arrivals; arrival={self.arrival.value} brings its own: set "
                           "workload.turns=1")
        if self.turns > 1 and self.shared_prefix_tokens:
            raise RunError("workload.turns > 1 with workload.shared_prefix_tokens > 0 is not modelled (one cache "
                           "entry per conversation, none shared across them): set one of them to its default")

    @property
    def requests(self) -> int:
        """Requests of a drawn workload (a trace replays num_requests rows, or all when it is null)."""
        return DRAWN_REQUESTS if self.num_requests is None else self.num_requests

    def _check_tops(self) -> None:
        """The top of each field's range: far beyond real deployments, short of nonsense."""
        for key, limit, why in (
            ("batch", 1e6, "serving engines cap a step at a few thousand sequences"),
            ("prompt_tokens", 1e7, "the longest contexts are 1-10 million tokens"),
            ("decode_tokens", 1e7, "the longest contexts are 1-10 million tokens"),
            ("num_requests", MOST_REQUESTS, MOST_REQUESTS_WHY),
            ("rate_per_s", 1e6, "requests per second; a million is beyond what the chips of a run could serve"),
            ("concurrency", 1e6, "users of a closed loop, each with a request in flight"),
            ("cv", 100.0, "a gamma coefficient of variation of 100 is already one burst"),
            ("length_cv", 100.0, "a length coefficient of variation of 100 is already one long request"),
            ("trace_scale", 1e6, "a million times as fast turns an hour of traffic into a few milliseconds"),
        ):
            check_at_most(f"workload.{key}", getattr(self, key), limit, why)


class SchedulerKind(str, Enum):
    static = "static"  # fixed batches, each runs until its longest request is done
    continuous = "continuous"  # iteration-level batching: requests join and leave at every step (Orca, vLLM)
    chunked_prefill = "chunked_prefill"  # a token budget per step mixing prefill chunks with decodes (Sarathi-Serve)
    disaggregated = "disaggregated"  # prefill and decode on separate instances, KV moved over the links (Splitwise)


class Admission(str, Enum):
    """The two admission policies of in-flight batching servers (TensorRT-LLM's capacity scheduler)."""

    max_utilization = "max_utilization"  # admit while the cache holds the current lengths; preempt when it fills
    guaranteed = "guaranteed"  # reserve KV for each request's whole output before admitting it: never preempt


class Preemption(str, Enum):
    recompute = "recompute"  # drop the victim's KV blocks; it prefills its prompt and output again later
    swap = "swap"  # copy the victim's KV blocks to host memory over the host link, and back later


@dataclass
class SchedulerConfig:
    """How a serving run batches requests (conf/scheduler/; sim/serving/schedulers.py).

    The KV cache's block size is ``attention.kv_block_tokens`` (one layout for every run).
    """

    kind: SchedulerKind = SchedulerKind.continuous
    max_batch: int = 256  # sequences in one step at most (vLLM max_num_seqs)
    token_budget: int = 8192  # tokens in one step at most (vLLM max_num_batched_tokens); a longer prompt runs alone
    preemption: Preemption = Preemption.recompute
    admission: Admission = Admission.max_utilization  # guaranteed: no preemption ever (GUARANTEED_NO_EVICT)
    kv_cache_GB: Optional[float] = None  # KV cache per chip; null: all HBM left after weights and activations
    prefix_caching: bool = False  # keep the shared prefix's KV blocks for later requests (vLLM enable_prefix_caching)
    prefill_instances: int = 1  # disaggregated: tensor-parallel groups that only prefill
    decode_instances: int = 1  # disaggregated: tensor-parallel groups that only decode

    def __post_init__(self) -> None:
        for key in ("max_batch", "token_budget", "prefill_instances", "decode_instances"):
            if getattr(self, key) < 1:
                raise RunError(f"scheduler.{key} must be >= 1 (got {getattr(self, key)})")
        if self.kv_cache_GB is not None and not self.kv_cache_GB > 0:
            raise RunError(f"scheduler.kv_cache_GB must be > 0 (got {self.kv_cache_GB}); null uses the free HBM")
        for key, limit, why in (
            ("max_batch", 1e6, "serving engines cap a step at a few thousand sequences"),
            ("token_budget", 1e8, "tokens in one step; engines use a few thousand"),
            ("kv_cache_GB", 1e5, "100 TB per chip; the largest chips hold 288 GB"),
            ("prefill_instances", 1e4, "tensor-parallel groups; each is simulated"),
            ("decode_instances", 1e4, "tensor-parallel groups; each is simulated"),
        ):
            check_at_most(f"scheduler.{key}", getattr(self, key), limit, why)


class RouterKind(str, Enum):
    round_robin = "round_robin"  # replica i mod n, whatever their load
    least_outstanding = "least_outstanding"  # the replica with the fewest requests queued or running
    least_kv = "least_kv"  # the replica whose KV cache is the least full
    power_of_two = "power_of_two"  # two replicas at random, the one with fewer outstanding (Mitzenmacher 2001)


@dataclass
class RouterConfig:
    """How arrivals are shared among data-parallel replicas (conf/router/; sim/serving/routers.py)."""

    kind: RouterKind = RouterKind.least_outstanding


@dataclass
class SloConfig:
    """Latency targets of a serving run.

    Per request (goodput): a request meets ``ttft_s`` and ``tpot_s`` when both hold. Over the run
    (capacity, sim/metrics/slo.py): the p99 of TTFT and of TPOT over the steady-state requests
    must stay within ``ttft_p99_s`` and ``tpot_p99_s`` (null: no such target).
    """

    ttft_s: float = 1.0  # time to first token, seconds
    tpot_s: float = 0.1  # time per output token after the first, seconds
    ttft_p99_s: Optional[float] = None  # p99 time to first token, seconds (MLPerf Llama-2-70B server: 2)
    tpot_p99_s: Optional[float] = None  # p99 time per output token, seconds (MLPerf Llama-2-70B server: 0.2)

    def __post_init__(self) -> None:
        for key in ("ttft_s", "tpot_s", "ttft_p99_s", "tpot_p99_s"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise RunError(f"slo.{key} must be > 0 seconds (got {value}); no request meets a zero latency target")
            check_at_most(f"slo.{key}", value, 1e6, "seconds; a latency target of 11 days is no target")

    @property
    def has_p99(self) -> bool:
        """Whether a p99 target is set."""
        return self.ttft_p99_s is not None or self.tpot_p99_s is not None
