#!/usr/bin/env python
"""Per-frame latency of the live pipeline on one CPU core: detect or track the face and eyes, crop the
eye strip, run the model, calibrate and smooth (gazeneg.webcam.live.FramePipeline.process).

How it measures: scikit-image's astronaut photo (a real face, shipped in its wheel) is pasted, 1.6x,
into 640x480 frames with a few pixels of motion per frame (slow sinusoids + 1 px jitter), so the face
is about 150 px wide, as a person at ~60 cm from a laptop webcam. The frames are made before timing
starts (decoding a camera frame is not part of the pipeline). torch.set_num_threads(1) and
cv2.setNumThreads(1). Each frame's process() call is timed with time.perf_counter (wall) and
time.thread_time (CPU time of the thread, which excludes time spent waiting for a busy core); the first
--warmup frames are excluded; the median and 95th percentile of the rest are reported, with the wall
time of each stage. A second pass with tracking off (a full-frame search every frame) shows what tracking saves.
Beside them, the process's CPU time per frame (time.process_time: every thread of the process, so the
session writer's and the WebSocket server's work too): with --one-core that is what a frame costs the core.

--outputs times it again with every output on (CSV and JSONL gaze files, a strips session, LSL, WebSocket
with a subscriber in another process); --repeat N does the whole measurement N times and ends with the
median over the runs, the figure the 16 ms budget is judged on (--budget-ms).

--against DIR compares this code with another version of it on a busy machine, where runs one after the
other differ by more than the change (other jobs come and go within a minute): DIR holds that version's
gazeneg/ (`git archive REV gazeneg | tar -x -C DIR`), imported as a second package, and the two pipelines
take the frames in turn in one process, each frame through both (alternating which goes first), so both see
the same machine. It reports each one's thread CPU per frame, its writer and server threads' CPU, and the
paired difference (median, with a bootstrap 95% interval).

Measured 2026-12-04 (docs/integration.md, "Latency with the outputs on"; the machine busy, load average 2.8-3):
--against the code before the per-frame savings (9ff7463), three runs: the pipeline alone 7.5-8.2% less thread
CPU a frame (1.12-1.18 ms), a frame with every output on 13.6-14.3% less (frame thread plus the writer and server
threads: 2.2-2.4 ms); the --repeat 3 series of this code at load 3.0: wall median 14.50 ms without outputs,
16.14 ms with them (the outputs' own time in a frame 0.89-0.94 ms; 2.2-2.7 ms before). On the idle machine at
05:27-05:31 the virtual machine itself was slower (the pipeline alone 16-18 ms): 16.44 / 18.75 ms (the code
before 18.12 / 19.61 ms), the outputs' own time 0.64-0.68 ms (2.34-2.57 ms before), paired savings 6.9-9.0% /
13.1-14.5%. Later (08:39-08:42, "The detect stage" there), with the landmark models' inputs made in one pass and
cv2.dnn's layer fusion off (the same outputs bit for bit): --against 8bb23e3, 0.25-0.41 ms less a frame (2.2-3.4%);
the --repeat 3 series at load 2.5-2.8: 10.95 / 11.93 ms (the code before, right after: 11.05 / 11.88 ms). With the
optional ai-edge-litert runtime (same accuracy on the real-face benchmark, not the same numbers): 6.16 / 7.14 ms.

    python benchmarks/pipeline_latency.py                  # default CNN (random init: same cost)
    python benchmarks/pipeline_latency.py --backend haar   # the Haar cascades instead of the landmarks
    python benchmarks/pipeline_latency.py --checkpoint runs/.../best.pt --frames 600
    python benchmarks/pipeline_latency.py --backend landmarks --checkpoint checkpoints/demo.pt --outputs \
        --one-core --no-untracked --repeat 3        # the live budget, with and without the outputs
    git archive 9ff7463 gazeneg | tar -x -C /tmp/old && python benchmarks/pipeline_latency.py --backend \
        landmarks --checkpoint checkpoints/demo.pt --outputs --one-core --against /tmp/old   # paired before/after
"""

import argparse
import json
import os
import platform
import sys
import time

import cv2
import numpy as np
import torch

