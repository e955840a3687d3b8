"""Data throughput: collection trajectories/s, loader samples/s (host and device), disk speed.

    python -m benchmarks.data_throughput --out=benchmarks/results/data_throughput.json

Collection: ``collect`` of ``--collect_trajectories`` accepted trajectories into a fresh
directory, timed end to end (worker start, env creation, rollouts, shard writes), after
one warm-up collection; attempted steps/s counts every attempt's ``horizon`` steps.

Loader: ``BatchSampler.batch(k)`` on a synthetic dataset of ``--loader_gb`` GB in the real
format. "cold": before each repeat every ``.npy`` is dropped from the page cache
(``posix_fadvise(DONTNEED)``, no root needed) and the dataset is opened afresh, so the
first ``--cold_batches`` batches read from disk; ``read_bytes_per_sample`` says how much
the kernel read per sample. "warm": the files are in the page cache and mapped (one
sequential pass over all frames first), as in a training run whose dataset fits in RAM.
"in_memory": ``Dataset.load_into_memory`` of the first ``--in_memory_gb`` GB. With T > 1
threads a thread pool builds batches ``k, k + 1, ...`` (numpy copies release the GIL, so
page faults can overlap). "device": a ``Prefetcher`` over all local devices, consumed by
a loop that only blocks on each batch. Windowed samplers count a window of H frames as
one sample and also report frames/s. The goal is >= 50K samples/s host side.
"""

from __future__ import annotations

import collections
import concurrent.futures
import gc
import glob
import math
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks import common
from experiments.configs import collect as collect_config
from parrot_jax.data import collect, dataset as dataset_lib, sampling, synthetic

_OUT = flags.DEFINE_string("out", None, "JSON file to write (also printed).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats of every figure (median).")
_WORKERS = flags.DEFINE_list("workers", None, "Collection worker counts (default 1..cores).")
_TRAJECTORIES = flags.DEFINE_integer("collect_trajectories", 48,
                                     "Accepted trajectories per timed collection.")
_LOADER_GB = flags.DEFINE_float("loader_gb", 2.0, "Size of the synthetic loader dataset (GB).")
_DATASET_DIR = flags.DEFINE_string(
    "dataset_dir", None, "Loader dataset: reused if it exists, else written there and kept "
    "(default: a temporary directory, deleted at the end).")
_PER_SHARD = flags.DEFINE_integer("episodes_per_shard", 200,
                                  "Episodes per shard of a new loader dataset.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["256", "1024"], "Loader batch sizes.")
_WINDOW = flags.DEFINE_integer("window", 10, "Window length of the windowed figures (0: none).")
_THREADS = flags.DEFINE_list("threads", ["1", "2", "8"], "Loader thread counts.")
_BATCHES = flags.DEFINE_integer("batches", 100, "Batches per warm repeat.")
_COLD_BATCHES = flags.DEFINE_integer("cold_batches", 20, "Batches per cold repeat.")
_IN_MEMORY_GB = flags.DEFINE_float("in_memory_gb", 0.5, "Size of the in-memory reference (GB).")
_DEVICE_BATCHES = flags.DEFINE_integer("device_batches", 100, "Batches per device repeat.")
_PREFETCH_THREADS = flags.DEFINE_list("prefetch_threads", ["1", "2"], "Prefetcher threads.")
_DISK_READS = flags.DEFINE_integer("disk_reads", 4000, "Random 8 KiB reads per disk repeat.")

GOAL = 50_000  # host-side samples/s the loader must deliver


# Collection.

def collection_records(workers: list[int], trajectories: int, repeats: int) -> list[dict]:
    records = []
    _collect_once(max(workers), min(trajectories, 2 * max(workers)), seed=1000)  # warm-up
    for w in workers:
        runs = [_collect_once(w, trajectories, seed) for seed in range(repeats)]
        traj = [r["num_episodes"] / r["seconds"] for r in runs]
        steps = [r["attempts"] * r["horizon"] / r["seconds"] for r in runs]
        config = {"workers": w, "trajectories": trajectories,
                  "trajectories_per_shard": runs[0]["per_shard"], "horizon": runs[0]["horizon"],
                  "env_ids": runs[0]["env_ids"], "seeds": list(range(repeats)),
                  "acceptance": statistics.median(r["acceptance"] for r in runs),
                  "includes": "worker start, env creation, rollouts, shard writes"}
        records.append(common.record(f"collect/{w}_workers_trajectories_per_s",
                                     statistics.median(traj), "trajectories/s", config, traj))
        records.append(common.record(f"collect/{w}_workers_attempted_steps_per_s",
                                     statistics.median(steps), "steps/s", config, steps))
    return records


def _collect_once(workers: int, trajectories: int, seed: int) -> dict:
    config = collect_config.get_config("tiny")
    config.num_trajectories = trajectories
    config.trajectories_per_shard = math.ceil(trajectories / (2 * workers))
    config.num_workers, config.progress, config.seed = workers, False, seed
    workdir = tempfile.mkdtemp(prefix="parrot-collect-")
    try:
        start = time.perf_counter()
        metadata = collect.collect(config, workdir)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"seconds": seconds, "num_episodes": metadata["num_episodes"],
            "attempts": metadata["attempts"], "acceptance": metadata["acceptance_rate"],
            "horizon": int(config.horizon), "per_shard": int(config.trajectories_per_shard),
            "env_ids": list(config.env_ids)}


