"""Sweeps on real Ray clusters over loopback, through the CLI users run (``--address``).

How the clusters are run, and why:

* ``ray.cluster_utils.Cluster`` (a head plus extra raylets) runs in a small helper
  *subprocess*, not in the pytest process: starting Ray nodes calls ``os.setpgrp()`` on the calling
  process and changes process-wide environment and auth state, which the rest of the test session
  should not inherit. The helper is started in a new session, so every Ray process it starts is in
  its process group; teardown asks it to ``cluster.shutdown()`` and then SIGKILLs whatever is left
  in that group (by its id). ``ray stop`` is never used: it ends every Ray on the machine, other
  people's included.
* Everything is on 127.0.0.1 (``node_ip_address``), with a private ``HOME`` (holding
  ``ray_bootstrap_config.yaml`` and the auth token) and a private ``RAY_TMPDIR``, so neither this
  cluster nor a local ``ray.init()`` here can find another Ray through ``/tmp/ray``.
* Token auth (on by default in Ray 2.60) stays on, as users have it: the head runs with
  ``RAY_AUTH_MODE=token`` and a token in ``$HOME/.ray/auth_token``; the driver (the CLI) gets the
  same ``HOME`` and ``RAY_AUTH_MODE=token``. A driver with an explicit address never turns token
  mode on by itself.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.cli import finish, kill_group, show, start, wait_for, wssweep
from wssweep.checkpoint import FINAL_FILE, STAGE_FILE
from wssweep.record import TRIALS_DIR
from wssweep.results import read_results
from wssweep.trial import HOLD_AFTER_STAGE_ENV, read_starts

REPO = Path(__file__).resolve().parents[1]

# Runs in the helper process: start the nodes, print the address, wait for stdin to close.
# Runs in the helper process: start the nodes, print the address and node ids, then obey one
# JSON command per stdin line ({"op": "remove", "index": i} or {"op": "add", "node": {...}}),
# answering each with the node ids now alive; stdin closing shuts the cluster down.
CLUSTER_SCRIPT = """
import json, sys
from ray.cluster_utils import Cluster
head, *workers = json.loads(sys.argv[1])
loopback = {"node_ip_address": "127.0.0.1", "include_dashboard": False}
cluster = Cluster(initialize_head=True, head_node_args={**loopback, **head})
try:
    nodes = [cluster.head_node] + [cluster.add_node(**loopback, **node) for node in workers]
    cluster.wait_for_nodes()
    ips = [node.node_ip_address for node in cluster.list_all_nodes()]
    print(json.dumps({"address": cluster.address, "ips": ips,
                      "node_ids": [node.node_id for node in nodes]}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "remove":
            cluster.remove_node(nodes[command["index"]], allow_graceful=False)
        else:
            nodes.append(cluster.add_node(**loopback, **command["node"]))
            cluster.wait_for_nodes()
        alive = [node.node_id for node in cluster.list_all_nodes()]
        print(json.dumps({"node_ids": alive}), flush=True)
finally:
    cluster.shutdown()
"""

SMALL_MLP = """
experiment:
  data: {name: digits, train_size: 200, test_size: 100}
  model: {name: mlp, width: 16}
  protocol: {kind: online, chunks: 2, stop: {max_epochs: 3}}
  optim: {name: adam, batch_size: 32}
  lr: 0.01
"""

# ~4 s of mostly sleeping per trial (tests.plugins:slow_net), whatever the CPU load.
SLOW_EXPERIMENT = """
experiment:
  data: {name: digits, train_size: 200, test_size: 100}
  model: {name: custom, factory: "tests.plugins:slow_net", kwargs: {delay: 0.05}}
  protocol: {kind: online, chunks: 2, stop: {max_epochs: 3}}
  optim: {name: sgd, batch_size: 50}
  lr: 0.1
"""

GRID_OF_4 = """
method: grid
metric: {name: gap, goal: minimize}
parameters:
  warm.intervention: {values: [none, shrink_perturb]}
seeds: [0, 1]
"""


# For tests of placement, not of W&B (test_sweep_e2e checks its files): no W&B process per
# trial, whose CPU the 2-core suite needs (`wandb.mode: auto` follows W&B's WANDB_MODE).
NO_WANDB = {"WANDB_MODE": "disabled"}


def rows(run_dir: Path) -> list[dict]:
    return read_results(run_dir / "results.csv")


def most_at_once(table: list[dict]) -> int:
    """The largest number of trials whose [started_at, finished_at] intervals share an instant."""
    spans = [(float(r["started_at"]), float(r["finished_at"])) for r in table]
    return max(sum(start <= t <= end for start, end in spans) for t, _ in spans)


@pytest.fixture(scope="module")
def cluster_env(ray_env):
    """ray_env with a private HOME holding an auth token, a private RAY_TMPDIR and token auth on."""
    # A short path: Ray's unix sockets live under RAY_TMPDIR (107-byte limit).
    root = Path(tempfile.mkdtemp(prefix="wsc-", dir="/tmp"))
    home = root / "home"
    (home / ".ray").mkdir(parents=True)
    (home / "ray_bootstrap_config.yaml").write_text("provider: {type: local}\n")
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    env = {k: v for k, v in ray_env.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN",
                                                         "RAY_AUTH_TOKEN_PATH")}
    env.update({"HOME": str(home), "RAY_TMPDIR": str(root / "t"), "RAY_AUTH_MODE": "token",
                # Trials wait after a stage checkpoint while this file exists (none does unless
                # a test makes it): the raylets pass it on to every worker.
                HOLD_AFTER_STAGE_ENV: str(root / "hold-after-stage")})
    yield env
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def ray_cluster(env: dict, nodes: list[dict], log: Path):
    """A Ray cluster of ``nodes`` (head first) on 127.0.0.1; yields {"address", "ips",
    "node_ids", "command"}: ``command({"op": "remove", "index": i})`` kills node i (its raylet
    and workers, as a lost machine), ``command({"op": "add", "node": {...}})`` adds one; each
    returns the ids of the nodes alive after it."""
    with open(log, "w") as err:
        helper = subprocess.Popen([sys.executable, "-c", CLUSTER_SCRIPT, json.dumps(nodes)],
                                  cwd=REPO, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=err, text=True,
                                  start_new_session=True)
    try:
        ready, _, _ = select.select([helper.stdout], [], [], 120)
        line = helper.stdout.readline() if ready else ""
        if not line:
            pytest.fail(f"the Ray cluster did not start:\n{log.read_text()[-3000:]}")

        def command(op: dict) -> dict:
            helper.stdin.write(json.dumps(op) + "\n")
            helper.stdin.flush()
            ready, _, _ = select.select([helper.stdout], [], [], 120)
            reply = helper.stdout.readline() if ready else ""
            if not reply:
                pytest.fail(f"the cluster did not do {op}:\n{log.read_text()[-3000:]}")
            return json.loads(reply)

        yield {**json.loads(line), "command": command}
    finally:
        with contextlib.suppress(BrokenPipeError):
            helper.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            helper.wait(timeout=60)
        kill_group(helper.pid)  # whatever shutdown left behind, and the helper if it hung
        helper.wait()
        helper.stdout.close()


@pytest.fixture
def two_nodes(cluster_env, tmp_path_factory):
    """A head with 1 CPU and a second node with 1 CPU."""
    log = tmp_path_factory.mktemp("two-nodes") / "cluster.log"
    with ray_cluster(cluster_env, [{"num_cpus": 1}, {"num_cpus": 1}], log) as cluster:
        yield cluster


@pytest.fixture(scope="class")
def gpu_node(cluster_env, tmp_path_factory):
    """One node with 4 CPUs and one logical GPU (no real one: trials still run on the CPU)."""
    log = tmp_path_factory.mktemp("gpu-node") / "cluster.log"
    with ray_cluster(cluster_env, [{"num_cpus": 4, "num_gpus": 1}], log) as cluster:
        yield cluster


def test_sweep_on_a_two_node_cluster_uses_both_nodes(two_nodes, cluster_env, tmp_path):
    # the cluster listens on loopback only, and both nodes run on 127.0.0.1
    assert two_nodes["address"].startswith("127.0.0.1:")
    assert two_nodes["ips"] == ["127.0.0.1", "127.0.0.1"]
    spec = tmp_path / "two.yaml"
    spec.write_text(SMALL_MLP + GRID_OF_4 + "resources: {cpus_per_trial: 1}\n")
    out = wssweep(cluster_env, "run", str(spec), "--name", "two", "--storage",
                  str(tmp_path / "runs"), "--address", two_nodes["address"])
    # the sweep finished through the cluster (the driver connected with the token)
    assert out.returncode == 0, show(out)
    table = rows(tmp_path / "runs" / "two")
    # 4 trials, each once, all completed
    assert len({r["trial_id"] for r in table}) == len(table) == 4
    assert {r["status"] for r in table} == {"completed"}
    # trials ran on both nodes
    assert len({r["node_id"] for r in table}) == 2, [r["node_id"] for r in table]


class TestLogicalGpu:
    """Both cases share one cluster (``gpu_node`` is class-scoped): one start instead of two."""

    @pytest.mark.parametrize("per_gpu", [4])  # 2 packs the same way: one case keeps CI short
    def test_trials_per_gpu_packs_trials(self, per_gpu, gpu_node, cluster_env, tmp_path):
        spec = tmp_path / "gpu.yaml"
        spec.write_text(SLOW_EXPERIMENT + GRID_OF_4
                        # one (setting, seed) per Tune trial: what packs is Tune trials
                        + f"resources: {{cpus_per_trial: 1, trials_per_gpu: {per_gpu}, "
                        "fuse: false}\n")
        out = wssweep(cluster_env | NO_WANDB, "run", str(spec), "--name", "gpu", "--storage",
                      str(tmp_path / "runs"), "--address", gpu_node["address"])
        # the sweep finished on the cluster
        assert out.returncode == 0, show(out)
        # the cluster has a GPU, so the request was kept (no "drop" note)
        assert "has no GPU" not in out.stderr
        table = rows(tmp_path / "runs" / "gpu")
        # 4 trials, all completed
        assert len(table) == 4 and {r["status"] for r in table} == {"completed"}
        # every trial got 1/N of the GPU
        assert [float(r["gpu_share"]) for r in table] == [pytest.approx(1 / per_gpu)] * 4
        # N trials shared the one GPU at the same time, and never more (4 CPUs would allow 4)
        spans = [(r["started_at"], r["finished_at"]) for r in table]
        assert most_at_once(table) == per_gpu, spans


def test_trials_per_gpu_without_a_gpu_drops_the_request(cluster_env, tmp_path):
    spec = tmp_path / "nogpu.yaml"
    spec.write_text(SMALL_MLP + """
method: grid
metric: {name: gap, goal: minimize}
parameters:
  warm.intervention: {values: [none]}
seeds: [0, 1]
resources: {cpus_per_trial: 1, trials_per_gpu: 2}
""")
    # A plain local Ray, as users start it: default auth, and its own RAY_TMPDIR so it cannot find
    # (and join) a cluster started by this module through ray_current_cluster.
    env = {k: v for k, v in cluster_env.items() if k != "RAY_AUTH_MODE"} | NO_WANDB
    env["RAY_TMPDIR"] = str(Path(cluster_env["RAY_TMPDIR"]).parent / "local")
    out = wssweep(env, "run", str(spec), "--name", "nogpu", "--storage", str(tmp_path / "runs"),
                  timeout=180)
    # the sweep finished (the trials did not wait forever for a GPU)
    assert out.returncode == 0, show(out)
    # the driver said it dropped the GPU request
    assert "trials_per_gpu is set but the Ray cluster has no GPU" in out.stderr
    table = rows(tmp_path / "runs" / "nogpu")
    # both trials completed, with no GPU share
    assert len(table) == 2 and {r["status"] for r in table} == {"completed"}
    assert {float(r["gpu_share"]) for r in table} == {0.0}


def test_a_lost_node_costs_no_trial(two_nodes, cluster_env, tmp_path):
    spec = tmp_path / "lost.yaml"
    spec.write_text(SLOW_EXPERIMENT.replace("chunks: 2", "chunks: 3") + GRID_OF_4
                    + "resources: {cpus_per_trial: 1}\n")
    run_dir = tmp_path / "runs" / "lost"
    worker = two_nodes["node_ids"][1]
    # trials stop after each stage checkpoint until the node is lost: one is lost inside a trial
    hold = Path(cluster_env[HOLD_AFTER_STAGE_ENV])
    hold.touch()
    driver = start(cluster_env, "run", str(spec), "--name", "lost", "--storage",
                   str(tmp_path / "runs"), "--address", two_nodes["address"])
    try:
        def running_on_worker() -> list[str]:
            """Units started on the worker node that have finished a stage and not the trial."""
            units = {s["unit"] for s in read_starts(run_dir) if s.get("node_id") == worker}
            return [u for u in units if (run_dir / TRIALS_DIR / u / STAGE_FILE).exists()
                    and not (run_dir / TRIALS_DIR / u / FINAL_FILE).exists()]

        lost = wait_for(running_on_worker, "a trial inside a later stage on the worker node",
                        driver)
        # the worker node dies with a trial on it, and a fresh node joins
        alive = two_nodes["command"]({"op": "remove", "index": 1})["node_ids"]
        assert worker not in alive
        two_nodes["command"]({"op": "add", "node": {"num_cpus": 1}})
        hold.unlink()
        out = finish(driver, timeout=240)
    finally:
        hold.unlink(missing_ok=True)
        kill_group(driver.pid)
    # the sweep finished, every trial once and completed
    assert out.returncode == 0, show(out)
    table = rows(run_dir)
    assert len(table) == 4 and {r["status"] for r in table} == {"completed"}, table
    by_unit = {f"{r['setting_key']}-seed{r['seed']}": r for r in table}
    # each Tune trial was a group: the seeds of a setting
    assert {r["group_size"] for r in table} == {"2"}
    # the lost trial was retried (FailureConfig, default max_failures 3) and resumed mid-trial
    assert all(int(by_unit[u]["restarts"]) >= 1 for u in lost), [by_unit[u] for u in lost]
    assert all(int(by_unit[u]["resumed_stage"]) >= 1 for u in lost)
    # and it finished on a node that was still alive
    assert all(by_unit[u]["node_id"] != worker for u in lost)
