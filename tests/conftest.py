"""Test-wide settings."""

import pytest
import torch

# pytest runs with -n 2 (one worker per core); torch's own thread pool on top of that
# oversubscribes the cores and OpenMP's spin-waiting can make runs 10x slower. Tests time nothing.
torch.set_num_threads(1)


def needs_compiler():
    """Skip (with the reason) where torch.compile cannot build CPU kernels: no C++ compiler.

    Where one exists, tests that claim compiled acting must see it run: they also turn the
    fallback's RuntimeWarning into an error (``filterwarnings``) and check ``acting_compiled``
    after acting, so a silent fall back to eager fails them instead of passing."""
    import shutil

    import pytest

    if not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("no C++ compiler: torch.compile cannot build CPU kernels here (.ci/run installs g++)")


@pytest.fixture
def accelerator_paths(monkeypatch):
    """Run the training forms' accelerator paths (fewest ops: one group, one block, the doubling
    scan, ``cumprod``) on the CPU, so they are checked where no GPU is."""
    from sb3_rtx.cells import factored_attention, galite, oscillating_values, scan

    for module in (scan, factored_attention, oscillating_values, galite):
        monkeypatch.setattr(module, "launch_bound", lambda device: True)


#: RtxPPO settings whose first update is one minibatch (no ratio clipped) of raw advantages with no
#: gradient clipping and a large entropy weight: tests of where each loss's gradient goes
ONE_UPDATE = dict(n_steps=16, batch_size=32, n_epochs=1, seed=0, normalize_advantage=False, max_grad_norm=1e9, ent_coef=0.5)


def first_update_gradients(env_id, edit=None, **kwargs):
    """An RtxPPO with :data:`ONE_UPDATE` and ``kwargs`` on two ``env_id`` envs (seed 0), edited by
    ``edit(model)`` if given, after its one update of one rollout: the model, and each parameter's
    gradient in that update (left on the parameters after it). The same seed gives the same rollout."""
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_rtx import RtxPPO

    model = RtxPPO("MlpRtxPolicy", make_vec_env(env_id, n_envs=2, seed=0), **ONE_UPDATE, **kwargs)
    if edit is not None:
        edit(model)
    model.learn(32)
    assert model._n_updates == 1
    return model, {name: p.grad for name, p in model.policy.named_parameters() if p.grad is not None}