from gazeneg.testing import astronaut_path, moving_face_frames
from gazeneg.webcam.detect import BACKENDS, make_detector
from gazeneg.webcam.filters import DEFAULT_SMOOTHER
from gazeneg.webcam.live import SMOOTHERS, FramePipeline, make_smoother, summarize_latency


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300, help="timed frames after warm-up")
    p.add_argument("--warmup", type=int, default=30, help="frames run first and not counted")
    p.add_argument("--checkpoint", default=None, help="a gazeneg checkpoint (default: gazecnn, random init)")
    p.add_argument("--model", default="gazecnn", help="registered model when no checkpoint is given")
    p.add_argument("--smoother", choices=SMOOTHERS, default=DEFAULT_SMOOTHER)
    p.add_argument("--no-untracked", action="store_true", help="skip the tracking-off comparison")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="face backend (auto: landmarks when the model files are cached, else Haar)")
    p.add_argument("--budget-ms", type=float, default=16.0, help="median wall time per frame to meet")
    p.add_argument("--iris", choices=("alternate", "every"), default="alternate",
                   help="landmarks: iris model on one eye per tracked frame in turn (live's default), or both")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--outputs", action="store_true", help="also time it with every output on: --record-gaze CSV and "
                   "JSONL, --record-session (strips), LSL and WebSocket (a client connected) when gazeneg[stream] is in")
    p.add_argument("--outputs-each", action="store_true", help="with --outputs: also time each output alone")
    p.add_argument("--one-core", action="store_true", help="pin the process (its writer and server threads too) "
                   "to one CPU core")
    p.add_argument("--against", default=None, metavar="DIR", help="compare, frame by frame in this process, with "
                   "the gazeneg/ package in DIR (another version: git archive REV gazeneg | tar -x -C DIR)")
    p.add_argument("--repeat", type=int, default=1, help="do the measurement (without and, with --outputs, with the "
                   "outputs) this many times and report the median over the runs")
    return p


def _stats(v) -> dict:
    v = np.asarray(v, np.float64)
    return {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95)), "mean_ms": float(v.mean())}


def measure(pipe: FramePipeline, frames, warmup: int) -> dict:
    results, cpu, proc = [], [], []
    for i, frame in enumerate(frames):
        c0, p0 = time.thread_time(), time.process_time()
        results.append(pipe.process(frame, i / 30.0))
        cpu.append((time.thread_time() - c0) * 1e3)
        proc.append((time.process_time() - p0) * 1e3)
    out = summarize_latency(results, warmup=warmup)
    # CPU time of this thread: what the frame costs one core, whatever else the machine is running.
    out["cpu_total"] = _stats(cpu[warmup:])
    out["process_cpu"] = _stats(proc[warmup:])
    return out


OUTPUTS = ("files", "session", "lsl", "websocket")


def measure_with_outputs(pipe: FramePipeline, frames, warmup: int, folder, kinds=OUTPUTS) -> tuple[dict, list[str]]:
    """measure(), but each frame through webcam.tracker.SampleTap with the outputs `kinds` on (files: CSV and
    JSONL; session: --record-session strips; lsl; websocket with a client connected); files go in `folder`."""
    from pathlib import Path

    from gazeneg.webcam.live import LiveSession
    from gazeneg.webcam.replay import SessionRecorder
    from gazeneg.webcam.tracker import GazeFileSink, SampleTap

    folder = Path(folder)
    sinks, names, client = [], [], None
    if "files" in kinds:
        sinks += [GazeFileSink(folder / "g.csv"), GazeFileSink(folder / "g.jsonl")]
        names += ["CSV", "JSONL"]
    if "session" in kinds:
        sinks.append(SessionRecorder(folder / "session", keep="strips"))
        names.append("session strips")
    try:
        from gazeneg.webcam.stream import LslSink, WebSocketSink

        if "lsl" in kinds:
            sinks.append(LslSink(name=f"bench-{os.getpid()}-{len(os.listdir(folder))}"))
            names.append("LSL")
        if "websocket" in kinds:
            ws = WebSocketSink("127.0.0.1", 0)
            sinks.append(ws)
            names.append("WebSocket")
            client = _ws_client(ws.port)
            ws.wait(10)
    except ValueError as e:   # StreamError: gazeneg[stream] not installed
        print(f"  (streams left out: {e})")
    session = LiveSession(pipe, calibrate="never", validate=False, log=lambda *a: None)
    tap = SampleTap(session, screen=(1920, 1080), sinks=sinks)
    results, cpu, wall, proc = [], [], [], []
    for i, frame in enumerate(frames):
        c0, w0, p0 = time.thread_time(), time.perf_counter(), time.process_time()
        results.append(tap.feed(frame, i / 30.0))
        wall.append((time.perf_counter() - w0) * 1e3)   # the pipeline plus the sample and every sink's write
        cpu.append((time.thread_time() - c0) * 1e3)
        # every thread of the process in this frame: the writer's and the server's work lands in some frame
        proc.append((time.process_time() - p0) * 1e3)
    tap.close()
    if client is not None:
        client.wait(10)
    out = summarize_latency(results, warmup=warmup)
    w = np.array(wall[warmup:])
    out["total"] = _stats(w)
    out["cpu_total"] = _stats(cpu[warmup:])
    out["process_cpu"] = _stats(proc[warmup:])
    # What the outputs add to each frame, measured inside the same frame: tap.feed's wall time minus the
    # pipeline's own (LiveResult.ms total): the sample, the file lines, the LSL push, the WebSocket hand-off.
    extra = w - np.array([r.ms.get("total", 0.0) for r in results[warmup:]])
    out["outputs_added"] = _stats(extra)
    return out, names


