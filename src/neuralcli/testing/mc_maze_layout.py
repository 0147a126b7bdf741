"""Tiny NWB 2 files in the layout of DANDI 000128 MC_Maze (data-sources §3), written with pynwb.

- train file (`*_desc-train_behavior+ecephys.nwb`): electrodes in two groups (M1, PMd), units
  with `spike_times`, `obs_intervals`, `electrodes` and a `heldout` column, the trials table
  with every column of §3 (ragged `target_pos` / `barrier_pos` included) and
  `processing/behavior` with `hand_vel` (TimeSeries, mm/s) and `hand_pos`, `cursor_pos`
  (SpatialSeries, mm) on shared nominally 1 kHz timestamps with a few samples missing;
- test file (`*_desc-test_ecephys.nwb`): held-in units only and trials with start, stop,
  move onset and split "test".

`fake_mc_maze_session` makes content with known spikes: Poisson trains on a 0.1 ms lattice
plus spikes placed on 1 ms and 5 ms bin edges (where the binning rule matters), an
observation gap that covers one train trial's window, one trial of split "none" and one
without a move onset.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

TRIAL_SECONDS = 1.0
FIRST_TRIAL_START = 0.2
MOVE_ONSET_AFTER_START = 0.45
SAMPLE_SECONDS = 0.001


class FakeMcMazeSession(NamedTuple):
    """Everything written to a fake train/test file pair, in file order."""

    unit_ids: np.ndarray  # (U,) int64
    heldout: np.ndarray  # (U,) bool
    spike_times: list[np.ndarray]  # per unit, seconds (train file)
    obs_intervals: np.ndarray  # (k, 2) seconds, shared by all units
    start_time: np.ndarray  # (n,) train-file trials
    stop_time: np.ndarray
    move_onset_time: np.ndarray  # NaN for the trial without a move onset
    split: np.ndarray  # (n,) str
    target_pos: list[np.ndarray]  # per trial (m, 2) mm
    hand_timestamps: np.ndarray  # (K,) seconds, with gaps
    hand_vel: np.ndarray  # (K, 2) mm/s
    hand_pos: np.ndarray  # (K, 2) mm
    gap_trial: int  # train-trial row whose spike window falls in the observation gap
    test_start_time: np.ndarray  # (m,) test-file trials
    test_stop_time: np.ndarray
    test_move_onset_time: np.ndarray
    test_spike_times: list[np.ndarray]  # per held-in unit, seconds (test file)


def fake_mc_maze_session(
    *,
    splits: Sequence[str] = (
        "train",
        "val",
        "train",
        "train",
        "val",
        "none",
        "train",
        "val",
        "train",
        "val",
        "train",
        "val",
        "train",
        "train",
        "val",
        "val",
        "train",
        "val",
    ),  # fmt: skip
    heldout: Sequence[bool] = (False, True, False, False, True, False),
    n_test_trials: int = 3,
    rate_hz: float = 40.0,
    no_onset_trial: int = 12,
    gap_trial: int = 3,
    seed: int = 0,
) -> FakeMcMazeSession:
    """Plausible tiny content; trial i starts at 0.2 + i s and moves 0.45 s later."""
    rng = np.random.default_rng(seed)
    n_trials = len(splits)
    split = np.array(splits)
    start = FIRST_TRIAL_START + TRIAL_SECONDS * np.arange(n_trials)
    # Onsets on whole milliseconds, some on 5 ms grid points and some between.
    onset = start + MOVE_ONSET_AFTER_START + rng.integers(0, 20, n_trials) / 1000.0
    onset[no_onset_trial] = np.nan
    stop = start + 0.95
    end = float(start[-1] + TRIAL_SECONDS + 1.0)
    # The gap covers [onset - 0.2, onset + 0.1] of one train trial: its window has NaN bins.
    gap_onset = start[gap_trial] + MOVE_ONSET_AFTER_START
    obs_intervals = np.array([[0.0, gap_onset - 0.2], [gap_onset + 0.1, end]])

    heldout_flags = np.asarray(heldout, dtype=bool)
    edge_spikes = np.array([0.0049999999, 0.005, 0.0050000001, 0.0099999996, 0.0105])
    spike_times = []
    for unit in range(len(heldout_flags)):
        count = rng.poisson(rate_hz * end)
        lattice = np.sort(rng.integers(0, int(end * 10_000), count)) / 10_000.0
        # Edge spikes shifted into each trial's spike window, per unit.
        shifts = start[unit % n_trials :: 3] + 0.5
        edges = (shifts[:, None] + edge_spikes[None, :]).ravel()
        times = np.sort(np.concatenate([lattice, edges]))
        inside = np.zeros(len(times), dtype=bool)
        for low, high in obs_intervals:
            inside |= (times >= low) & (times < high)
        spike_times.append(times[inside])

    samples = np.arange(0, int(round(end / SAMPLE_SECONDS))) * SAMPLE_SECONDS
    # Missing samples on 5 ms grid points, where nlb_tools would leave NaN velocity bins.
    missing = rng.choice(np.arange(100, len(samples) - 100, 5), size=12, replace=False)
    hand_timestamps = np.delete(samples, missing)
    hand_vel = np.stack(
        [
            120.0 * np.cos(2 * np.pi * hand_timestamps / 1.3),
            80.0 * np.sin(2 * np.pi * hand_timestamps / 0.9 + 0.4),
        ],
        axis=1,
    )
    hand_pos = np.cumsum(hand_vel, axis=0) * SAMPLE_SECONDS

    target_pos = [
        rng.uniform(-100, 100, size=(int(rng.integers(1, 4)), 2)) for _ in range(n_trials)
    ]

    test_start = end + 0.5 + TRIAL_SECONDS * np.arange(n_test_trials)
    test_end = float(test_start[-1] + 2 * TRIAL_SECONDS)
    test_spikes = []
    for _ in range(int((~heldout_flags).sum())):
        count = rng.poisson(rate_hz * (test_end - test_start[0]))
        test_spikes.append(np.sort(rng.uniform(test_start[0], test_end, count)))

    return FakeMcMazeSession(
        unit_ids=np.arange(len(heldout_flags), dtype=np.int64),
        heldout=heldout_flags,
        spike_times=spike_times,
        obs_intervals=obs_intervals,
        start_time=start,
        stop_time=stop,
        move_onset_time=onset,
        split=split,
        target_pos=target_pos,
        hand_timestamps=hand_timestamps,
        hand_vel=hand_vel,
        hand_pos=hand_pos,
        gap_trial=gap_trial,
        test_start_time=test_start,
        test_stop_time=test_start + 0.95,
        test_move_onset_time=test_start + MOVE_ONSET_AFTER_START,
        test_spike_times=test_spikes,
    )


def _new_file(identifier: str, description: str):  # -> pynwb.NWBFile
    from pynwb import NWBFile
    from pynwb.file import Subject

    nwb = NWBFile(
        session_description=description,
        identifier=identifier,
        session_start_time=dt.datetime(2009, 9, 25, tzinfo=dt.timezone.utc),
        subject=Subject(subject_id="Jenkins", species="Macaca mulatta"),
    )
    device = nwb.create_device("electrode_array", description="two 96-channel Utah arrays")
    for area in ("M1", "PMd"):
        group = nwb.create_electrode_group(
            area, description=f"{area} array", location=area, device=device
        )
        for _ in range(4):
            nwb.add_electrode(group=group, location=area)
    return nwb


def write_mc_maze_train_nwb(path: str | Path, session: FakeMcMazeSession) -> Path:
    """The train file: units (held-in and held-out), full trials table, behaviour."""
    from pynwb import TimeSeries
    from pynwb.behavior import SpatialSeries

    nwb = _new_file("mc_maze_train", "fake MC_Maze train file")
    nwb.add_unit_column("heldout", "whether the unit is held out")
    n_electrodes = 8
    for index, unit_id in enumerate(session.unit_ids):
        nwb.add_unit(
            id=int(unit_id),
            spike_times=session.spike_times[index],
            obs_intervals=session.obs_intervals,
            electrodes=[index % n_electrodes],
            heldout=bool(session.heldout[index]),
        )
    columns = {
        "move_onset_time": "movement onset (s)",
        "go_cue_time": "go cue (s)",
        "target_on_time": "target onset (s)",
        "delay": "delay period (ms)",
        "rt": "reaction time (ms)",
        "active_target": "index of the reached target",
        "num_targets": "number of targets",
        "num_barriers": "number of barriers",
        "maze_id": "maze id",
        "trial_type": "trial type",
        "trial_version": "trial version (0/1/2)",
        "success": "trial succeeded",
        "split": "NLB split",
    }
    for name, description in columns.items():
        nwb.add_trial_column(name, description)
    nwb.add_trial_column("target_pos", "target positions (mm)", index=True)
    nwb.add_trial_column("barrier_pos", "barrier positions (mm)", index=True)
    for i in range(len(session.start_time)):
        onset = float(session.move_onset_time[i])
        anchor = onset if np.isfinite(onset) else float(session.start_time[i] + 0.45)
        targets = session.target_pos[i]
        nwb.add_trial(
            start_time=float(session.start_time[i]),
            stop_time=float(session.stop_time[i]),
            move_onset_time=onset,
            go_cue_time=anchor - 0.3,
            target_on_time=anchor - 0.4,
            delay=100.0,
            rt=300.0,
            target_pos=targets,
            active_target=0,
            barrier_pos=np.zeros((1, 4)),
            num_targets=len(targets),
            num_barriers=1,
            maze_id=i % 3,
            trial_type=i % 3,
            trial_version=i % 3,
            success=True,
            split=str(session.split[i]),
        )
    behaviour = nwb.create_processing_module("behavior", "hand and cursor kinematics")
    hand_vel = TimeSeries(
        name="hand_vel",
        data=session.hand_vel,
        unit="mm/s",
        timestamps=session.hand_timestamps,
        description="hand velocity",
        comments="columns=[x,y]",
    )
    behaviour.add(hand_vel)
    for name in ("hand_pos", "cursor_pos"):
        behaviour.add(
            SpatialSeries(
                name=name,
                data=session.hand_pos,
                timestamps=hand_vel,  # shared timestamps (one dataset, linked)
                reference_frame="screen centre",
                unit="mm",
                description=name.replace("_", " "),
            )
        )
    return _write(nwb, path)


def write_mc_maze_test_nwb(path: str | Path, session: FakeMcMazeSession) -> Path:
    """The test file: held-in units only; trials with start, stop, move onset, split."""
    nwb = _new_file("mc_maze_test", "fake MC_Maze test file")
    nwb.add_unit_column("heldout", "whether the unit is held out")
    end = float(session.test_stop_time[-1] + 1.0)
    heldin_ids = session.unit_ids[~session.heldout]
    for index, unit_id in enumerate(heldin_ids):
        nwb.add_unit(
            id=int(unit_id),
            spike_times=session.test_spike_times[index],
            obs_intervals=np.array([[float(session.test_start_time[0]) - 0.5, end]]),
            electrodes=[index % 8],
            heldout=False,
        )
    nwb.add_trial_column("move_onset_time", "movement onset (s)")
    nwb.add_trial_column("split", "NLB split")
    for i in range(len(session.test_start_time)):
        nwb.add_trial(
            start_time=float(session.test_start_time[i]),
            stop_time=float(session.test_stop_time[i]),
            move_onset_time=float(session.test_move_onset_time[i]),
            split="test",
        )
    return _write(nwb, path)


def _write(nwb, path: str | Path) -> Path:  # nwb: pynwb.NWBFile
    from pynwb import NWBHDF5IO

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


# --------------------------------------------------------------------------------------------
# A fake DANDI API for pytest-httpserver (127.0.0.1 only)
# --------------------------------------------------------------------------------------------


class FakeDandiArchive:
    """Answers the endpoints the `dandi` client and the downloader call (see
    neuralcli.data.sources.dandi) from files held in memory.

    `httpserver` is a pytest-httpserver server; `base_url` is the API base to pass as
    api_url / NEURALCLI_DANDI_API_URL. Downloads redirect to `/blobs/<asset_id>` like the
    archive redirects to storage, and honour `Range: bytes=N-`. `listed_digests` lets a test
    list wrong digests.
    """

    def __init__(self, httpserver) -> None:  # httpserver: pytest_httpserver.HTTPServer
        import re

        self.server = httpserver
        self.base_url = httpserver.url_for("/api").rstrip("/")
        self.dandisets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.asset_ids: dict[tuple[str, str, str], str] = {}
        self.bodies: dict[str, bytes] = {}
        self.listed_digests: dict[str, dict[str, str]] = {}
        httpserver.expect_request("/server-info").respond_with_json(
            {
                "version": "0.0.0",
                "services": {"api": {"url": self.base_url}},
                "cli-minimal-version": "0.0.0",
                "cli-bad-versions": [],
            }
        )
        httpserver.expect_request(re.compile(r"^/api/.*")).respond_with_handler(self._api)
        httpserver.expect_request(re.compile(r"^/blobs/.*")).respond_with_handler(self._blob)

    def add_dandiset(self, dandiset_id: str, version: str, files: dict[str, bytes]) -> None:
        """Publish `files` (dandiset path -> bytes) as `dandiset_id` at `version`."""
        self.dandisets[(dandiset_id, version)] = dict(files)
        for path, body in files.items():
            asset_id = f"asset-{len(self.bodies):04d}"
            self.asset_ids[(dandiset_id, version, path)] = asset_id
            self.bodies[asset_id] = body
            self.listed_digests[asset_id] = {
                "dandi:dandi-etag": _single_part_etag(body),
                "dandi:sha2-256": hashlib.sha256(body).hexdigest(),
            }

    def asset_id(self, dandiset_id: str, version: str, path: str) -> str:
        return self.asset_ids[(dandiset_id, version, path)]

    def blob_requests(self) -> list[tuple[str, str | None]]:
        """(asset id, Range header) of every body request so far."""
        return [
            (request.path.rsplit("/", 1)[-1], request.headers.get("Range"))
            for request, _ in self.server.log
            if request.path.startswith("/blobs/")
        ]

    def _api(self, request):  # werkzeug Request -> Response
        from werkzeug import Response

        parts = [p for p in request.path.split("/") if p]  # api, dandisets, id, versions, ...
        if len(parts) == 4 and parts[1] == "assets" and parts[3] == "download":
            if parts[2] not in self.bodies:
                return _json({"detail": "Not found."}, 404)
            return Response(status=302, headers={"Location": f"/blobs/{parts[2]}"})
        if len(parts) >= 6 and parts[1] == "dandisets" and parts[3] == "versions":
            key = (parts[2], parts[4])
            if key not in self.dandisets or parts[5] != "assets":
                return _json({"detail": "Not found."}, 404)
            if len(parts) == 6:
                return _json(self._listing(key, request.args.get("path", "")))
            if len(parts) == 7:
                return self._metadata(key, parts[6])
        return _json({"detail": "Not found."}, 404)

    def _listing(self, key: tuple[str, str], prefix: str) -> dict:
        results = [
            {
                "asset_id": self.asset_ids[(*key, path)],
                "blob": f"blob-{self.asset_ids[(*key, path)]}",
                "zarr": None,
                "path": path,
                "size": len(body),
                "created": "2022-01-13T04:00:00Z",
                "modified": "2022-01-13T04:00:00Z",
            }
            for path, body in sorted(self.dandisets[key].items())
            if path.startswith(prefix)
        ]
        return {"count": len(results), "next": None, "previous": None, "results": results}

    def _metadata(self, key: tuple[str, str], asset_id: str):
        paths = [p for p in self.dandisets[key] if self.asset_ids[(*key, p)] == asset_id]
        if not paths:
            return _json({"detail": "Not found."}, 404)
        body = self.bodies[asset_id]
        return _json(
            {
                "identifier": asset_id,
                "path": paths[0],
                "contentSize": len(body),
                "encodingFormat": "application/x-nwb",
                "digest": self.listed_digests[asset_id],
                "contentUrl": [f"{self.base_url}/assets/{asset_id}/download/"],
            }
        )

    def _blob(self, request):
        from werkzeug import Response

        asset_id = request.path.rsplit("/", 1)[-1]
        body = self.bodies.get(asset_id)
        if body is None:
            return Response(b"no such blob", status=404)
        spec = request.headers.get("Range", "")
        if spec.startswith("bytes=") and spec.endswith("-"):
            start = int(spec[len("bytes=") : -1])
            if start >= len(body):
                return Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
            return Response(
                body[start:],
                status=206,
                headers={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"},
                content_type="application/octet-stream",
            )
        return Response(body, status=200, content_type="application/octet-stream")


def _single_part_etag(body: bytes) -> str:
    """DANDI ETag of a file below 64 MiB: MD5 of the one part's MD5, then "-1"."""
    return hashlib.md5(hashlib.md5(body).digest()).hexdigest() + "-1"


def _json(payload: dict, status: int = 200):
    from werkzeug import Response

    return Response(json.dumps(payload), status=status, content_type="application/json")
