"""Where a sweep's runs execute: in this process, on a local process pool, or on a Ray cluster, where every
run of the sweep (arm x seed x budget) is one Ray task of one CPU. `run_tasks` picks one of the three for
the wrong-label sweep (experiment.py) and the personal regime (personal.py) alike.

    gazeneg eval --quick --ray local      # start a Ray instance on this machine
    gazeneg eval --ray auto               # join the cluster `ray start` made here
    gazeneg eval --ray 10.0.0.5:6379      # or name its head node

experiment.run_sweep hands the runs still to do, and its `execute`, to `run_on_ray` and appends each row to results.csv as it
comes back, so results, resume and the report are the same as for the local process pool. Each task calls
experiment.execute, which sets torch to one thread, so a run's numbers do not depend on where it ran.

Every node needs gazeneg installed (or `ray.init(runtime_env={"py_modules": [...]})` before the sweep)
and the dataset at the same path (a shared filesystem); with --data synthetic each node renders, once, the
same default data set. Ray is an optional extra: pip install gazeneg[cluster].
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError("running a sweep on Ray (--ray) needs the ray package: pip install gazeneg[cluster]") \
            from None
    return ray


def run_on_ray(address: str, tasks: Iterable, sweep, execute) -> Iterator[dict]:
    """Run execute(*task, sweep) (experiment.execute, personal.execute_unit) for each task (a tuple) on Ray; yield
    the results as runs finish (in completion order). address: "local" starts a Ray instance on this machine, "auto" or
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
    pending = [remote_execute.remote(*task, sweep) for task in tasks]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


def init_worker():
    """A pool worker: one torch thread (a run's numbers do not depend on where it ran), and Ctrl-C is the
    main process's to handle: it stops the pool at once and keeps the finished runs; a worker that also
    took the signal would print its own traceback."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def run_tasks(tasks: list, execute, cfg, *, workers: int = 0, ray: str = "", sequential: bool = False
              ) -> Iterator:
    """execute(*task, cfg) for every task (a tuple), yielded in completion order: on Ray when `ray` names
    an address, in this process when `sequential`, with one worker or at most one task, else on a pool of
    `workers` processes (0 = all cores). Ctrl-C stops the pool at once; what was yielded is kept."""
    workers = min(workers or os.cpu_count() or 1, max(len(tasks), 1))
    if ray:
        yield from run_on_ray(ray, tasks, cfg, execute)
        return
    if sequential or workers == 1:
        import torch

        torch.set_num_threads(1)
        for task in tasks:
            yield execute(*task, cfg)
        return
    import multiprocessing as mp

    # Workers stopped by Ctrl-C leave the pool's queue semaphores to the resource tracker, which then
    # warns about them at exit; the tracker takes its warning filters from this list when it starts.
    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet not in sys.warnoptions:
        sys.warnoptions.append(quiet)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=init_worker) as pool:
        # Workers are started with SIGINT ignored (an ignored signal stays ignored across exec), so a
        # Ctrl-C while they import cannot make each print a traceback; the main thread takes it back.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            futs = [pool.submit(execute, *task, cfg) for task in tasks]
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        try:
            for fut in as_completed(futs):
                yield fut.result()
        except KeyboardInterrupt:
            # Stop now: what was yielded is kept; running tasks are redone on resume. The futures are left to
            # the pool, which marks them broken once its workers are gone (cancelling them first races with
            # that and makes its manager thread print a traceback).
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=False)
            raise