def import_other_version(folder) -> str:
    """The gazeneg/ package in `folder` made importable as "gazeneg_against" (copied to a temporary folder,
    its imports of gazeneg renamed), so two versions run in one process. Returns the package name."""
    import re
    import shutil
    import tempfile
    from pathlib import Path

    src = Path(folder) / "gazeneg"
    if not (src / "__init__.py").is_file():
        raise SystemExit(f"--against {folder}: no gazeneg/ package there (git archive REV gazeneg | tar -x -C {folder})")
    tmp = Path(tempfile.mkdtemp(prefix="gazeneg-against-"))
    shutil.copytree(src, tmp / "gazeneg_against")
    for py in (tmp / "gazeneg_against").rglob("*.py"):
        text = re.sub(r"\bfrom gazeneg([. ])", r"from gazeneg_against\1", py.read_text())
        py.write_text(re.sub(r"\bimport gazeneg\b", "import gazeneg_against", text))
    sys.path.insert(0, str(tmp))
    return "gazeneg_against"


def paired(args, frames, outputs: bool) -> dict:
    """--against: both versions' pipelines (with every output on when `outputs`), each frame through both in
    turn; thread CPU per frame (median), the background threads' CPU per frame, and the paired difference."""
    import importlib
    import tempfile

    arms = {}
    tmp = tempfile.mkdtemp(prefix="gazeneg-paired-")
    for tag, pkg in (("other", args.against_pkg), ("this", "gazeneg")):
        mod = {m: importlib.import_module(f"{pkg}.{m}") for m in ("webcam.live", "webcam.detect", "webcam.tracker",
                                                                    "webcam.replay", "model.checkpoint")}
        model, _ = mod["model.checkpoint"].load_checkpoint(args.checkpoint)
        live = mod["webcam.live"]
        pipe = live.FramePipeline(model, smoother=live.make_smoother(args.smoother),
                                  detector=mod["webcam.detect"].make_detector(args.backend,
                                                                              alternate_iris=args.iris == "alternate"))
        sinks, threads, client = [], [], None
        if outputs:
            tracker, stream = mod["webcam.tracker"], importlib.import_module(f"{pkg}.webcam.stream")
            rec = mod["webcam.replay"].SessionRecorder(f"{tmp}/{tag}-session", keep="strips")
            ws = stream.WebSocketSink("127.0.0.1", 0)
            client = _ws_client(ws.port)
            ws.wait(10)
            sinks = [tracker.GazeFileSink(f"{tmp}/{tag}.csv"), tracker.GazeFileSink(f"{tmp}/{tag}.jsonl"), rec,
                     stream.LslSink(name=f"bench-{tag}-{os.getpid()}"), ws]
            threads = [rec._thread, ws.thread]
        session = live.LiveSession(pipe, calibrate="never", validate=False, log=lambda *a: None)
        arms[tag] = (mod["webcam.tracker"].SampleTap(session, screen=(1920, 1080), sinks=sinks), threads, client)

    def thread_cpu(tag):
        return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident)) for t in arms[tag][1])

    cpu = {tag: [] for tag in arms}
    start = {}
    for i, frame in enumerate(frames):
        if i == args.warmup:
            start = {tag: thread_cpu(tag) for tag in arms}
        for tag in (("other", "this") if i % 2 == 0 else ("this", "other")):
            c0 = time.thread_time()
            arms[tag][0].feed(frame, i / 30.0)
            cpu[tag].append((time.thread_time() - c0) * 1e3)
    n = len(frames) - args.warmup
    background = {tag: (thread_cpu(tag) - start[tag]) / n * 1e3 for tag in arms}
    for tap, _, client in arms.values():
        tap.close()
        if client is not None:
            client.kill()
    c = {tag: np.array(v[args.warmup:]) for tag, v in cpu.items()}
    d = c["other"] - c["this"]
    rng = np.random.default_rng(0)
    lo, hi = np.percentile([np.median(rng.choice(d, len(d))) for _ in range(2000)], [2.5, 97.5])
    out = {tag: {"thread_cpu_median_ms": float(np.median(c[tag])), "background_ms_per_frame": background[tag]}
           for tag in arms}
    out["saving_median_ms"], out["saving_ci95_ms"] = float(np.median(d)), [float(lo), float(hi)]
    out["background_saving_ms"] = background["other"] - background["this"]
    what = "every output on" if outputs else "no outputs"
    print(f"  {what}: thread CPU per frame, median: {args.against} {out['other']['thread_cpu_median_ms']:.2f} ms, this "
          f"{out['this']['thread_cpu_median_ms']:.2f} ms; paired difference {out['saving_median_ms']:.2f} ms "
          f"(95% {lo:.2f} to {hi:.2f})" + (f"; writer and server threads {background['other']:.2f} -> "
                                          f"{background['this']:.2f} ms a frame" if outputs else "")
          + f"; load average now {_load()}")
    return out


