"""A plug-in found through an entry point only: the module does not register its task itself
(cognet registers the class the entry point names)."""

from __future__ import annotations

from cognet_toy_plugin import AndTask


class OrTask(AndTask):
    name = "toy-or"
    summary = "entry-point example: two bits in sequence, then a go cue; answer their OR"

    def _symbols(self, batch, g):
        active, target, mask, windows, info = super()._symbols(batch, g)
        ans = [a | b for a, b in zip(info["a"], info["b"])]
        target = target.new_tensor(ans)[None, :, None]
        return active, target, mask, windows, {**info, "or": ans}

    def chance(self):
        return {"bit_accuracy": 0.75, "sequence_accuracy": 0.75}
