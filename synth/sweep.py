"""``wrpn-rtl sweep``: the WRPN study measured - width x precision, accuracy against hardware.

For every point (width, weight bits, activation bits) the sweep trains the digits CNN with
several seeds (or re-quantizes a model file's float parameters), and for every target builds
one design - the fastest that fits the device (FPGAs), or balanced for a fixed number of
cycles per image (``asic``, so that its gate counts compare at equal throughput) - from the
first seed's model, synthesizes it, and checks a few test images on Verilator, bit-exact
against the golden model. Full-precision baselines are trained at every width.

Every step is cached (:mod:`~wrpn_rtl.synth.sweep_cache`) and runs in a worker
(:mod:`~wrpn_rtl.synth.sweep_steps`): local processes (``jobs``), or an existing Dask
distributed cluster (``scheduler``). A failed step never stops the sweep; the points that
needed it carry its reason.
"""
from dataclasses import asdict, dataclass, field
import hashlib
import math
import os
from pathlib import Path
import signal
import statistics
import time

from wrpn_rtl.synth.sweep_cache import StepCache
from wrpn_rtl.synth.sweep_steps import DESIGN_FILES, run_step

__all__ = ["SweepConfig", "Point", "run_sweep", "DEFAULT_BITS", "DEFAULT_WIDTHS",
           "DEFAULT_TARGETS", "DEFAULT_FILL", "QUICK", "parse_bits", "parse_fill",
           "parse_widths"]

DEFAULT_WIDTHS = (1.0, 2.0, 3.0)
#: (weight bits, activation bits) of the WRPN paper's study.
DEFAULT_BITS = ((1, 1), (1, 2), (2, 2), (2, 4), (4, 4), (8, 8))
DEFAULT_TARGETS = ("ice40-up5k", "ecp5-25k", "asic")
#: Cycles per image of the ``asic`` designs: one throughput for every point, so their gate
#: counts say what each precision and width costs at equal speed.
DEFAULT_ASIC_CYCLES = 2048
#: Share of each FPGA family's logic a sweep's designs are planned for. iCE40 as
#: ``generate`` (:data:`~wrpn_rtl.job.design.FIT_MARGINS`); ECP5 lower than its 65 %:
#: measured in the first full sweep, nextpnr's static placer took 4-9 minutes on the 65 %
#: designs and stalled in its legalizer for 15 minutes on 5 of 18 (the widest, whose
#: flip-flops filled 62 % of the device), where the same networks at 50 % placed in 1-3
#: minutes (x3 w2a4: 135 s, 75.7 MHz). ``--fill ecp5=0.65`` plans as ``generate`` does.
DEFAULT_FILL = (("ice40", 0.75), ("ecp5", 0.5))
#: A guess of each kind of step's seconds on one core, for the ETA until the sweep has
#: measured its own.
GUESS_SECONDS = {"train": 8, "float": 6, "requantize": 5, "build": 150, "check": 20}
#: The order in which ready steps start: the long chains first.
PRIORITY = {"build": 0, "check": 1, "requantize": 3, "train": 3, "float": 5}


