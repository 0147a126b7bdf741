"""Throughput and peak memory of the streamed broadband -> LFP extraction (data-sources §6.1).

Prints one JSON object: int16-equivalent MB/s (n_samples * n_channels * 2 bytes / seconds, by
wall clock and by this process's CPU time), seconds, RSS before the run and peak RSS during it
(the peak count is restarted after building the input), and the settings.
The source is in memory: a synthetic int16 recording of `--pattern-seconds` repeated up to
`--seconds`, converted to float64 volts on every read as the NWB reader does. Run one duration
per process, since peak RSS is per process:

    python benchmarks/bench_lfp.py --seconds 60
    python benchmarks/bench_lfp.py --seconds 240
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from neuralcli.data.preprocess.lfp import LfpSettings, extract_broadband_lfp

FS = 24414.0625  # MakinRT broadband rate (data-sources §1.2)
CONVERSION = 2.5e-7  # volts per raw unit


class RepeatingInt16Source:
    """BroadbandSource over an int16 pattern repeated to n_samples; read() returns volts."""

    def __init__(self, pattern: np.ndarray, n_samples: int, fs: float):
        self.pattern = pattern  # (L, n) int16
        self.n_samples = n_samples
        self.n_channels = pattern.shape[1]
        self.sampling_rate = fs
        self.start_time = 0.0
        self.end_time = (n_samples - 1) / fs

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.n_channels))  # (stop - start, n) float64
        length = len(self.pattern)
        done = start
        while done < stop:
            offset = done % length
            take = min(stop - done, length - offset)
            np.multiply(
                self.pattern[offset : offset + take],
                CONVERSION,
                out=out[done - start : done - start + take],
            )
            done += take
        return out


def make_pattern(seconds: float, channels: int, seed: int) -> np.ndarray:
    """Noise + 10 Hz + 60 Hz + a 1 kHz tone in int16 raw units, (L, channels)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    tones = 400 * np.sin(2 * np.pi * 10 * t) + 200 * np.sin(2 * np.pi * 60 * t)
    tones += 50 * np.sin(2 * np.pi * 1000 * t)
    pattern = np.empty((n, channels), dtype=np.int16)
    for c in range(channels):
        noise = rng.normal(0, 300, n)
        pattern[:, c] = np.clip(tones + noise + rng.integers(-500, 500), -32768, 32767)
    return pattern


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count (Linux >= 4.0), so the input's construction is left out."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="signal length")
    parser.add_argument("--channels", type=int, default=96)
    parser.add_argument("--pattern-seconds", type=float, default=60.0)
    parser.add_argument("--max-memory-mb", type=float, default=2048.0)
    parser.add_argument("--profile", action="store_true", help="print a cProfile table first")
    args = parser.parse_args()

    pattern = make_pattern(min(args.pattern_seconds, args.seconds), args.channels, seed=0)
    source = RepeatingInt16Source(pattern, int(args.seconds * FS), FS)
    settings = LfpSettings()
    peak_was_reset = reset_peak_rss()
    rss_before = current_rss_mb()
    with tempfile.TemporaryDirectory() as workdir:

        def run():
            return extract_broadband_lfp(
                source,
                settings=settings,
                max_memory_bytes=int(args.max_memory_mb * 2**20),
                workdir=Path(workdir),
            )

        wall, cpu = time.perf_counter(), time.process_time()
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            stream = profiler.runcall(run)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
        else:
            stream = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    int16_mb = source.n_samples * source.n_channels * 2 / 1e6
    print(
        json.dumps(
            {
                "benchmark": "broadband_lfp",
                "signal_seconds": args.seconds,
                "channels": args.channels,
                "int16_mb": round(int16_mb, 1),
                "wall_seconds": round(wall, 2),
                "cpu_seconds": round(cpu, 2),
                "mb_per_s_wall": round(int16_mb / wall, 1),
                "mb_per_s_cpu": round(int16_mb / cpu, 1),
                "rss_mb_before": round(rss_before, 1),  # includes the int16 input pattern
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "peak_rss_increase_mb": round(peak_rss_mb() - rss_before, 1),
                "peak_reset": peak_was_reset,
                "output_shape": list(stream.lfp.shape),
                "output_rate_hz": stream.sampling_rate,
                "max_memory_mb": args.max_memory_mb,
                "settings": settings.to_dict(),
                "machine": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
