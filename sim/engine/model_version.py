"""The version of the simulator's model: which numbers a given config produces.

A finished sweep point is reused by a later sweep only when its key matches, and the key
(sim/studies/sweep/points.py) holds ``MODEL_VERSION`` beside the config and the contents of its
input files. Bump it by one, with a line below saying why, in every change that makes some
config give different numbers in a result file: op costs (hwmodels/, sim/engine/), operator
graphs (workloads/), the passes, schedulers and serving (sim/batch/, sim/serving/), the
figures derived from them (sim/metrics/), or the shipped calibration. A change that only
refactors, adds a field whose default keeps the old numbers, or touches printing, files or
charts keeps it. Points finished under another version are simulated again, never reused.
tests/test_reuse.py holds the headline numbers of a few reference runs to the version they
were recorded under (tests/golden/model_numbers.json; ``python -m tests.golden.model_numbers``
rewrites it after a bump), so a change that moves them without a bump fails.

History:
  1: the reuse key first holds a model version (issue 14).
  2: communication overlap is chunked: a GEMM's reduction overlaps only the next piece (issue 14).
  3: issue 12's transfer mechanisms: sustained clock under the power budget, HBM streaming by generation,
     cycles and absolute fixed costs, stream-K, split-K partials through HBM, NCCL-like collectives.
  4: expert parallelism's measured load imbalance is the default (parallel.moe_imbalance null: 1.18 at
     ep > 1, LMSYS 2025), so MoE runs with ep > 1 take longer; dense runs keep their numbers (issue 18).
  5: stream-K chips (H100, H200, B200, GB200) share the k-loop over the SMs also when a GEMM has fewer output tiles
     than SMs, instead of split-K through HBM; a unit gets at least 8 k-tiles (issue 12).
  6: trade-offs priced (issue 13): the power cap counts the SRAM passes of HBM bytes and throttles
     the energy of published-efficiency kernels; HBM is priced partly by its bandwidth; the clock
     costs energy (V ~ f) and area above the node's nominal clock; HBM PHYs need die edge.
  7: the A100 fit re-run on the model of versions 4-6 (the power cap's SRAM passes moved large A100 GEMMs):
     matmul_efficiency 0.8114 -> 0.8158, matmul_overlap_loss 0.3756 -> 0.363, and the eager host costs.
  8: the SRAM's bandwidth is bytes per cycle, so a clock override moves it (stock presets keep theirs, H100 and
     H200 to a last bit); tiles of fewer arrays than a core has are candidates (a core of 5 arrays no longer pads
     a few rows into 8). Stock chips at their own clocks give the same numbers. A batch run's energy, chips and
     dollars cover its parallel.dp replicas, as its throughput does (per-token and per-chip figures unchanged).
  9: serving summaries take Little's law over the span from the first arrival (as requests_per_s), report the KV
     cache a chip holds with pipeline parallelism (pp engines' caches), and log speculative verify chunks as
     decodes; guaranteed admission reserves the drafts' blocks of a speculative request, and a speculative run's
     activation workspace holds the k verified tokens of every decode a step may have. Step costs unchanged.
  10: fully connected boards (MI300X, MI325X, MI355X, Gaudi 3) are a ``mesh``, not a switch: a group of p of the
     N chips reaches its peers over p-1 of the N-1 links and a send to one peer has one link, so their tp < 8
     collectives and pipeline sends are slower (8-chip collectives unchanged); their scale-up fabric is priced
     as direct links, not switch silicon.
  11: the tile chooser weighs what the kernel costs: the longer of its arrays' and its operands' HBM time, plus a
     split-K reduction's HBM time and launch (it compared the arrays' time alone, so memory-bound decode GEMMs split
     k and paid the partial sums and a second launch for nothing: 1-3 % slower decode, and more cores or arrays
     could slow it); the A100 fit re-run on it (hbm_latency_us 0.937 -> 0, kernel_overhead_us 0.926 -> 1.881).
  12: fp4 weights are MXFP4 (one 8-bit scale per 32 weights, 4.25 bits a weight), not int4's fp16 scale per
     precision.group_size (4.125 bits): fp4 weights read 3 % more bytes, so memory-bound fp4 decode is slower.
  13: in-switch (NVLS) all-reduce bandwidth takes NCCL's efficiency for the chip's architecture: 0.74 on
     Blackwell (B200, GB200), 0.85 on Hopper as before, so large in-switch all-reduces on Blackwell are slower.
  14: a phase's power (energy.power_W_by_phase) is its energy over the wall time its passes cover; with
     parallel.pp > 1 the micro-batches' passes overlap and their summed durations counted the overlap twice, so
     both phases read below the run's average. And a MoE expert's rows are at most the tokens there are (a token
     picks an expert once): at a batch of a few tokens the imbalance no longer rounds them above that, so
     small-batch MoE decode does fewer FLOPs (its time barely moves: memory-bound). And a GEMM's tiles stream
     through SRAM only the rows and columns they hold, not the padding that fills the arrays: decode GEMVs,
     whose SRAM term sat near their HBM time, are up to 0.5 % faster (H100 default run, after the refit it
     needed: TPOT 5.56 -> 5.55 ms).
     And drawn request lengths longer than the context keep their output and have their prompt cut, as a
     trace replay does (workload.lengths=azure_code cut the output to 1 token), and the run says how many.
  15: a chip's system cost follows its networks' bandwidth: switch silicon per GB/s of its scale-up links
     ($1,500 at 450 GB/s, as before; A100 $1,000, GB200 $3,000) and a scale-out port at $1,000 plus $40 per GB/s
     of its NIC ($3,000 at 400 Gb/s, as before; 200 Gb/s $2,000). Times, energy and chip costs unchanged.
"""

from __future__ import annotations

MODEL_VERSION = 15
