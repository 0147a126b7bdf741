"""Peak memory and throughput of `neuralcli data segment makin` against session length.

For each duration it writes one synthetic Makin session in the published layouts (sorted
spikes as MATLAB v7.3, 96-channel int16 broadband at 24414.0625 Hz as NWB 1.x HDF5), runs the
real command in a child process and prints one JSON line: the child's peak RSS (from wait4),
wall seconds, MB/s of int16 broadband processed (file payload / wall seconds), the output's
segment counts, and the settings. The bar (issue 3): peak RSS under 2 GiB for 2, 10 and 30
minutes, flat in the session length, and at least 50 MB/s per core.

    python benchmarks/bench_segment.py --minutes 2 10 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from neuralcli.data.sources.makin_remote import makin_raw_paths
from neuralcli.testing.raw_layouts import (
    fake_broadband,
    fake_makin_session,
    write_broadband_nwb1,
    write_makin_mat,
)

SESSION = "20160622_01"
RATE_HZ = 24414.0625  # data-sources §1.2


def write_session(home: Path, minutes: float, channels: int) -> int:
    """Raw files of one session under home/raw/makin; returns the broadband payload in bytes."""
    mat_path, nwb_path = makin_raw_paths(home, SESSION)
    mat_path.parent.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60.0
    fake = fake_makin_session(0, duration_seconds=seconds, n_channels=channels)
    write_makin_mat(mat_path, **fake._asdict())
    n_samples = int((seconds + 2.0) * RATE_HZ)  # broadband spans the whole .mat clock
    write_broadband_nwb1(
        nwb_path,
        data_int16=fake_broadband(1, channels, sampling_rate=RATE_HZ),
        n_samples=n_samples,
        n_channels=channels,
        sampling_rate=RATE_HZ,
        chunk_rows=4096,
    )
    return n_samples * channels * 2


def run_segment(home: Path, max_memory: str) -> tuple[dict, float, int, float]:
    """Run the CLI in a child: (its JSON output, wall seconds, peak RSS bytes, CPU seconds)."""
    command = [
        sys.executable,
        "-c",
        "from neuralcli.cli.main import run; run()",
        "--home",
        str(home),
        "--json",
        "data",
        "segment",
        "makin",
        "--sessions",
        SESSION,
        "--max-memory",
        max_memory,
    ]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = child.communicate()
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"data segment failed ({child.returncode}): {stderr.decode()[-2000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    # ru_maxrss of RUSAGE_CHILDREN is the largest of all waited-for children (KiB on Linux);
    # every measurement runs in its own benchmark process (see main), so it is this child's.
    return json.loads(stdout), seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def measure(minutes: float, channels: int, max_memory: str, workdir: Path | None) -> dict:
    home = Path(tempfile.mkdtemp(prefix="bench-segment-", dir=workdir))
    try:
        write_started = time.perf_counter()
        payload = write_session(home, minutes, channels)
        write_seconds = time.perf_counter() - write_started
        output, seconds, peak, cpu_seconds = run_segment(home, max_memory)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    (session,) = output["sessions"]
    return {
        "benchmark": "data segment makin",
        "minutes": minutes,
        "channels": channels,
        "broadband_rate_hz": RATE_HZ,
        "broadband_mb": round(payload / 1e6, 1),
        "seconds": round(seconds, 1),
        "mb_per_s": round(payload / 1e6 / seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "mb_per_cpu_s": round(payload / 1e6 / cpu_seconds, 1),  # per core
        "peak_rss_mb": round(peak / 2**20, 1),
        "max_memory": max_memory,
        "segments": session["n_segments"],
        "units": session["n_units"],
        "write_seconds": round(write_seconds, 1),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 10.0, 30.0])
    parser.add_argument("--channels", type=int, default=96)
    parser.add_argument("--max-memory", default="2GiB")
    parser.add_argument("--workdir", type=Path, default=None, help="where the files go (big)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        (minutes,) = args.minutes
        print(json.dumps(measure(minutes, args.channels, args.max_memory, args.workdir)))
        return
    # One benchmark process per duration: RUSAGE_CHILDREN's peak never goes down.
    for minutes in args.minutes:
        command = [sys.executable, __file__, "--one", "--minutes", str(minutes)]
        command += ["--channels", str(args.channels), "--max-memory", args.max_memory]
        if args.workdir is not None:
            command += ["--workdir", str(args.workdir)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