# Disk and page cache.

def npy_files(root: str) -> list[str]:
    return sorted(glob.glob(os.path.join(root, "shards", "*", "*.npy")))


def evict(root: str) -> None:
    """Drops the dataset's files from the page cache (pages still mapped stay, so callers
    release their memmaps first)."""
    gc.collect()
    for path in npy_files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_bytes() -> int:
    """Bytes this process has caused to be read from storage (page cache misses)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("read_bytes"))


def disk_records(root: str, threads: list[int], reads: int, repeats: int) -> list[dict]:
    files = [p for p in npy_files(root) if p.endswith("observations.npy")]
    config = {"files": "dataset observations.npy, evicted from the page cache first",
              "dataset_gb": sum(os.path.getsize(p) for p in files) / 1e9}
    seq = []
    for _ in range(repeats):
        evict(root)
        start, total = time.perf_counter(), 0
        for path in files:
            with open(path, "rb", buffering=0) as f:
                while chunk := f.read(1 << 22):
                    total += len(chunk)
            if total >= 1e9:
                break
        seq.append(total / 1e6 / (time.perf_counter() - start))
    records = [common.record("disk/sequential_read_MB_per_s", statistics.median(seq), "MB/s",
                             dict(config, read_size="4 MiB", bytes_per_repeat=total), seq)]
    for t in threads:
        rates = [_random_reads(root, files, t, reads, seed) for seed in range(repeats)]
        records.append(common.record(f"disk/random_8KiB_reads_per_s_{t}_threads",
                                     statistics.median(rates), "reads/s",
                                     dict(config, threads=t, reads=reads), rates))
    return records


def _random_reads(root: str, files: list[str], threads: int, reads: int, seed: int) -> float:
    evict(root)
    fds = [os.open(p, os.O_RDONLY) for p in files]
    try:
        rng = np.random.default_rng(seed)
        which = rng.integers(len(fds), size=reads).tolist()
        pages = [os.path.getsize(p) // 4096 - 2 for p in files]
        offsets = [int(rng.integers(pages[i])) * 4096 for i in which]
        for fd in fds:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)

        def read(lo: int) -> None:  # one loop per thread: a task per read would cost more
            for i in range(lo, reads, threads):
                os.pread(fds[which[i]], 8192, offsets[i])

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(read, range(threads)))
        return reads / (time.perf_counter() - start)
    finally:
        for fd in fds:
            os.close(fd)


# Host-side loader.

def loader_dataset(gb: float, directory: str | None, per_shard: int) -> tuple[str, bool]:
    """(path of the loader dataset, whether to delete it at the end)."""
    if directory and os.path.exists(os.path.join(directory, "metadata.json")):
        return directory, False
    path = directory or tempfile.mkdtemp(prefix="parrot-loader-")
    episodes = max(1, round(gb * 1e9 / (25 * 48 * 48 * 3)))
    start = time.perf_counter()
    synthetic.write_synthetic_dataset(path, episodes, episodes_per_shard=per_shard)
    print(f"wrote {episodes} synthetic episodes to {path} in {time.perf_counter() - start:.0f} s")
    return path, directory is None


def consume(sampler, start: int, count: int, threads: int) -> None:
    """Builds batches ``start .. start + count - 1``, at most ``2 * threads`` in flight."""
    if threads == 1:
        for k in range(start, start + count):
            sampler.batch(k)
        return
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        pending = collections.deque()
        for k in range(start, start + count):
            pending.append(pool.submit(sampler.batch, k))
            if len(pending) >= 2 * threads:
                pending.popleft().result()
        for future in pending:
            future.result()


def loader_grid() -> list[tuple[int, int | None, int]]:
    windows = [None] + ([_WINDOW.value] if _WINDOW.value > 0 else [])
    return [(int(b), w, int(t)) for b in _BATCH_SIZES.value for w in windows
            for t in _THREADS.value]


def sample_records(prefix: str, rate: float, reps: list[float], window: int | None,
                   config: dict) -> list[dict]:
    """samples/s record, plus frames/s for windows (a window of H frames is one sample)."""
    shape = "frames" if window is None else f"windows_{window}"
    name = f"loader/{prefix.format(shape=shape)}"
    records = [common.record(f"{name}_samples_per_s", rate, "samples/s", config, reps)]
    if window is not None:
        records.append(common.record(f"{name}_frames_per_s", rate * window, "frames/s", config,
                                     [r * window for r in reps]))
    return records


def cold_records(root: str, info: dict, batches: int, repeats: int) -> list[dict]:
    records = []
    for batch, window, threads in loader_grid():
        rates, per_sample = [], []
        for r in range(repeats):
            evict(root)
            sampler = sampling.BatchSampler(dataset_lib.load_dataset(root), batch, seed=r,
                                            window=window)
            before, start = read_bytes(), time.perf_counter()
            consume(sampler, 0, batches, threads)
            rates.append(batches * batch / (time.perf_counter() - start))
            per_sample.append((read_bytes() - before) / (batches * batch))
            del sampler
        config = dict(info, cache="cold", batch=batch, window=window, threads=threads,
                      batches=batches, read_bytes_per_sample=statistics.median(per_sample))
        records += sample_records(f"cold_batch_{batch}_{{shape}}_{threads}_threads",
                                  statistics.median(rates), rates, window, config)
    return records


def warm_records(dataset, info: dict, batches: int, repeats: int, cache: str) -> list[dict]:
    records = []
    grid = loader_grid() if cache == "warm" else [g for g in loader_grid() if g[2] == 1]
    for batch, window, threads in grid:
        sampler = sampling.BatchSampler(dataset, batch, seed=0, window=window)
        counter = iter(range(0, 1 << 62, batches))

        def run() -> int:
            consume(sampler, next(counter), batches, threads)
            return batches * batch

        rate, reps = common.median_rate(run, repeats)
        config = dict(info, cache=cache, batch=batch, window=window, threads=threads,
                      batches=batches)
        records += sample_records(f"{cache}_batch_{batch}_{{shape}}_{threads}_threads", rate,
                                  reps, window, config)
    return records


def touch(dataset, chunk: int = 50_000) -> None:
    """Reads every frame once in order: fills the page cache and maps every page."""
    for lo in range(0, len(dataset.observations), chunk):
        dataset.observations[lo:lo + chunk]


def in_memory_dataset(dataset, gb: float):
    per_episode = dataset.observations.nbytes / dataset.num_episodes
    episodes = min(dataset.num_episodes, max(1, int(gb * 1e9 / per_episode)))
    return dataset.select_episodes(np.arange(episodes)).load_into_memory()


def dataset_info(dataset, shards: int) -> dict:
    return {"dataset_gb": dataset.observations.nbytes / 1e9, "dataset_frames": dataset.num_steps,
            "dataset_episodes": dataset.num_episodes, "shards": shards,
            "sampler": "BatchSampler.batch"}


# Device.

def device_records(dataset, info: dict, batches: int, repeats: int) -> list[dict]:
    # JAX is imported here so that collection workers (forkserver) never load it.
    import jax

    from parrot_jax import parallel
    from parrot_jax.data.prefetch import Prefetcher

    sharding = parallel.batch_sharding(parallel.make_mesh())
    records = []
    windows = [None] + ([_WINDOW.value] if _WINDOW.value > 0 else [])
    for batch in (int(b) for b in _BATCH_SIZES.value):
        for window in windows:
            for threads in (int(t) for t in _PREFETCH_THREADS.value):
                sampler = sampling.BatchSampler(dataset, batch, seed=0, window=window)
                with Prefetcher(sampler, sharding, num_threads=threads) as prefetcher:

                    def run() -> int:
                        for _ in range(batches):
                            jax.block_until_ready(next(prefetcher))
                        return batches * batch

                    rate, reps = common.median_rate(run, repeats)
                config = dict(info, cache="warm", batch=batch, window=window, threads=threads,
                              batches=batches, buffer_size=4, devices=jax.device_count(),
                              platform=jax.devices()[0].platform)
                records += sample_records(
                    f"device_batch_{batch}_{{shape}}_{threads}_prefetch_threads", rate, reps,
                    window, config)
    return records


def loader_records(root: str, repeats: int) -> list[dict]:
    threads = sorted({int(t) for t in _THREADS.value})
    records = disk_records(root, threads, _DISK_READS.value, repeats)
    dataset = dataset_lib.load_dataset(root)
    info = dataset_info(dataset, len(dataset.metadata[0]["shards"]))
    del dataset
    records += cold_records(root, info, _COLD_BATCHES.value, repeats)
    dataset = dataset_lib.load_dataset(root)
    touch(dataset)
    records += warm_records(dataset, info, _BATCHES.value, repeats, "warm")
    records += device_records(dataset, info, _DEVICE_BATCHES.value, repeats)
    small = in_memory_dataset(dataset, _IN_MEMORY_GB.value)
    records += warm_records(small, dataset_info(small, shards=1), _BATCHES.value, repeats,
                            "in_memory")
    return records


def print_table(records: list[dict]) -> None:
    width = max(len(r["name"]) for r in records)
    for r in records:
        extra = ""
        if "read_bytes_per_sample" in r["config"]:
            extra = f"  (read {r['config']['read_bytes_per_sample'] / 1e3:.0f} kB/sample)"
        host = r["name"].startswith("loader/") and "device" not in r["name"]
        if host and r["unit"] == "samples/s":
            extra += "  >= goal" if r["value"] >= GOAL else "  < goal"
        print(f"{r['name']:<{width}}  {r['value']:>12,.0f} {r['unit']}{extra}")


def main(argv):
    del argv
    cores = os.cpu_count() or 1
    workers = [int(w) for w in _WORKERS.value] if _WORKERS.value else list(range(1, cores + 1))
    records = collection_records(workers, _TRAJECTORIES.value, _REPEATS.value)
    root, delete = loader_dataset(_LOADER_GB.value, _DATASET_DIR.value, _PER_SHARD.value)
    try:
        records += loader_records(root, _REPEATS.value)
    finally:
        if delete:
            shutil.rmtree(root, ignore_errors=True)
    with open("/proc/meminfo") as f:
        memory = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) / 2**20
    result = {"machine": dict(common.machine(), memory_gib=round(memory, 1)),
              "versions": common.versions("numpy", "jax", "jaxlib", "pybullet"),
              "goal": {"loader_host_samples_per_s": GOAL}, "records": records}
    print_table(records)
    common.write_result(_OUT.value, result)


if __name__ == "__main__":
    app.run(main)
