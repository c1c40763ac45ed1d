"""One base model in memory and each author's released twin on it as one LoRA adapter, switched per row.

The twin is base + ΔW(SFT) + ΔW(DPO) (DPO trained on the SFT-merged base). Both deltas are low-rank, so
concatenating them — A = [s_sft·A_sft; s_dpo·A_dpo], B = [B_sft, B_dpo], scale 1 — gives one adapter of
rank r_sft + r_dpo whose delta is exactly their sum (PEFT ``add_weighted_adapter(..., "cat")``). The base
weights stay unmerged and shared, so rows of one batch can use different authors' adapters
(``adapter_names``) and a new release is an adapter load, never a model reload.

Only the generation thread calls :meth:`TwinModels.install` and :meth:`TwinModels.remove` (between
batches), so no forward pass ever sees an adapter appear or vanish.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_twin_assets.llm import LoadedLM, load_causal_lm
from llm_twin_assets.models.registry import ModelRef
from llm_twin_assets.training.twin import add_concatenated

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class Installed:
    author: str
    release: int
    adapter: str
    rank: int


def adapter_name(author: str, release: int) -> str:
    """A PEFT adapter name (no dots: PEFT uses them as module paths)."""
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', author)}_r{release}"


class TwinModels:
    """The shared base model and the installed twins, by author."""

    def __init__(self, base_folder: Path, device: str = "cpu") -> None:
        self.base_folder = base_folder
        self.lm: LoadedLM = load_causal_lm(ModelRef(str(base_folder), True, "path"), device=device)
        self.model: Any = None  # a PeftModel once the first twin is installed
        self.installed: dict[str, Installed] = {}
        self._mode: str | None = None  # the adapter every layer runs now, BASE, or None (per row)

    @property
    def forward_model(self) -> Any:
        return self.model if self.model is not None else self.lm.model

    def adapter_for(self, author: str | None) -> str:
        if author is None:
            return BASE
        return self.installed[author].adapter

    def route(self, adapters: list[str]) -> dict[str, Any]:
        """Make the model run ``adapters`` (one name per row) and return the forward's extra arguments.

        Rows that all use one adapter (or all the base) run on PEFT's plain path, with that adapter
        active or the adapter layers off: PEFT's per-row path walks every module on every forward, which
        in Python costs more than the tiny model's arithmetic. Mixed rows take the per-row path."""
        if self.model is None:
            return {}
        names = set(adapters)
        mode = next(iter(names)) if len(names) == 1 else None
        if mode != self._mode:
            if mode == BASE:
                self.model.base_model.disable_adapter_layers()
            else:
                if self._mode == BASE:
                    self.model.base_model.enable_adapter_layers()
                if mode is not None:
                    self.model.set_adapter(mode)
            self._mode = mode
        return {} if mode is not None else {"adapter_names": adapters}

    def install(self, author: str, release: int, sft: Path, dpo: Path | None) -> Installed:
        """Load the author's release as one adapter (SFT and DPO concatenated), replacing the author's
        previous one only once the new one is in place."""
        name = adapter_name(author, release)
        current = self.installed.get(author)
        if current is not None and current.adapter == name:
            return current
        self.model = add_concatenated(self.model if self.model is not None else self.lm.model, sft, dpo, name)
        self.model.eval()
        self.model.requires_grad_(False)
        self._reset_mode()
        installed = Installed(author, release, name, int(self.model.peft_config[name].r))
        self.installed[author] = installed
        if current is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model.delete_adapter(current.adapter)
        return installed

    def remove(self, author: str) -> None:
        current = self.installed.pop(author, None)
        if current is not None and self.model is not None:
            self._reset_mode()
            self.model.delete_adapter(current.adapter)

    def _reset_mode(self) -> None:
        """Adapter layers on (the per-row path needs them), the next route() decides again."""
        if self._mode == BASE:
            self.model.base_model.enable_adapter_layers()
        self._mode = None
