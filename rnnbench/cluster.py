"""Sweeps on Dask distributed: an embedded LocalCluster (``--workers N``) or an existing
scheduler (``--scheduler ADDRESS``). Imported only when one of those is asked for.

Every task is submitted with an explicit key and asks for a worker resource: ``timing`` for
measurements of speed or memory, ``gradients`` for the rest, so a timing never shares its worker
with another task. The client writes each task's rows the moment it completes (``as_completed``),
so resume and "nothing finished is lost" hold as in-process; a task that raises is recorded.
"""
from __future__ import annotations

import contextlib
import traceback
from pathlib import Path

RESOURCES = ("timing", "gradients")


def require_dask():
    try:
        import distributed
    except ImportError:
        raise RuntimeError("dask is not installed: pip install rnnbench[dask]") from None
    return distributed


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None, timeout: float = 10.0):
    """A Client to an embedded LocalCluster of ``workers`` single-threaded processes, or to the
    scheduler at ``scheduler`` (an address, or a scheduler file's path); closed on exit."""
    distributed = require_dask()
    if (workers is None) == (scheduler is None):
        raise ValueError("give either workers or scheduler, not both")
    if workers is not None:
        if workers < 1:
            raise ValueError(f"--workers must be at least 1; got {workers}")
        # each worker offers one unit of both resources: a task takes its worker whole
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, resources={r: 1 for r in RESOURCES})
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    kwargs = {"scheduler_file": scheduler} if Path(scheduler).exists() else {"address": scheduler}
    try:
        client = distributed.Client(timeout=f"{timeout}s", **kwargs)
    except (OSError, TimeoutError) as e:
        raise ConnectionError(f"cannot reach the dask scheduler at {scheduler} within {timeout:g} s "
                              f"({type(e).__name__})") from None
    try:
        yield client
    finally:
        client.close()


def _run_on_worker(task, checkpoints):
    from distributed import get_worker

    return task.run(worker=get_worker().address, checkpoints=checkpoints)


def workers_info(client) -> list[dict]:
    """The cluster's workers for meta.json: address, host, threads, resources."""
    info = client.scheduler_info()["workers"]
    return [{"address": a, "host": w.get("host"), "threads": w.get("nthreads"), "resources": w.get("resources")}
            for a, w in info.items()]


def run_distributed(tasks, folder, client, progress=None) -> int:
    """Submit the tasks the folder lacks; write each one's rows as it completes. Returns failures."""
    from distributed import as_completed

    folder.meta["cluster"] = {"scheduler": client.scheduler.address, "dashboard": client.dashboard_link,
                              "workers": workers_info(client)}
    folder._write_meta()
    todo = [t for t in tasks if t.key not in folder.done]
    futures = {}
    for task in todo:
        # checkpoints in the results folder: resumable where workers share its file system
        futures[client.submit(_run_on_worker, task, str(folder.checkpoints), key=f"rnnbench-{task.kind}-{task.digest}",
                              pure=False,
                              resources={task.resource: 1})] = task
    failures = 0
    for i, future in enumerate(as_completed(futures)):
        task = futures[future]
        if progress is not None:
            progress(task, i)
        if future.status == "error":
            failures += 1
            error = future.exception()
            folder.fail(task.key, f"{type(error).__name__}: {error}\n"
                                  f"{''.join(traceback.format_tb(future.traceback(), limit=3))}")
        else:
            folder.append(future.result(), task.key)
        future.release()
    return failures
