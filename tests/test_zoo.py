"""The RL zoo integration, through the real CLI in subprocesses: train, enjoy, record_video, tune.

Every command here is what a user types (``rl_zoo3 train --algo ppo_rtx ...``); they work because the
installed import hook registers ``ppo_rtx`` when rl_zoo3 is imported.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
import pytest

from doc_blocks import ran_ok, run_env, run_shell, shell_block
from pg_server import postgres_server, server_binaries
from sb3_rtx import RtxPPO
from sb3_rtx.zoo.sampler import convert_ppo_rtx_params

BIN = Path(sys.executable).parent
ENV_ID = "CartPoleNoVel-v1"
# a small, fixed tuning set-up: CueRecall is the cheapest env; the seed fixes the sampled trials
TUNE = ["--env", "sb3_rtx/CueRecall-v0", "-n", "512", "--n-evaluations", "1", "--eval-episodes", "2",
        "--hyperparams", "n_envs:2", "--no-optim-plots", "--seed", "3"]  # fmt: skip


def completed(trial) -> bool:
    """A trial that ran to its end with a real score. (``is_finished`` is also true for PRUNED and FAIL,
    and rl_zoo3 turns an error inside ``learn`` into a pruned trial; rl_zoo3's median pruner prunes nothing
    before --n-startup-trials, 10 by default, so every trial of these small studies must complete.)"""
    return trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)


def run(command: list[str], cwd: Path, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    """Run a CLI command with one torch thread (pytest already runs one worker per core)."""
    return subprocess.run(
        command,
        cwd=cwd,
        env={**run_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    return ran_ok(result, f"exit {result.returncode}: {' '.join(map(str, result.args))}")


def zoo(*args: str) -> list[str]:
    return [str(BIN / "rl_zoo3"), *args]


def python_m(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def load_study(storage: str, name: str) -> optuna.Study:
    if storage.endswith(".log"):
        backend = optuna.storages.journal.JournalFileBackend(storage)
        return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))
    return optuna.load_study(study_name=name, storage=storage)


# ---------------------------------------------------------------------------------- train / enjoy
def test_the_docs_train_enjoy_and_record_commands(tmp_path):
    """zoo.md's block, as a user pastes it: plain zoo train, enjoy and record_video on a shipped entry,
    an sb3_rtx task by its gymnasium id, and the zip loaded by a plain script."""
    code = shell_block("zoo.md", "rl_zoo3.record_video")
    output = ran_ok(run_shell(code, tmp_path), code)
    assert "Mean reward" in output  # enjoy ran the trained policy
    run_dir = tmp_path / "logs" / "ppo_rtx" / f"{ENV_ID}_1"
    model_path = run_dir / f"{ENV_ID}.zip"
    assert model_path.exists() and (tmp_path / "logs" / "ppo_rtx" / "sb3_rtx-CueRecall-v0_1").is_dir()
    # the default yml was found without --conf-file
    assert "cell='agalite'" in (run_dir / ENV_ID / "config.yml").read_text()
    assert list((run_dir / "videos").glob("*.mp4"))

    # a plain script, no zoo: the zip is an ordinary RtxPPO file (the zoo convention derived d_head),
    # and predict carries the state
    model = RtxPPO.load(model_path, device="cpu")
    assert model.policy.cell_name == "agalite" and model.policy.cell_kwargs["d_head"] == 16
    obs = model.observation_space.sample()[None]
    actions, state = model.predict(obs, episode_start=[True], deterministic=True)
    actions, state = model.predict(obs, state=state, episode_start=[False], deterministic=True)
    assert actions.shape == (1,) and state[0].shape[0] == 1


def test_sb3_rtx_command_registers_without_the_hook(tmp_path):
    no_hook = dict(SB3_RTX_NO_ZOO_HOOK="1")
    # without the hook, rl_zoo3 alone does not know ppo_rtx (so the hook is what makes it work) ...
    plain = run(zoo("train", "--algo", "ppo_rtx", "--env", ENV_ID, "-n", "64"), tmp_path, **no_hook)
    assert plain.returncode != 0 and "invalid choice: 'ppo_rtx'" in plain.stderr
    # ... while the sb3-rtx command registers explicitly; --algo defaults to ppo_rtx
    ok(run([str(BIN / "sb3-rtx"), "train", "--env", ENV_ID, "-n", "256", "-f", "logs"], tmp_path, **no_hook))
    assert (tmp_path / "logs" / "ppo_rtx" / f"{ENV_ID}_1" / f"{ENV_ID}.zip").exists()
    ok(run(python_m("sb3_rtx.zoo", "enjoy", "--env", ENV_ID, "-f", "logs", "-n", "50", "--no-render"), tmp_path, **no_hook))


def test_an_entrys_env_kwargs_reach_the_eval_env(tmp_path):
    # a longer corridor changes T-Maze's observation size: evaluating on a default T-Maze would fail
    (tmp_path / "tmaze.yml").write_text(
        "sb3_rtx/TMaze-v0:\n  n_envs: 2\n  n_timesteps: 512\n  policy: 'MlpRtxPolicy'\n  n_steps: 64\n"
        "  sequence_length: 32\n  batch_size: 64\n  env_kwargs: {corridor_len: 30}\n"
        "  policy_kwargs: \"dict(cell='agalite', cell_kwargs=dict(n_layers=1, d_model=16, n_heads=2))\"\n"
    )
    ok(run(zoo("train", "--algo", "ppo_rtx", "--env", "sb3_rtx/TMaze-v0", "--conf-file", "tmaze.yml", "-f", "logs",
               "--eval-freq", "128", "--eval-episodes", "1"), tmp_path))  # fmt: skip


# ---------------------------------------------------------------------------------- bad yml
BAD_ENTRIES = {
    "policy_kwargs.cell": "cell='transformer'",
    "policy_kwargs.cell_kwargs.eta": "cell='agalite', cell_kwargs=dict(eta=2.5)",
    "policy_kwargs.cell_kwargs.d_model": "cell='galite', cell_kwargs=dict(d_model=100, n_heads=3)",
}


@pytest.mark.parametrize("key", list(BAD_ENTRIES))
def test_a_bad_yml_entry_fails_before_any_env_is_built_and_names_the_key(tmp_path, key):
    (tmp_path / "bad.yml").write_text(
        f"{ENV_ID}:\n  n_envs: 2\n  n_timesteps: 1000\n  policy: 'MlpRtxPolicy'\n"
        f'  policy_kwargs: "dict({BAD_ENTRIES[key]})"\n'
    )
    result = run(zoo("train", "--algo", "ppo_rtx", "--env", ENV_ID, "--conf-file", "bad.yml", "-f", "logs"), tmp_path)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ValueError: invalid ppo_rtx hyperparameters in bad.yml [CartPoleNoVel-v1]")
    assert key in message
    assert not list(tmp_path.rglob("*.monitor.csv")), "an environment was built before the check"


# ---------------------------------------------------------------------------------- tuning
def test_optimize_with_python_m_then_train_from_a_trial(tmp_path):
    storage = str(tmp_path / "study.log")  # a journal file: rl_zoo3 opens .log storages as JournalStorage
    output = ok(
        run(
            python_m("rl_zoo3.train", "--algo", "ppo_rtx", *TUNE, "-optimize", "--n-trials", "2", "--n-jobs", "2",
                     "--n-evaluations", "2", "--pruner", "median", "--storage", storage, "--study-name", "local",
                     "-f", "logs", "--hyperparams", "n_envs:2", "tune_cells:['AGaLiTe','lstm']"),
            tmp_path,
        )
    )  # fmt: skip
    assert "Number of finished trials:  2" in output
    study = load_study(storage, "local")
    assert len(study.trials) == 2 and all(completed(t) for t in study.trials)
    # tune_cells reached the sampler: the cell was a choice between exactly those two
    assert all(t.distributions["cell"].choices == ("agalite", "lstm") for t in study.trials)
    # the pruner is fed: every trial reported its intermediate evaluations
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)
    cell_sizes = {"agalite": {"n_layers", "d_model", "n_heads", "eta", "r"}, "lstm": {"n_layers", "hidden_size"}}
    for trial in study.trials:  # PPO, rollout and the chosen cell's sizes were all tuned
        assert {"sequence_length_pow", "learning_rate"} | cell_sizes[trial.params["cell"]] <= set(trial.params)
    # --trial-id rebuilds that trial's hyperparameters through the converter and trains with them
    # (trial 1: rl_zoo3 2.9 skips --trial-id 0, it tests the id for truth)
    ok(
        run(
            zoo("train", "--algo", "ppo_rtx", "--env", "sb3_rtx/CueRecall-v0", "-n", "256", "--storage", storage,
                "--study-name", "local", "--trial-id", "1", "-f", "logs"),
            tmp_path,
        )
    )  # fmt: skip
    runs = sorted((tmp_path / "logs" / "ppo_rtx").glob("sb3_rtx-CueRecall-v0_*"), key=lambda p: int(p.name.split("_")[-1]))
    model = RtxPPO.load(runs[-1] / "sb3_rtx-CueRecall-v0.zip", device="cpu")  # -optimize made the first folder
    params = study.trials[1].params
    assert model.policy.cell_name == params["cell"]
    expected = convert_ppo_rtx_params(params)
    # the saved keywords are the tuned ones plus the choices the cell resolved (GaLiTe/AGaLiTe only)
    tuned = expected["policy_kwargs"]["cell_kwargs"]
    # written out here, not read from sb3_rtx.cells.variants, so that a changed default fails this test
    both = dict(
        variant="default",
        normaliser="sum",
        feature_map="softplus",
        read_norm="rms",
        read_merge="residual",
        memory_input="observation",
        value_conv=4,
    )
    resolved = {
        "agalite": dict(both, gate_init="long_first", frequencies="dc", read_scale="2r", memory_input="scaled"),
        "galite": dict(both, gate_init="long"),
    }.get(params["cell"], {})
    assert model.policy.cell_kwargs == {**tuned, **resolved} and model.n_steps == expected["n_steps"]


@pytest.fixture(params=["journal", "postgresql"])
def shared_storage(request, tmp_path):
    """One study storage for several workers: Optuna's journal file, or a real PostgreSQL server."""
    if request.param == "journal":
        yield str(tmp_path / "shared.log")
        return
    if os.environ.get("SB3_RTX_TEST_POSTGRES_URL"):
        yield os.environ["SB3_RTX_TEST_POSTGRES_URL"]
        return
    pytest.importorskip("psycopg2", reason="the [postgres] extra (psycopg2-binary) is not installed")
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server here (initdb/pg_ctl not found; Debian: apt-get install postgresql)")
    with postgres_server(bin_dir) as url:
        yield url


