"""The draft model of speculative decoding (``speculative.draft_model``), loaded and checked against the
target: single-batch runs (sim/batch/) and serving runs (sim/serving/) both use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.config.errors import RunError
from sim.config.presets import PresetError, load_model
from workloads.model import ModelConfig

if TYPE_CHECKING:
    from sim.config.schema import RunConfig


def draft_model(cfg: RunConfig) -> ModelConfig | None:
    """The speculative draft model, checked against the target; None when speculation is off."""
    name = cfg.speculative.draft_model
    if not name:
        return None
    if name == "hf":  # the hf preset reads model.hf_config_path, which is the target's
        raise RunError("speculative.draft_model=hf is not supported: a draft model is a preset of conf/model/ "
                       "(llama2_7b, llama3_8b, ...); model.hf_config_path names the target's config only")
    try:
        draft = load_model(name)
    except PresetError as err:
        raise RunError(f"speculative.draft_model: {err}") from None
    if draft.vocab_size != cfg.model.vocab_size:
        raise RunError(
            f"speculative.draft_model={name} has a {draft.vocab_size}-token vocabulary but {cfg.model.name} has "
            f"{cfg.model.vocab_size}; the draft must share the target's tokenizer"
        )
    tp = cfg.parallel.tp
    if draft.num_heads % tp or draft.num_kv_heads % tp:
        raise RunError(f"parallel.tp={tp} does not divide the draft model {name}'s heads; use a smaller tp")
    return draft
