"""The settings of a mitigation and their defaults, apart from the code that trains (which imports pandas, TRL,
torch): the CLI builds its parser from these, so `python -m core --help` stays fast."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Where the refusals of pairs may come from, each allowing the ones before it (see core/mitigate/pairs.py).
CHOSEN_FROM: tuple[str, ...] = ("run", "store", "templates")
# The default keeps the default training (about 16 trained language x group cells of the demo run: ~96 pairs, 24
# steps of 4) within 30 minutes on 2 shared CPU cores, where one DPO step of 4 pairs takes 40-70 s (bench/).
PAIRS_PER_GROUP = 6


@dataclass(frozen=True)
class TrainConfig:
    """The training's settings. The defaults are the configuration bench/mitigate_cpu.py times on 2 CPU cores."""

    base: str = "smollm2"  # the target spec of the base model (smollm2, gemma3-270m, local:PATH)
    beta: float = 0.1
    epochs: int = 1
    # Prompt + answer tokens (a longer pair loses the end of its answer). The bundled probes' prompts are 84-225
    # tokens with the chat template and the demo's answers 64, so 320 keeps every pair whole; a prompt that alone
    # fills max_length is an error (TRL would silently drop its pair). Padding, not this, sets the cost.
    max_length: int = 320
    learning_rate: float = 5e-4
    batch_size: int = 4
    lora_r: int = 8
    lora_alpha: int = 16
    save_steps: int = 10
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