def test_two_workers_share_one_study(tmp_path, shared_storage):
    # create the study once, then start the workers: two workers creating Optuna's tables in a new
    # PostgreSQL database at the same moment race (CREATE TYPE ... already exists)
    storage_class = ["--storage-class", "JournalFileBackend"] if shared_storage.endswith(".log") else []
    ok(run([str(BIN / "optuna"), "create-study", "--storage", shared_storage, *storage_class, "--study-name", "shared",
            "--direction", "maximize"], tmp_path))  # fmt: skip
    command = zoo("train", "--algo", "ppo_rtx", *TUNE, "-optimize", "--n-trials", "2", "--storage", shared_storage,
                  "--study-name", "shared", "-f", "logs")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(2)]  # fmt: skip
    outputs = [worker.communicate(timeout=900)[0] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    trials = load_study(shared_storage, "shared").trials
    assert len(trials) == 4 and sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(completed(t) for t in trials)


def test_a_pruner_that_prunes_ends_trials_pruned_before_their_budget(tmp_path):
    """--pruner halving (successive halving, reduction factor 4): a trial is stopped at an evaluation
    where it is not the best so far; it ends PRUNED, with fewer evaluations than its budget."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    # CartPole: episode returns differ between policies (CueRecall's 0/1 scores of barely trained
    # policies tie, and ties are never pruned)
    args = ["--env", ENV_ID, "-n", "2048", "--n-evaluations", "4", "--eval-episodes", "4",
            "--hyperparams", "n_envs:2", "--no-optim-plots", "--seed", "3"]  # fmt: skip
    ok(run(zoo("train", "--algo", "ppo_rtx", *args, "-optimize", "--n-trials", "5", "--pruner", "halving",
               "--storage", storage, "--study-name", "pruned", "-f", "logs"), tmp_path))  # fmt: skip
    trials = load_study(storage, "pruned").trials
    assert len(trials) == 5 and all(completed(t) or t.state == TrialState.PRUNED for t in trials)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.state, t.intermediate_values) for t in trials]
    # (a trial can also be pruned at its last evaluation, when its training is already done)
    assert all(1 <= len(t.intermediate_values) <= 4 for t in pruned)
    stopped_early = [t for t in pruned if len(t.intermediate_values) < 4]  # fewer evaluations than a whole trial
    assert stopped_early, [(t.state, t.intermediate_values) for t in trials]
    assert all(len(t.intermediate_values) == 4 for t in trials if t.state == TrialState.COMPLETE)


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_a_killed_worker_loses_no_completed_trial(tmp_path, backend):
    storage = f"sqlite:///{tmp_path / 'study.db'}" if backend == "sqlite" else str(tmp_path / "study.log")
    command = zoo("train", "--algo", "ppo_rtx", *TUNE, "-optimize", "--n-trials", "100", "--storage", storage,
                  "--study-name", "killed", "-f", "logs")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        finished = _wait_for_finished_trials(storage, "killed", 2, worker, timeout=600)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    study = load_study(storage, "killed")
    survivors = {t.number: (t.state, t.value, t.params) for t in study.trials if t.state.is_finished()}
    assert len(survivors) >= len(finished) >= 2
    for number, (state, value, params) in finished.items():
        assert survivors[number] == (state, value, params)
    # another worker carries on with the same study
    ok(run(zoo("train", "--algo", "ppo_rtx", *TUNE, "-optimize", "--n-trials", "1", "--storage", storage,
               "--study-name", "killed", "-f", "logs"), tmp_path))  # fmt: skip
    after = load_study(storage, "killed").trials
    assert sum(t.state.is_finished() for t in after) == len(survivors) + 1


def _wait_for_finished_trials(storage: str, name: str, count: int, worker: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker exited before it was killed"
        try:
            trials = load_study(storage, name).trials
        except KeyError:  # the study does not exist yet
            trials = []
        finished = {t.number: (t.state, t.value, t.params) for t in trials if t.state.is_finished()}
        if len(finished) >= count:
            return finished
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} trials finished in {timeout} s")