def _ws_client(port: int):
    """A WebSocket client reading every message, in its own process on any core: another program, as a real
    subscriber is (in this process it would compete for the interpreter lock and be timed as the output's)."""
    import subprocess

    code = ("import asyncio\nfrom websockets.asyncio.client import connect\nasync def run():\n"
            f"    async with connect('ws://127.0.0.1:{port}') as ws:\n        async for _ in ws:\n            pass\n"
            "asyncio.run(run())")
    cores = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
    return subprocess.Popen([sys.executable, "-c", code], preexec_fn=lambda: os.sched_setaffinity(0, cores))


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def one_run(args, model, name, frames, backend, runtime, run: int) -> tuple[dict, dict | None]:
    """One measurement: the pipeline alone (and tracking off unless --no-untracked), then, with --outputs, with
    every output on (and each alone with --outputs-each). Prints its lines; returns (figures, with-outputs)."""
    n = len(frames)
    load_before = _load()
    pipe = FramePipeline(model, detector=make_detector(backend, alternate_iris=args.iris == "alternate"),
                         smoother=make_smoother(args.smoother))
    t0 = time.perf_counter()
    tracked = measure(pipe, frames, args.warmup)
    wall = time.perf_counter() - t0
    out = {"model": name, "backend": backend, "runtime": runtime, "iris": args.iris, "smoother": args.smoother,
           "frame": "640x480", "frames_timed": args.frames, "warmup_excluded": args.warmup, "threads": 1,
           "one_core": args.one_core, "machine": platform.processor() or platform.machine(),
           "tracking": tracked, "fps_end_to_end": n / wall}
    if not args.no_untracked:
        pipe = FramePipeline(model, detector=make_detector(backend, track=False),
                             smoother=make_smoother(args.smoother))
        k = min(n, args.warmup + 100)
        out["no_tracking"] = measure(pipe, frames[:k], min(args.warmup, k // 4))

    t = tracked["total"]
    iris = f", iris {args.iris}" if backend == "landmarks" else ""
    tag = f"run {run}: " if args.repeat > 1 else ""
    print(f"{tag}pipeline latency, 640x480, one core, {backend} ({runtime}{iris}), {name}, {args.smoother} "
          f"smoothing: median "
          f"{t['median_ms']:.2f} ms, p95 {t['p95_ms']:.2f} ms over {tracked['frames']} frames "
          f"({args.warmup} warm-up frames excluded); face found in {tracked['with_face']}, by tracking in "
          f"{tracked['tracked']}")
    c, pc = tracked["cpu_total"], tracked["process_cpu"]
    print(f"  thread CPU time per frame: median {c['median_ms']:.2f} ms, p95 {c['p95_ms']:.2f} ms; the process's "
          f"(all threads) median {pc['median_ms']:.2f}, mean {pc['mean_ms']:.2f} ms (wall time above includes "
          f"waiting for the core; load average before {load_before}, now {_load()})")
    for stage in ("detect", "crop", "model", "smooth"):
        if stage in tracked:
            st = tracked[stage]
            print(f"  {stage:7s} median {st['median_ms']:6.2f} ms   p95 {st['p95_ms']:6.2f} ms")
    if "no_tracking" in out:
        u = out["no_tracking"]["total"]
        print(f"  tracking off (full search every frame): median {u['median_ms']:.2f} ms, p95 {u['p95_ms']:.2f} ms")
    if run == 1:
        print("measured: time.perf_counter around FramePipeline.process per frame; frames made in advance "
              "(astronaut.png pasted 1.6x into 640x480 with a few px of motion); torch and OpenCV on 1 thread")
    wo = None
    if args.outputs:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            pipe = FramePipeline(model, detector=make_detector(backend, alternate_iris=args.iris == "alternate"),
                                 smoother=make_smoother(args.smoother))
            wo, names = measure_with_outputs(pipe, frames, args.warmup, tmp)
        out["with_outputs"] = wo
        w, c, pc = wo["total"], wo["cpu_total"], wo["process_cpu"]
        print(f"  with outputs on ({', '.join(names)}): median {w['median_ms']:.2f} ms, p95 {w['p95_ms']:.2f} ms "
              f"(thread CPU median {c['median_ms']:.2f} ms; the process's, writer and server threads included, "
              f"median {pc['median_ms']:.2f}, mean {pc['mean_ms']:.2f} ms; load average now {_load()})")
        a = wo["outputs_added"]
        print(f"  the outputs' own time in each frame (feed minus the pipeline, same frame): median "
              f"{a['median_ms']:.3f} ms, p95 {a['p95_ms']:.3f} ms")
        for kind in OUTPUTS if args.outputs_each else ():
            with tempfile.TemporaryDirectory() as tmp:
                pipe = FramePipeline(model, detector=make_detector(backend, alternate_iris=args.iris == "alternate"),
                                     smoother=make_smoother(args.smoother))
                one, _ = measure_with_outputs(pipe, frames[:args.warmup + 150], args.warmup, tmp, kinds=(kind,))
            a = one["outputs_added"]
            out[f"outputs_added_{kind}"] = a
            print(f"    {kind} alone: its own time per frame median {a['median_ms']:.3f} ms, p95 {a['p95_ms']:.3f} ms")
    return out, wo


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.repeat < 1:
        raise SystemExit(f"--repeat {args.repeat}: give 1 or more")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.one_core:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    if args.checkpoint:
        from gazeneg.model.checkpoint import load_checkpoint

        model, ckpt = load_checkpoint(args.checkpoint)
        name = ckpt["model_name"]
    else:
        from gazeneg.model.networks import create_model

        model, name = create_model(args.model).eval(), args.model
    photo = cv2.imread(str(astronaut_path()), cv2.IMREAD_COLOR)
    n = args.warmup + args.frames
    frames = [f for f, _ in moving_face_frames(photo, n, size=(640, 480))]

    detector = make_detector(args.backend, alternate_iris=args.iris == "alternate")
    backend = getattr(detector, "backend", "haar")
    runtime = getattr(detector, "runtime", "cv2 cascades")
    if args.against:
        if not args.checkpoint:
            raise SystemExit("--against needs --checkpoint (the same weights in both versions)")
        args.against_pkg = import_other_version(args.against)
        print(f"paired: {args.against} against this code, each of {args.frames} frames (+{args.warmup} warm-up) "
              f"through both in turn, {backend}, one core: {args.one_core}; load average {_load()}")
        out = {f"run{r}": {"without": paired(args, frames, False), **({"with": paired(args, frames, True)}
                                                                     if args.outputs else {})}
               for r in range(1, args.repeat + 1)}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        return 0
    runs = [one_run(args, model, name, frames, backend, runtime, r) for r in range(1, args.repeat + 1)]
    out = runs[0][0] if args.repeat == 1 else {"runs": [r for r, _ in runs]}
    judged = [(wo if wo is not None else r["tracking"])["total"]["median_ms"] for r, wo in runs]
    if args.repeat > 1:
        def med(key, part):
            v = [(wo if part == "with" else r["tracking"])[key]["median_ms"] for r, wo in runs
                 if part != "with" or wo is not None]
            return float(np.median(v)) if v else float("nan")

        out["median_over_runs"] = {part: {k: med(k, part) for k in ("total", "cpu_total", "process_cpu")}
                                   for part in ("without", "with")}
        m = out["median_over_runs"]
        line = (f"median over {args.repeat} runs of the per-run medians: without outputs wall {m['without']['total']:.2f} "
                f"ms (thread CPU {m['without']['cpu_total']:.2f}, process CPU {m['without']['process_cpu']:.2f})")
        if args.outputs:
            line += (f"; with every output on wall {m['with']['total']:.2f} ms (thread CPU {m['with']['cpu_total']:.2f}, "
                     f"process CPU {m['with']['process_cpu']:.2f})")
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    judged_ms = float(np.median(judged))
    verdict = "meets" if judged_ms <= args.budget_ms else "MISSES"
    what = "with every output on" if args.outputs else "of the pipeline"
    print(f"wall-clock median {what} ({judged_ms:.2f} ms{', median over the runs' if args.repeat > 1 else ''}) "
          f"{verdict} the {args.budget_ms:g} ms budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