@dataclass(frozen=True)
class Point:
    """One point of the sweep: a width and (weight, activation) bits."""

    width: float
    wbits: int
    abits: int

    @property
    def label(self):
        return f"x{self.width:g} w{self.wbits}a{self.abits}"


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep covers.

    Parameters
    ----------
    widths : tuple of float
        WRPN width multipliers (positive). With ``model``: the model's width only.
    bits : tuple of (int, int)
        (weight bits, activation bits), each 1..16.
    seeds : int
        Training seeds per point (0, 1, ...); with ``model`` one (no training).
    epochs : int
        Training epochs.
    targets : tuple of str
        Keys of :data:`~wrpn_rtl.synth.flow.TARGETS`.
    images : int
        Test images each design runs on Verilator.
    asic_cycles : int
        Cycles per image of the ``asic`` designs.
    fill : tuple of (str, float)
        (FPGA family, share of its logic) the designs are planned for (:data:`DEFAULT_FILL`).
    model : path or None
        Sweep the bits of this model file's float parameters by re-quantizing.
    """

    widths: tuple = DEFAULT_WIDTHS
    bits: tuple = DEFAULT_BITS
    seeds: int = 3
    epochs: int = 40
    targets: tuple = DEFAULT_TARGETS
    images: int = 4
    asic_cycles: int = DEFAULT_ASIC_CYCLES
    fill: tuple = DEFAULT_FILL
    model: object = None

    def __post_init__(self):
        from wrpn_rtl.synth.flow import target_named
        for width in self.widths:
            if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
                raise ValueError(f"widths must be positive finite numbers, not {width!r}")
        for pair in self.bits:
            if (len(pair) != 2 or not all(isinstance(b, int) and 1 <= b <= 16 for b in pair)):
                raise ValueError(f"bits must be (weight bits, activation bits) pairs of 1..16, "
                                 f"not {pair!r}")
        for name in ("seeds", "epochs", "images", "asic_cycles"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        for target in self.targets:
            target_named(target, flag="targets")
        for family, share in self.fill:
            if family not in dict(DEFAULT_FILL) or not 0 < share <= 1:
                raise ValueError(f"fill must give shares in (0, 1] of the families "
                                 f"{', '.join(dict(DEFAULT_FILL))}, not {family}={share!r}")
        if not (self.widths and self.bits and self.targets):
            raise ValueError("widths, bits and targets must not be empty")

    def points(self):
        return [Point(float(width), wbits, abits) for width in self.widths
                for wbits, abits in self.bits]

    def as_dict(self):
        entry = asdict(self)
        entry["model"] = None if self.model is None else str(self.model)
        entry["bits"] = [list(pair) for pair in self.bits]
        entry["fill"] = dict(self.fill)
        return entry

    def fill_for(self, target):
        """The share of ``target``'s logic its design is planned for (None: asic)."""
        from wrpn_rtl.synth.flow import TARGETS
        return dict(DEFAULT_FILL, **dict(self.fill)).get(TARGETS[target].family)


#: ``--quick``: two widths x two precisions, one seed, one target, few epochs, and designs
#: planned for 60 % of the UP5K: nextpnr places those in seconds, where its placer was seen to
#: stall for minutes on 75-78 % designs (a failed placement then costs three tries).
QUICK = dict(widths=(1.0, 2.0), bits=((2, 4), (8, 8)), seeds=1, epochs=10,
             targets=("ice40-up5k",), images=2, fill=(("ice40", 0.6), ("ecp5", 0.5)))


def parse_bits(text):
    """``"2/4,8/8"`` -> ``((2, 4), (8, 8))``: weight/activation bits pairs."""
    pairs = []
    for item in text.split(","):
        parts = item.strip().split("/")
        try:
            pair = tuple(int(part) for part in parts)
        except ValueError:
            pair = ()
        if len(pair) != 2 or not all(1 <= bits <= 16 for bits in pair):
            raise ValueError(f"must be weight/activation bit pairs of 1..16 separated by "
                             f"commas (e.g. 2/4,8/8), not {text!r}")
        pairs.append(pair)
    return tuple(dict.fromkeys(pairs))


def parse_fill(text):
    """``"ecp5=0.65,ice40=0.7"`` -> ``(("ecp5", 0.65), ("ice40", 0.7))``; families not named
    keep :data:`DEFAULT_FILL`."""
    fill = dict(DEFAULT_FILL)
    for item in text.split(","):
        family, _, share = item.strip().partition("=")
        try:
            value = float(share)
        except ValueError:
            value = None
        if family not in fill or value is None or not 0 < value <= 1:
            raise ValueError(f"must be FAMILY=SHARE pairs (families {', '.join(fill)}, shares "
                             f"in (0, 1]) separated by commas (e.g. ecp5=0.65), not {text!r}")
        fill[family] = value
    return tuple(fill.items())


def parse_widths(text):
    """``"1,2,3"`` -> ``(1.0, 2.0, 3.0)``."""
    try:
        widths = tuple(float(item) for item in text.split(","))
    except ValueError:
        widths = ()
    if not widths or not all(math.isfinite(w) and w > 0 for w in widths):
        raise ValueError(f"must be positive numbers separated by commas (e.g. 1,2,3), "
                         f"not {text!r}")
    return tuple(dict.fromkeys(widths))


