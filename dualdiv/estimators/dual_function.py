"""The dual coordinate F = Σ_k f_k of a fitted path as a differentiable torch module (for the walks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dualdiv.estimators.path import load_critic, pixel_rank, substep_bounds, summed_substep_values


class DualFunction(torch.nn.Module):
    """F(x) = Σ_k Σ_{j ∈ B_k} f_k(x; sub-step j) and its gradient, as a torch module.

    plan: the path plan; states: the step critics' states in step order 1..K.
    forward: x (B, H, W) → (B,) in x's dtype. value_and_grad: (F(x), ∇F(x)) without keeping
    the whole graph. Cost: one critic pass per pixel sub-step, on a window around the pixel
    for the conv critic (:meth:`dualdiv.estimators.critics.ConvCritic.substep_values`).
    """

    def __init__(self, plan: dict, states: Sequence[dict], device: str = "auto"):
        super().__init__()
        self.shape = tuple(plan["shape"])
        self.critics = torch.nn.ModuleList(load_critic(state, device) for state in states)
        for critic in self.critics:
            critic.requires_grad_(False)
        self.register_buffer("rank", pixel_rank(plan).to(self.device))
        self.bounds = [substep_bounds(plan, k) for k in range(1, len(states) + 1)]

    @property
    def device(self) -> torch.device:
        return next(self.critics[0].parameters()).device

    def _summed(self, x: torch.Tensor, gradient: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        flat = x.reshape(len(x), -1).to(self.device)  # (B, P)
        value, grad = torch.zeros(len(x), dtype=torch.float64, device=self.device), None
        for critic, bounds in zip(self.critics, self.bounds, strict=True):
            step_value, step_grad = summed_substep_values(critic, flat, self.rank, bounds, self.shape, gradient)
            value = value + step_value
            grad = step_grad if grad is None else grad + step_grad
        return value.to(x.dtype), None if grad is None else grad.reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._summed(x, gradient=False)[0]

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(F(x) (B,), ∇F(x) (B, H, W)) for images x (B, H, W)."""
        return self._summed(x, gradient=True)
