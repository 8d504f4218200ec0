"""The studio's HTTP API and its rules, without a browser: a studio on a free port with a tiny model made in the test.

    .venv/bin/pytest tests/studio/test_studio_api.py -q

* uploads: a type the studio does not take is refused (415), one over the cap is refused unread (413), a corrupt
  recording gives the line `audiogen continue` prints for it, and none of them leaves a file;
* downloads: only files the server recorded for a finished job, whole or by byte range; path traversal, unknown
  jobs and files it did not make are 404s; and a request addressed to another host, or from another site, is 403;
* a job that fails while it runs leaves neither its folder nor its upload; jobs run one at a time, in order;
* `progress.observe` sees the bars made in its own thread (quiet ones too) and no other thread's;
* `audiogen serve` starts, answers, and stops on Ctrl-C with status 0; a port in use is one line.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pretty_midi
import pytest
import soundfile as sf
from conftest import sigint_default
from studio_helpers import call, files_under, running_studio, submit, upload
from tinymodel import SAMPLE_RATE, run_main, write_seed, write_sketch

from audiogen import AudioGen, AudiogenError
from audiogen.generation.options import SamplingConfig
from audiogen.progress import bar, observe
from audiogen.studio import Studio, make_server


@pytest.fixture
def studio(tiny_engine: AudioGen, tmp_path: Path):
    out = tmp_path / "studio-out"
    with running_studio(tiny_engine, out, max_upload_mb=1.0) as (url, studio):
        yield url, out, studio


def wait_for(url: str, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = {j["id"]: j for j in call(url, "/api/jobs")[1]["jobs"]}
        if jobs[job_id]["state"] in ("done", "failed"):
            return jobs[job_id]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_info_states_the_library_defaults(studio) -> None:
    url, _, _ = studio
    status, info = call(url, "/api/info")
    assert status == 200 and info["sample_rate"] == SAMPLE_RATE and info["conditional"] is True
    assert info["defaults"]["sampling"] == dataclasses.asdict(SamplingConfig())
    assert info["max_upload_bytes"] == 1_000_000 and info["upload_types"]["midi"] == [".mid", ".midi"]
    status, page = call(url, "/")
    assert status == 200 and b"/static/app.js" in page


def test_uploads_are_checked_and_bad_ones_leave_nothing(studio, tmp_path: Path, capsys, monkeypatch) -> None:
    url, out, _ = studio
    notes = tmp_path / "notes.txt"
    notes.write_text("not music")
    status, body = upload(url, notes, "midi")
    assert status == 415 and body["error"] == "audiogen: error: notes.txt: a MIDI sketch must be a .mid, .midi file"
    # Over the cap: answered from the headers alone, the body never sent (nor read).
    status, body = call(url, "/api/uploads?kind=audio", body=b"",
                        headers={"X-Filename": "huge.wav", "Content-Length": str(5_000_000)})
    assert status == 413 and body["error"] == "audiogen: error: huge.wav: 5.0 MB is over the 1 MB upload limit"
    # A corrupt recording: the line `audiogen continue` prints for the same file.
    seed = tmp_path / "seed.wav"
    seed.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert run_main("continue", "seed.wav", "-o", "out.wav", "--model", "nowhere") == 2
    expected = capsys.readouterr().err.strip()
    status, body = upload(url, seed, "audio")
    assert status == 400 and body["error"] == expected == "audiogen: error: seed.wav: not a readable audio file"
    status, body = call(url, "/api/uploads?kind=audio", body=b"abc")  # no name: no type
    assert status == 415
    # An upload no job took is given back on request (the page does when another file of the request is refused).
    status, sketch = upload(url, write_sketch(tmp_path / "sketch.mid"), "midi")
    assert status == 201 and len(files_under(out)) == 1
    assert call(url, f"/api/uploads/{sketch['id']}", method="DELETE")[0] == 204
    assert call(url, f"/api/uploads/{sketch['id']}", method="DELETE")[0] == 404
    assert files_under(out) == []


def test_downloads_are_only_the_files_a_job_made(studio, tmp_path: Path) -> None:
    url, out, _ = studio
    status, seed = upload(url, write_seed(tmp_path / "seed.wav", seconds=0.3), "audio")
    assert status == 201 and seed["name"] == "seed.wav"
    params = {"seconds": 0.25, "format": "flac", "seed": 1, "guidance": 2.0}  # (continue takes guidance too)
    status, body = submit(url, {"task": "continue", "params": params, "uploads": {"seed_audio": seed["id"]}})
    assert status == 202
    job = wait_for(url, body["job"]["id"])
    assert job["state"] == "done", job["error"]
    assert job["files"] == ["continue.flac", "continue.png"] and job["inputs"] == {"seed_audio": "seed.wav"}
    # The studio wrote only in its folder, and kept no upload once the job was done.
    assert files_under(out) == [f"{job['id']}/continue.flac", f"{job['id']}/continue.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed.wav", "studio-out"]
    status, data = call(url, f"/files/{job['id']}/continue.flac")
    assert status == 200 and data == (out / job["id"] / "continue.flac").read_bytes()
    info = sf.info(str(out / job["id"] / "continue.flac"))
    assert info.samplerate == SAMPLE_RATE and info.frames == int(0.3 * SAMPLE_RATE) + int(0.25 * SAMPLE_RATE)
    status, part = call(url, f"/files/{job['id']}/continue.flac", headers={"Range": "bytes=4-9"})
    assert status == 206 and part == data[4:10]
    (out / job["id"] / "extra.wav").write_bytes(b"not the studio's")  # in the folder, but not made by the job
    for path in (f"/files/{job['id']}/extra.wav", f"/files/{job['id']}/../{job['id']}/continue.flac",
                 f"/files/{job['id']}/..%2f..%2fseed.wav", f"/files/{job['id']}/%2e%2e", "/files/../../etc/passwd",
                 "/files/00000000/continue.flac", f"/files/{job['id']}/.", "/static/../jobs.py"):
        status, body = call(url, path)
        assert status == 404, path


def test_other_hosts_and_sites_are_refused(studio, tmp_path: Path) -> None:
    url, out, _ = studio
    port = url.rstrip("/").rsplit(":", 1)[1]
    status, body = call(url, "/api/info", headers={"Host": f"attacker.example:{port}"})
    assert status == 403 and body["error"].startswith("audiogen: error: ")
    status, body = call(url, "/api/uploads?kind=midi", body=write_sketch(tmp_path / "s.mid").read_bytes(),
                        headers={"X-Filename": "s.mid", "Origin": "http://attacker.example"})
    assert status == 403
    status, _ = call(url, "/api/info", headers={"Host": f"localhost:{port}"})
    assert status == 200
    assert files_under(out) == []


def test_a_job_that_fails_while_running_leaves_nothing(studio, tmp_path: Path) -> None:
    url, out, _ = studio
    late = pretty_midi.PrettyMIDI(initial_tempo=120)  # its only note comes long after the loop's one bar
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(90, 60, 30.0, 31.0))
    late.instruments.append(piano)
    late.write(str(tmp_path / "late.mid"))
    status, sketch = upload(url, tmp_path / "late.mid", "midi")
    assert status == 201
    status, body = submit(url, {"task": "loops", "params": {"count": 1, "bars": 1}, "uploads": {"midi": sketch["id"]}})
    assert status == 202
    job = wait_for(url, body["job"]["id"])
    assert job["state"] == "failed" and job["files"] == []
    assert job["error"] == "audiogen: error: the MIDI sketch has no notes in its first 1 bars"
    assert files_under(out) == []
    # An impossible parameter is refused before the queue, its upload removed with it.
    status, sketch = upload(url, write_sketch(tmp_path / "ok.mid"), "midi")
    status, body = submit(url, {"task": "render", "params": {"temperature": -1}, "uploads": {"midi": sketch["id"]}})
    assert status == 400 and body["error"].startswith("audiogen: error: sampling: temperature must be")
    status, body = submit(url, {"task": "loops", "params": {"bars": "four"}})
    assert status == 400 and body["error"] == "audiogen: error: --bars must be a whole number, got 'four'"
    status, body = submit(url, {"task": "render", "params": {}, "uploads": {"midi": sketch["id"]}})
    assert status == 400 and body["error"] == (f"audiogen: error: upload '{sketch['id']}' is unknown or already "
                                               "used: upload the file again")
    assert files_under(out) == []


def test_jobs_run_one_at_a_time_in_order(studio, tmp_path: Path) -> None:
    url, _, _ = studio
    ids = []
    for seed in range(3):
        status, body = submit(url, {"task": "loops", "params": {"count": 1, "bars": 1, "bpm": 400.0,
                                                                "beats_per_bar": 1, "compose": False, "seed": seed}})
        assert status == 202
        ids.append(body["job"]["id"])
    seen_running = []
    while True:
        jobs = {j["id"]: j for j in call(url, "/api/jobs")[1]["jobs"]}
        running = [i for i in ids if jobs[i]["state"] == "running"]
        assert len(running) <= 1
        seen_running += running
        queued = sorted(jobs[i]["position"] for i in ids if jobs[i]["state"] == "queued")
        assert queued == list(range(1, len(queued) + 1))
        if all(jobs[i]["state"] == "done" for i in ids):
            break
        time.sleep(0.02)
    jobs = [jobs[i] for i in ids]
    assert all(a["finished"] <= b["started"] for a, b in zip(jobs, jobs[1:]))
    assert seen_running  # the poll saw a job running (the page shows its progress then)


def test_progress_observe_sees_its_own_threads_bars() -> None:
    seen: list[tuple[str, float, float | None]] = []
    with observe(lambda desc, done, total: seen.append((desc, done, total))):
        progress = bar(3, "render", quiet=True)  # quiet: nothing printed, still counted
        for _ in range(3):
            progress.update(1)
        progress.close()
        other = threading.Thread(target=lambda: bar(5, "elsewhere", quiet=True).update(5))
        other.start()
        other.join()
    bar(2, "after", quiet=True).update(2)
    assert seen == [("render", 0, 3), ("render", 1, 3), ("render", 2, 3), ("render", 3, 3)]


def test_serve_command_starts_answers_and_stops(tiny_model: Path, tmp_path: Path, tiny_engine: AudioGen) -> None:
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "audiogen", "serve", "--model", str(tiny_model), "--port", "0",
                             "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--quiet"],
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=sigint_default)
    try:
        lines = [proc.stderr.readline()]
        while not lines[-1].startswith("audiogen studio: ") and lines[-1] and len(lines) < 50:
            lines.append(proc.stderr.readline())  # (anything a library prints first)
        line = lines[-1]
        assert line.startswith("audiogen studio: http://127.0.0.1:"), lines
        url = line.split()[2]
        status, info = call(url, "/api/info")
        assert status == 200 and info["model"] == "tiny"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    # A port in use is one line, as the CLI prints it.
    studio = Studio(tiny_engine, out_dir=tmp_path / "out2")
    first = make_server(studio, port=0)
    try:
        with pytest.raises(AudiogenError, match=rf"cannot listen on 127.0.0.1:{first.port}: .*another --port"):
            make_server(studio, port=first.port)
    finally:
        first.server_close()


def test_compose_writes_the_sketch_asked_for(studio, tmp_path: Path) -> None:
    url, out, _ = studio
    status, body = submit(url, {"task": "compose", "params": {"bars": 2, "meter": "3/4", "bpm": 90.0, "seed": 1}})
    assert status == 202
    job = wait_for(url, body["job"]["id"])
    assert job["state"] == "done", job["error"]
    assert job["files"] == ["compose.mid"] and job["items"][0]["midi"] == "compose.mid"
    status, data = call(url, f"/files/{job['id']}/compose.mid?download=1")
    assert status == 200 and data == (out / job["id"] / "compose.mid").read_bytes()
    (tmp_path / "got.mid").write_bytes(data)
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "got.mid"))
    signature = pm.time_signature_changes[0]
    assert (signature.numerator, signature.denominator) == (3, 4)
    assert 0 < pm.get_end_time() <= 2 * 3 * 60 / 90 + 1e-6  # two bars of 3/4 at 90 quarter notes a minute
