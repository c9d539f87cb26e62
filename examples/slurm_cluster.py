"""Start a Dask cluster on SLURM for rnnbench sweeps (needs `pip install dask-jobqueue`).

    python examples/slurm_cluster.py            # submits the worker jobs, writes scheduler.json
    rnnbench gradients --scheduler scheduler.json -o results/big-gradients

Each worker is one SLURM job with one process and one thread, pinned to its cores by SLURM, and
offers both of rnnbench's resources: a timing task then has its worker (and node share) alone.
Adapt queue, account, walltime and the number of jobs to your site.
"""
import time

from dask.distributed import Client
from dask_jobqueue import SLURMCluster

cluster = SLURMCluster(
    queue="normal",
    account="my-account",
    cores=1,
    processes=1,
    memory="8GB",
    walltime="02:00:00",
    job_extra_directives=["--exclusive"],  # timings: nothing else on the node
    worker_extra_args=["--resources", "timing=1 gradients=1", "--nthreads", "1"],
    scheduler_options={"dashboard_address": ":8787"},
)
cluster.scale(jobs=8)
client = Client(cluster)
client.write_scheduler_file("scheduler.json")
print("scheduler:", cluster.scheduler_address, "dashboard:", client.dashboard_link)
print("scheduler.json written; Ctrl-C ends the cluster")
try:
    while True:
        time.sleep(60)
except KeyboardInterrupt:
    cluster.close()
