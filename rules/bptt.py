"""Surrogate-gradient backpropagation through time (BPTT).

The loss ``E = E_task + E_reg`` is differentiated by autograd through the whole unrolled
network; the spike non-linearity uses the network's surrogate derivative, and the reset
term keeps or drops its gradient according to ``network.detach_reset``.
"""

from __future__ import annotations

from .base import LearningRule, StepResult, rate_penalty


class BPTT(LearningRule):
    name = "bptt"
    summary = "surrogate-gradient backpropagation through time (autograd)"

    def step(self, batch) -> StepResult:
        net = self.net
        out = net(batch.x, batch.windows)
        task_loss = self.task.loss(out.logits, batch)
        reg = rate_penalty(out.z, net.neurons.dt_ms, self.cfg.rate_target_hz, self.cfg.rate_reg,
                           self.cfg.rate_reg_form)
        loss = task_loss + reg
        net.zero_grad(set_to_none=True)
        loss.backward()
        return StepResult(loss.item(), task_loss.item(), reg.item(), out.logits.detach(), out.z.detach())
