"""Sweeps on a Ray cluster: every run of the sweep (arm x seed x budget) is one Ray task of one CPU.

    python scripts/eval_wrong_labels.py --quick --ray local      # start a Ray instance on this machine
    python scripts/eval_wrong_labels.py --ray auto               # join the cluster `ray start` made here
    python scripts/eval_wrong_labels.py --ray 10.0.0.5:6379      # or name its head node

experiment.run_sweep hands the runs still to do, and its `execute`, to `run_on_ray` and appends each row to results.csv as it
comes back, so results, resume and the report are the same as for the local process pool. Each task calls
experiment.execute, which sets torch to one thread, so a run's numbers do not depend on where it ran.

Every node needs gazeneg installed (or `ray.init(runtime_env={"py_modules": [...]})` before the sweep)
and the dataset at the same path (a shared filesystem); with --data synthetic each node renders, once, the
same default data set. Ray is an optional extra: pip install gazeneg[cluster].
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError("running a sweep on Ray (--ray) needs the ray package: pip install gazeneg[cluster]") \
            from None
    return ray


def run_on_ray(address: str, tasks: Iterable, sweep, execute) -> Iterator[dict]:
    """Run execute(arm, seed, budget, sweep) (experiment.execute) for each task on Ray; yield result rows as runs
    finish (in completion order). address: "local" starts a Ray instance on this machine, "auto" or
    host:port joins a running cluster; if this process already called ray.init, that instance is used
    and left running. Stopping early (Ctrl-C, an error) cancels the runs not yet finished."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(include_dashboard=False)
        else:
            ray.init(address=address)
    remote_execute = ray.remote(num_cpus=1)(execute)
    pending = [remote_execute.remote(arm, seed, budget, sweep) for arm, seed, budget in tasks]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()