# -- the steps and their order ------------------------------------------------------------------
@dataclass(eq=False)
class Step:
    """One step of the sweep.

    Members
    -------
    kind, args :
        What runs (:data:`~wrpn_rtl.synth.sweep_steps.STEPS`).
    needs : dict
        ``{input file name: (step, its file name)}``: files of earlier steps it reads.
    point :
        The :class:`Point` (or ``("float", width)``) it belongs to.
    state : str
        "waiting", "running", "done" (result known), or "failed" (crashed, or skipped
        because a step it needs failed; ``failure`` says why).
    cached : bool
        The result came from the cache.
    """

    kind: str
    args: dict
    point: object
    needs: dict = field(default_factory=dict)
    state: str = "waiting"
    key: str = None
    result: dict = None
    failure: str = None
    cached: bool = False
    seconds: float = None
    entry: object = None         # the CachedStep holding the result and files
    started: float = None

    @property
    def label(self):
        point = (self.point.label if isinstance(self.point, Point)
                 else f"x{self.point[1]:g} full precision")
        extra = self.args.get("target") or (f"seed {self.args['seed']}" if "seed" in self.args
                                            and self.kind != "check" else "")
        return f"{self.kind} {point}" + (f" {extra}" if extra else "")

    @property
    def finished(self):
        return self.state in ("done", "failed")

    @property
    def ok(self):
        """Finished with a result that is not a failure."""
        return self.state == "done" and not self.result.get("failure")


def plan_steps(config, model_bytes=None):
    """Every step of ``config``'s sweep, in a sensible start order."""
    steps = []
    for point in config.points():
        if model_bytes is None:
            models = [Step("train", dict(width=point.width, wbits=point.wbits,
                                         abits=point.abits, seed=seed, epochs=config.epochs),
                           point) for seed in range(config.seeds)]
        else:
            models = [Step("requantize", dict(wbits=point.wbits, abits=point.abits), point,
                           needs={"source.npz": (None, model_bytes)})]
        steps += models
        for target in config.targets:
            rule = (dict(target_cycles=config.asic_cycles) if target == "asic"
                    else dict(fill=config.fill_for(target)))
            build = Step("build", dict(target=target, label=point.label, **rule), point,
                         needs={"model.npz": (models[0], "model.npz")})
            steps += [build, Step("check", dict(target=target, images=config.images, seed=0),
                                  point, needs={name: (build, name) for name in DESIGN_FILES})]
    if model_bytes is None:
        steps += [Step("float", dict(width=float(width), seed=seed, epochs=config.epochs),
                       ("float", float(width)))
                  for width in config.widths for seed in range(config.seeds)]
    return steps


# -- where steps run ------------------------------------------------------------------------------
#: The environment variables that set NumPy's BLAS thread count.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _start_worker(blas_threads):
    """A local worker's first act: lead a process group of its own, which its tools (Yosys,
    nextpnr, the Verilator build and simulation) join, so that stopping the sweep stops
    them all (:meth:`LocalPool.close`); and, before NumPy loads, give its BLAS
    ``blas_threads`` threads unless the user set a count (training's small matrices gain
    nothing from a second thread: measured 2.89 s with one, 2.84 s with two, at 1.9x the
    CPU time, which a second worker needs)."""
    os.setpgrp()
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, str(blas_threads))


class LocalPool:
    """Steps in ``jobs`` local worker processes (spawned: no state shared with the sweep).
    Each worker leads its own process group; an interrupted sweep ends every group, so no
    tool keeps running after it."""

    def __init__(self, jobs):
        import concurrent.futures
        import multiprocessing
        self._futures = concurrent.futures
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(max(1, (os.cpu_count() or 1) // jobs),))
        self.workers = jobs
        self.where = f"{jobs} local worker process{'es' if jobs > 1 else ''}"

    def submit(self, kind, args, inputs):
        return self._executor.submit(run_step, kind, args, inputs)

    def wait(self, futures, timeout):
        done, _ = self._futures.wait(futures, timeout=timeout,
                                     return_when=self._futures.FIRST_COMPLETED)
        return done

    def close(self, cancel=False):
        """Wait for the workers to end; ``cancel``: drop queued steps and end every
        worker's process group (SIGTERM) at once."""
        # the executor keeps its processes in ``_processes`` (since Python 3.2; 3.14 adds
        # ``terminate_workers``)
        workers = list(getattr(self._executor, "_processes", {}).values()) if cancel else []
        self._executor.shutdown(wait=not cancel, cancel_futures=cancel)
        for worker in workers:
            try:
                os.killpg(worker.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


class DaskPool:
    """Steps on an existing Dask distributed cluster (``address``: its scheduler, e.g.
    ``tcp://host:8786``; a :class:`distributed.LocalCluster`'s ``scheduler_address``)."""

    def __init__(self, address, *, timeout="20s"):
        import distributed
        self._distributed = distributed
        try:
            self._client = distributed.Client(address, timeout=timeout)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"--scheduler {address!r}: no Dask scheduler answered there "
                             f"({error})") from None
        self.workers = max(1, sum(w.get("nthreads", 1) for w in
                                  self._client.scheduler_info()["workers"].values()))
        self.where = f"the Dask cluster at {address} ({self.workers} worker threads)"
        self._submitted = []

    def submit(self, kind, args, inputs):
        future = self._client.submit(run_step, kind, args, inputs, pure=False)
        self._submitted.append(future)
        return future

    def wait(self, futures, timeout):
        try:
            done, _ = self._distributed.wait(list(futures), timeout=timeout,
                                             return_when="FIRST_COMPLETED")
        except self._distributed.TimeoutError:
            return set()
        return done

    def close(self, cancel=False):
        """Disconnect; ``cancel``: cancel the steps still queued or running first."""
        if cancel:
            self._client.cancel(self._submitted)
        self._client.close()


# -- the run ---------------------------------------------------------------------------------------
def run_sweep(config, cache_dir, *, jobs=1, scheduler=None, progress=lambda text: None,
              tick_s=30.0, pool=None):
    """Run every step of ``config`` (from the cache where it is there) and gather the results.

    Parameters
    ----------
    config : SweepConfig
    cache_dir : path
        The step cache (:class:`~wrpn_rtl.synth.sweep_cache.StepCache`).
    jobs : int
        Local worker processes (ignored with ``scheduler``).
    scheduler : str or None
        A Dask scheduler's address: run the steps there instead.
    progress : callable(str)
        Hears points and steps done, running and failed, with an ETA, at every finished step
        and every ``tick_s`` seconds.
    pool : object or None
        Where the steps run, instead of ``jobs`` / ``scheduler`` (an object like
        :class:`LocalPool`; the tests fake the steps with one).

    Returns
    -------
    dict
        The sweep's results (see :func:`gather`).

    Raises
    ------
    ValueError
        A model file that cannot be read, or a scheduler that does not answer.
    """
    model_bytes = None
    if config.model is not None:
        model_bytes = _read_model(config.model)
    steps = plan_steps(config, model_bytes)
    cache = StepCache(cache_dir)
    started = time.monotonic()
    if pool is None:
        pool = DaskPool(scheduler) if scheduler else LocalPool(jobs)
    progress(f"sweep: {len(config.points())} points x {len(config.targets)} targets, "
             f"{len(steps)} steps, on {pool.where}; cache {cache.root}")
    running = {}
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while not all(step.finished for step in steps):
            for step in sorted((s for s in steps if s.state == "waiting"), key=_priority):
                _start(step, cache, pool, running, free=len(running) < pool.workers)
            if not running:
                continue
            progress(_progress_line(steps, pool.workers, started))
            for future in pool.wait(set(running), timeout=tick_s):
                _finish(running.pop(future), future, cache)
        progress(_progress_line(steps, pool.workers, started))
    except BaseException:
        pool.close(cancel=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    pool.close()
    return gather(config, steps, seconds=time.monotonic() - started, where=pool.where)


def _interrupt(signum, frame):
    """SIGTERM during a sweep ends it as Ctrl-C does: workers and their tools stopped, every
    finished step kept in the cache."""
    raise KeyboardInterrupt


def _read_model(path):
    from wrpn_rtl.golden import ModelFileError, load_float_model, load_network
    try:
        load_network(path)
        if load_float_model(path) is None:
            raise ValueError(f"--model {str(path)!r} keeps no float parameters to re-quantize "
                             f"(write it with wrpn-rtl train)")
    except ModelFileError as error:
        raise ValueError(str(error)) from None
    return Path(path).read_bytes()


def _priority(step):
    """Ready steps start in this order: builds (the longest) and their checks first, then the
    first seed of each point (its model is the one built), then the rest; within each, the
    largest first (so the long ECP5 builds of the widest points do not start last)."""
    return (PRIORITY[step.kind] + (step.kind == "train" and step.args["seed"] > 0),
            -_size(step))


#: Rough relative cost of a build per target family (measured: ECP5 builds took 3-10 times
#: an iCE40 build of the same point).
BUILD_WEIGHT = {"ice40": 1, "ecp5": 4, "asic": 1}


def _size(step):
    """A step's rough relative cost, for ordering only: the point's multiply-accumulate bits
    (width squared times weight plus activation bits), times :data:`BUILD_WEIGHT` for builds
    and checks."""
    from wrpn_rtl.synth.flow import TARGETS
    if not isinstance(step.point, Point):
        return step.point[1] ** 2
    size = step.point.width ** 2 * (step.point.wbits + step.point.abits)
    target = step.args.get("target")
    return size * (BUILD_WEIGHT[TARGETS[target].family] if target else 1)


def _start(step, cache, pool, running, *, free):
    """Once every step ``step`` needs has finished: take it from the cache, skip it (a step
    it needs failed), or, when a worker is ``free``, submit it."""
    from wrpn_rtl.synth.sweep_cache import step_key
    needed = [source for source, _ in step.needs.values() if source is not None]
    if not all(source.finished for source in needed):
        return
    for source in needed:
        if not source.ok:
            step.state = "failed"
            step.failure = f"{source.label}: {source.failure or source.result['failure']}"
            return
    inputs = {name: (data if source is None else source.entry.file(data).read_bytes())
              for name, (source, data) in step.needs.items()}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in inputs.items()}
    step.key = step_key(step.kind, step.args, digests)
    entry = cache.get(step.kind, step.key)
    if entry is not None:
        step.state, step.cached, step.entry, step.result = "done", True, entry, entry.result
        step.seconds = entry.result.get("_seconds")
        return
    if not free:
        return
    step.state, step.started = "running", time.monotonic()
    running[pool.submit(step.kind, step.args, inputs)] = step


def _finish(step, future, cache):
    try:
        output = future.result()
    except Exception as error:                     # a crash: reported, never cached
        step.state = "failed"
        step.failure = f"crashed: {type(error).__name__}: {error}"
        step.seconds = time.monotonic() - step.started
        return
    result = dict(output["result"], _seconds=output["seconds"])
    step.entry = cache.put(step.kind, step.key, result, output["files"])
    step.state, step.result, step.seconds = "done", result, output["seconds"]


def _point_states(steps):
    points = {}
    for step in steps:
        points.setdefault(step.point, []).append(step)
    states = {"done": 0, "running": 0, "failed": 0, "waiting": 0}
    for members in points.values():
        if any(s.state == "failed" or (s.state == "done" and s.result.get("failure"))
               for s in members):
            states["failed"] += 1
        elif all(s.finished for s in members):
            states["done"] += 1
        elif any(s.state == "running" for s in members):
            states["running"] += 1
        else:
            states["waiting"] += 1
    return states, len(points)


def _progress_line(steps, workers, started):
    states, total = _point_states(steps)
    finished = [s for s in steps if s.finished]
    running = [s for s in steps if s.state == "running"]
    cached = sum(s.cached for s in steps)
    now = time.monotonic()
    line = (f"sweep ({now - started:.0f} s): points {states['done']}/{total} done, "
            f"{states['running']} running, {states['failed']} failed; steps "
            f"{len(finished)}/{len(steps)} ({cached} from the cache)")
    if running:
        line += "; running: " + ", ".join(f"{s.label} ({now - s.started:.0f} s)"
                                          for s in running[:4])
    eta = estimate_remaining(steps, workers, now)
    if eta:
        line += f"; about {_duration(eta)} left"
    return line


def estimate_remaining(steps, workers, now):
    """Seconds until the sweep ends: every unfinished step at the mean time its kind took in
    this sweep (:data:`GUESS_SECONDS` before one has finished), less the time running steps
    have had, spread over ``workers``."""
    measured = {}
    for step in steps:
        if step.state == "done" and not step.cached and step.seconds is not None:
            measured.setdefault(step.kind, []).append(step.seconds)
    total = 0.0
    for step in steps:
        if step.finished:
            continue
        mean = statistics.mean(measured[step.kind]) if step.kind in measured \
            else GUESS_SECONDS[step.kind]
        total += max(mean - (now - step.started), 5.0) if step.state == "running" else mean
    return total / max(1, workers)


def _duration(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


# -- the results --------------------------------------------------------------------------------
def _spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"seeds": values, "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def gather(config, steps, *, seconds, where):
    """The sweep's results as one JSON object.

    Returns
    -------
    dict
        ``config``; ``points``: per point its accuracy over seeds (``mean``, ``std``,
        ``min``, ``max``, each seed's), the golden check (integer == float quantized paths),
        WRPN's memory figures, and per target the design, its synthesis and its Verilator
        check, or ``failure`` naming the step and the reason; ``float_baselines``: full
        precision per width; ``steps``: every step with its key, time and whether it came from
        the cache.
    """
    points = []
    for point in config.points():
        mine = [s for s in steps if s.point == point]
        models = [s for s in mine if s.kind in ("train", "requantize")]
        entry = {"label": point.label, "width": point.width, "wbits": point.wbits,
                 "abits": point.abits,
                 "accuracy": _spread([s.result.get("test_accuracy") for s in models if s.ok]),
                 "integer_vs_float_mismatches": sum(s.result["integer_vs_float_mismatches"]
                                                    for s in models if s.ok),
                 "memory": models[0].result.get("memory") if models[0].ok else None,
                 "failures": [_failure(s) for s in models if not s.ok],
                 "targets": {}}
        if models[0].ok and models[0].kind == "requantize":
            entry["float_test_accuracy"] = models[0].result.get("float_test_accuracy")
        for target in config.targets:
            entry["targets"][target] = _target_entry(
                {s.kind: s for s in mine if s.args.get("target") == target})
        points.append(entry)
    baselines = []
    for width in dict.fromkeys(float(w) for w in config.widths):
        runs = [s for s in steps if s.point == ("float", width)]
        if runs:
            baselines.append({"width": width, "accuracy": _spread(
                [s.result["test_accuracy"] for s in runs if s.ok]),
                "failures": [_failure(s) for s in runs if not s.ok]})
        elif config.model is not None:
            values = [p.get("float_test_accuracy") for p in points if p["width"] == width]
            baselines.append({"width": width, "accuracy": _spread(values[:1]),
                              "failures": [], "from": "the full-precision network the model file records"})
    computed = [s for s in steps if s.state == "done" and not s.cached]
    return {"config": config.as_dict(), "where": where, "seconds": round(seconds, 1),
            "points": points, "float_baselines": baselines,
            "steps": {"total": len(steps), "computed": len(computed),
                      "cached": sum(s.cached for s in steps),
                      "failed": sum(not s.ok for s in steps if s.finished),
                      "list": [{"kind": s.kind, "label": s.label, "key": s.key,
                                "cached": s.cached, "seconds": s.seconds,
                                "failure": None if s.ok else _failure(s)} for s in steps]}}


def _failure(step):
    if step.state == "failed":
        return step.failure
    return f"{step.label}: {step.result['failure']}"


def _target_entry(by_kind):
    """One point on one target: design, synthesis, check, the attempts nextpnr could not
    place, and the first failure."""
    build, check = by_kind.get("build"), by_kind.get("check")
    entry = {"design": None, "synth": None, "check": None, "attempts": [], "failure": None}
    if build is not None:
        if build.state == "done":
            entry["attempts"] = build.result.get("attempts", [])
        if build.ok:
            entry["design"], entry["synth"] = build.result["design"], build.result["synth"]
        else:
            entry["failure"] = _failure(build)
    if check is not None:
        if check.ok:
            entry["check"] = {k: v for k, v in check.result.items() if not k.startswith("_")}
        elif entry["failure"] is None:
            entry["failure"] = _failure(check)
    if entry["check"] is not None and not entry["check"]["bit_exact"] and not entry["failure"]:
        entry["failure"] = (f"check: the RTL disagrees with the golden model on "
                            f"{entry['check']['mismatches']} outputs")
    return entry
