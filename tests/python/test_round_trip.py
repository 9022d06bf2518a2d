"""Traces written through the writer: well-formed JSON Lines, header first, read back by the
Python checker, and (with SPECSTATE_BIN) accepted by `specstate validate`."""

import io
import json
import os
import subprocess
import sys

import pytest

from schedules import write_random_schedule
from specstate_trace import TraceError, TraceWriter, read_trace

SEEDS = range(40)
HEADER_KEYS = ["specstate_trace", "preset", "tp", "ssm_dtype", "draft_tokens", "pool_rows",
               "max_requests", "page_size", "seed"]
EVENTS = {"extend", "verify", "decode", "retract", "resume", "finish", "check"}
REPO = os.path.join(os.path.dirname(__file__), "..", "..")


def _json_lines(path):
    lines = [l for l in path.read_text().split("\n")]
    assert lines[-1] == "", "the trace ends with a newline"
    return [l for l in lines[:-1] if l and not l.startswith("#")]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_schedule_is_well_formed(tmp_path, seed):
    path = tmp_path / f"random{seed}.trace"
    hdr = write_random_schedule(path, seed)
    first = path.read_text().split("\n", 1)[0]
    header = json.loads(first)
    assert list(header) == HEADER_KEYS
    assert header["specstate_trace"] == 1
    assert {k: header[k] for k in hdr} == hdr
    events = [json.loads(l) for l in _json_lines(path)[1:]]
    assert events, "a schedule has events"
    for e in events:
        assert isinstance(e, dict) and e["event"] in EVENTS
        assert "specstate_trace" not in e
    assert events[-1] == {"event": "check"}
    # The Python checker reads back exactly what was written.
    header_back, events_back = read_trace(path)
    assert header_back == header
    assert [e for _, e in events_back] == events


def test_random_schedules_cover_every_event(tmp_path):
    seen = set()
    prefix_hits = tracks = 0
    for seed in SEEDS:
        path = tmp_path / f"r{seed}.trace"
        write_random_schedule(path, seed)
        for l in _json_lines(path)[1:]:
            e = json.loads(l)
            seen.add(e["event"])
            prefix_hits += e.get("prefix_len", 0) > 0
            tracks += bool(e.get("track")) + sum("track" in b for b in e.get("batch", []))
    assert seen == EVENTS
    assert prefix_hits >= 5 and tracks >= 20, (prefix_hits, tracks)


def test_golden_lines():
    buf = io.StringIO()
    with TraceWriter(buf, preset="tiny", draft_tokens=3, pool_rows=64, max_requests=32,
                     page_size=16, seed=1) as w:
        w.extend(4, 45, req_row=1, working_row=6, track=[(32, 12)])
        w.extend(5, 37, req_row=2, working_row=7, prefix_len=32, cow_src_row=12,
                 track=[{"length": 64, "row": 13}])
        w.verify([{"request": 5, "accepted": 3}, (4, 4, {"length": 48, "row": 20})],
                 padding=2)
        w.decode([5])
        w.retract(5)
        w.resume(5, req_row=3, working_row=9)
        w.finish(5)
        w.check()
    assert buf.getvalue().splitlines() == [
        '{"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, '
        '"pool_rows": 64, "max_requests": 32, "page_size": 16, "seed": 1}',
        '{"event": "extend", "request": 4, "req_row": 1, "working_row": 6, "tokens": 45, '
        '"track": [{"length": 32, "row": 12}]}',
        '{"event": "extend", "request": 5, "req_row": 2, "working_row": 7, "tokens": 37, '
        '"prefix_len": 32, "cow_src_row": 12, "track": [{"length": 64, "row": 13}]}',
        '{"event": "verify", "batch": [{"request": 5, "accepted": 3}, {"request": 4, "accepted": 4, '
        '"track": {"length": 48, "row": 20}}], "padding": 2}',
        '{"event": "decode", "batch": [{"request": 5}], "padding": 0}',
        '{"event": "retract", "request": 5}',
        '{"event": "resume", "request": 5, "req_row": 3, "working_row": 9}',
        '{"event": "finish", "request": 5}',
        '{"event": "check"}',
    ]


def test_flushes_per_event(tmp_path):
    path = tmp_path / "live.trace"
    w = TraceWriter(path, preset="tiny", draft_tokens=1, pool_rows=4, max_requests=2)
    assert len(path.read_text().splitlines()) == 1
    w.extend(1, 3, req_row=0, working_row=0)
    assert len(path.read_text().splitlines()) == 2  # visible before close
    w.close()


def test_demo_command(tmp_path):
    path = tmp_path / "demo.trace"
    env = dict(os.environ, PYTHONPATH=os.path.abspath(os.path.join(REPO, "python")))
    out = subprocess.run([sys.executable, "-m", "specstate_trace", "demo", "-o", str(path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    header, events = read_trace(path)
    kinds = {e["event"] for _, e in events}
    assert kinds == EVENTS
    assert any(e.get("prefix_len") for _, e in events)
    check = subprocess.run([sys.executable, "-m", "specstate_trace", "check", str(path)],
                           capture_output=True, text=True, env=env, timeout=60)
    assert check.returncode == 0 and "OK" in check.stdout, check.stderr


def test_check_command_reports_file_and_line(tmp_path):
    path = tmp_path / "bad.trace"
    path.write_text('{"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", '
                    '"draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, '
                    '"seed": 1}\n# comment\n'
                    '{"event": "extend", "request": 5, "req_row": 0, "working_row": 1, '
                    '"tokens": 4}\n'
                    '{"event": "verify", "batch": [{"request": 5, "accepted": 0}]}\n')
    env = dict(os.environ, PYTHONPATH=os.path.abspath(os.path.join(REPO, "python")))
    out = subprocess.run([sys.executable, "-m", "specstate_trace", "check", str(path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert f"{path}:4: accepted length 0 outside 1..4 (request 5); only an overlap trace (header overlap 1) has discarded entries" in out.stderr


# ---- against the C++ CLI -------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_random_schedule_validates(tmp_path, seed, specstate_validate):
    path = tmp_path / f"random{seed}.trace"
    write_random_schedule(path, seed)
    out = specstate_validate(path)
    assert out.returncode == 0, (f"specstate validate rejected a trace the writer accepted "
                                 f"(seed {seed}):\n{out.stdout}{out.stderr}")


def test_demo_validates(tmp_path, specstate_validate):
    path = tmp_path / "demo.trace"
    env = dict(os.environ, PYTHONPATH=os.path.abspath(os.path.join(REPO, "python")))
    subprocess.run([sys.executable, "-m", "specstate_trace", "demo", "-o", str(path)],
                   check=True, env=env, timeout=60)
    out = specstate_validate(path)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("seed", range(0, 40, 4))
def test_random_schedule_replays_clean(tmp_path, seed, specstate_replay):
    """Recorded through the writer, replayed through every strategy: all lanes agree (on the
    tiny preset: a CPU replay of 36 real layers per token would take minutes)."""
    path = tmp_path / f"random{seed}.trace"
    write_random_schedule(path, seed, preset="tiny")
    out = specstate_replay(path)
    assert out.returncode == 0, f"seed {seed}:\n{out.stdout}{out.stderr}"
    assert "AGREE" in out.stdout


def test_demo_replays_clean(tmp_path, specstate_replay):
    path = tmp_path / "demo.trace"
    env = dict(os.environ, PYTHONPATH=os.path.abspath(os.path.join(REPO, "python")))
    subprocess.run([sys.executable, "-m", "specstate_trace", "demo", "-o", str(path)],
                   check=True, env=env, timeout=60)
    out = specstate_replay(path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "AGREE" in out.stdout


TINY_AS_GEOMETRY = {"layers": 2, "H": 2, "HV": 4, "K": 16, "V": 16, "conv_dim": 128, "W": 4}


def test_a_custom_geometry_writes_version_2_and_a_preset_version_1(tmp_path, specstate_validate):
    """The writer emits the lowest version that expresses the trace; specstate reads both."""
    for name, model in (("preset", {"preset": "tiny"}), ("geometry", {"geometry": TINY_AS_GEOMETRY})):
        path = tmp_path / f"{name}.trace"
        with TraceWriter(path, draft_tokens=3, pool_rows=8, max_requests=4, page_size=16,
                         seed=1, **model) as w:
            w.extend(5, 20, req_row=0, working_row=1, track=[(16, 2)])
            w.verify([(5, 3)])
        header = json.loads(path.read_text().split("\n", 1)[0])
        assert header["specstate_trace"] == (2 if name == "geometry" else 1)
        assert (name in header) and ({"preset", "geometry"} - {name}).isdisjoint(header)
        assert read_trace(path)[0] == header
        out = specstate_validate(path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"(format version {header['specstate_trace']})" in out.stdout


def test_a_bad_custom_geometry_is_refused_as_the_reader_refuses_it(tmp_path):
    bad = dict(TINY_AS_GEOMETRY, conv_dim=127)
    with pytest.raises(ValueError, match=r"^.*:1: custom geometry: conv_dim 127 is not "
                                         r"2\*H\*K \+ HV\*V = 128$"):
        TraceWriter(tmp_path / "t.trace", geometry=bad, draft_tokens=3, pool_rows=8,
                    max_requests=4)
    with pytest.raises(ValueError, match="not both"):
        TraceWriter(tmp_path / "t.trace", preset="tiny", geometry=TINY_AS_GEOMETRY,
                    draft_tokens=3, pool_rows=8, max_requests=4)
    with pytest.raises(ValueError, match=r"^.*:1: unknown recurrence 'kda' in geometry "
                                         r"\(known: gated-deltanet, kimi-delta-attention\)$"):
        TraceWriter(tmp_path / "t.trace", geometry=dict(TINY_AS_GEOMETRY, recurrence="kda"),
                    draft_tokens=3, pool_rows=8, max_requests=4)


def test_a_geometry_naming_the_default_recurrence_writes_as_one_that_does_not(tmp_path):
    """The optional recurrence of a custom geometry: the default is left out, as the C++
    writer leaves it out."""
    path = tmp_path / "t.trace"
    with TraceWriter(path, geometry=dict(TINY_AS_GEOMETRY, recurrence="gated-deltanet"),
                     draft_tokens=3, pool_rows=8, max_requests=4) as w:
        w.extend(5, 20, req_row=0, working_row=1)
    header = json.loads(path.read_text().split("\n", 1)[0])
    assert header["geometry"] == TINY_AS_GEOMETRY


def test_draft_trees_write_version_2_and_replay_across_strategies(tmp_path, specstate_replay):
    """A writer made with tree_nodes writes format version 2; tree verifies, chains between
    them, replay bit for bit through every strategy that runs trees; a bad path is refused
    with the reader's message and leaves the file as it was."""
    path = tmp_path / "tree.trace"
    with TraceWriter(path, preset="tiny", draft_tokens=3, pool_rows=8, max_requests=4,
                     seed=7, tree_nodes=6) as w:
        w.extend(5, 12, req_row=0, working_row=1)
        w.verify([{"request": 5, "accepted": 3,
                   "tree": {"parents": [-1, 0, 0, 1, 2, 2], "path": [0, 2, 5]}}])
        with pytest.raises(ValueError, match=r":4: path\[1\] = 3 is not a child of node 0"):
            w.verify([{"request": 5, "accepted": 2,
                       "tree": {"parents": [-1, 0, 0, 1], "path": [0, 3]}}])
        w.verify([(5, 2)])
        w.decode([5])
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["specstate_trace"] == 2
    assert json.loads(lines[0])["tree_nodes"] == 6
    assert json.loads(lines[2])["batch"][0]["tree"]["path"] == [0, 2, 5]
    assert len(lines) == 5
    out = specstate_replay(path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "AGREE: 5 lanes" in out.stdout
    assert "the window and paged strategies do not run trees" in out.stdout


def test_overlap_writes_version_2_with_discarded_entries_and_replays(tmp_path, specstate_replay):
    """A writer made with overlap=True writes format version 2 and may discard an entry
    (accepted 0); the request's next event must be its finish, as the C++ reader says. The
    trace replays through every strategy, synchronously and with overlap."""
    path = tmp_path / "overlap.trace"
    with TraceWriter(path, preset="tiny", draft_tokens=3, pool_rows=8, max_requests=4,
                     seed=7, overlap=True) as w:
        w.extend(5, 12, req_row=0, working_row=1)
        w.extend(6, 9, req_row=1, working_row=2)
        w.verify([(5, 2), (6, 4)])
        w.verify([(6, 1), (5, 0)])
        with pytest.raises(ValueError, match=r":6: request 5: its entry at line 5 was discarded "
                                              r"\(accepted 0\), so the next event naming it "
                                              r"must be its finish"):
            w.verify([(5, 1)])
        w.finish(5)
        w.verify([(6, 3)])
        w.finish(6)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["specstate_trace"] == 2
    assert json.loads(lines[0])["overlap"] == 1
    assert json.loads(lines[4])["batch"][1] == {"request": 5, "accepted": 0}
    out = specstate_replay(path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "AGREE: 14 lanes" in out.stdout


def test_overlap_depth_is_written_and_replays_at_that_depth(tmp_path, specstate_replay):
    """overlap=3 (pipeline parallelism: three steps in flight) writes header overlap 3, and the
    C++ replay runs its overlap lanes at that depth; a depth outside 0..4 is the reader's error."""
    path = tmp_path / "pipeline.trace"
    with TraceWriter(path, preset="tiny", draft_tokens=3, pool_rows=8, max_requests=4,
                     seed=7, overlap=3) as w:
        for r in range(3):
            w.extend(r, 12, req_row=r, working_row=r)
        for step in range(6):  # three microbatches in turn, then request 2 twice in a row
            w.verify([(step % 3, 1 + step % 4)])
        w.verify([(2, 4)])  # the host waits for its step
        for r in range(3):
            w.finish(r)
    assert json.loads(path.read_text().splitlines()[0])["overlap"] == 3
    out = specstate_replay(path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "AGREE: 14 lanes" in out.stdout and "cpu/ring@overlap=3" in out.stdout
    with pytest.raises(TraceError, match=r"field 'overlap' in header is 5, outside 0\.\.4"):
        TraceWriter(tmp_path / "deep.trace", preset="tiny", draft_tokens=3, pool_rows=8,
                    max_requests=4, overlap=5)


def test_host_tier_writes_version_2_and_replays(tmp_path, specstate_replay):
    """A writer made with host_slots writes format version 2 with offload and restore events,
    refuses what the C++ reader refuses, and the trace replays through every strategy: a prefix
    hit on a restored row recomputes the tokens after the saved boundary."""
    path = tmp_path / "host.trace"
    with TraceWriter(path, preset="tiny", draft_tokens=3, pool_rows=8, max_requests=4,
                     page_size=16, seed=3, host_slots=2) as w:
        w.extend(5, 20, req_row=0, working_row=1, track=[(16, 4)])
        w.verify([(5, 3)])
        with pytest.raises(ValueError, match=r":4: offload row 1 holds no snapshot \(it is the "
                                              r"working row of live request 5\)"):
            w.offload(1, 0)
        w.offload(4, 1)
        with pytest.raises(ValueError, match=r":5: slot 0 holds nothing"):
            w.restore(0, 6)
        w.restore(1, 6)
        w.finish(5)
        w.extend(7, 9, req_row=0, working_row=2, prefix_len=16, cow_src_row=6)
        w.verify([(7, 4)])
        w.finish(7)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["specstate_trace"] == 2
    assert json.loads(lines[0])["host_slots"] == 2
    assert json.loads(lines[3]) == {"event": "offload", "row": 4, "slot": 1}
    assert json.loads(lines[4]) == {"event": "restore", "slot": 1, "row": 6}
    header, events = read_trace(path)
    assert [e["event"] for _, e in events][2:4] == ["offload", "restore"]
    out = specstate_replay(path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "AGREE: 7 lanes" in out.stdout


def test_handoff_writes_version_2_and_replays(tmp_path, specstate_replay):
    """A writer made with prefill_tp (and a rank) writes format version 2 with handoff events,
    refuses what the C++ reader refuses, and the trace replays through every strategy: the
    handed-over row, resliced from the prefill instance, is the same in every lane."""
    path = tmp_path / "handoff.trace"
    with TraceWriter(path, preset="tiny", tp=2, rank=1, draft_tokens=3, pool_rows=8,
                     max_requests=4, page_size=16, seed=3, prefill_tp=1) as w:
        w.handoff(5, 30, 3)
        w.extend(5, 3, req_row=0, working_row=1, prefix_len=30, cow_src_row=3, track=[(32, 4)])
        with pytest.raises(ValueError, match=r":4: handoff of request 5, which started here at "
                                              r"line 3"):
            w.handoff(5, 12, 6)
        with pytest.raises(ValueError, match=r":4: handoff row 1 is the working row of live "
                                              r"request 5"):
            w.handoff(6, 12, 1)
        w.verify([(5, 3)])
        w.finish(5)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["specstate_trace"] == 2
    assert json.loads(lines[0])["rank"] == 1 and json.loads(lines[0])["prefill_tp"] == 1
    assert json.loads(lines[1]) == {"event": "handoff", "request": 5, "length": 30, "row": 3}
    header, events = read_trace(path)
    assert events[0][1]["event"] == "handoff"
    out = specstate_replay(path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "AGREE: 7 lanes" in out.stdout
    with pytest.raises(TraceError, match=r"handoff event, but the header has no prefill_tp"):
        with TraceWriter(tmp_path / "no.trace", preset="tiny", draft_tokens=3, pool_rows=8,
                         max_requests=4) as w:
            w.handoff(5, 30, 3)


def test_accepted_zero_needs_an_overlap_writer(tmp_path):
    with TraceWriter(tmp_path / "t.trace", preset="tiny", draft_tokens=3, pool_rows=8,
                     max_requests=4) as w:
        w.extend(5, 12, req_row=0, working_row=1)
        with pytest.raises(ValueError, match="only an overlap trace"):
            w.verify([(5, 0)])


def test_validate_rejects_a_broken_trace(tmp_path, specstate_validate):
    """The round trip means something only if validate does reject: a trace the writer would
    refuse (accepted 0) must fail with file:line."""
    path = tmp_path / "bad.trace"
    path.write_text('{"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", '
                    '"draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, '
                    '"seed": 1}\n'
                    '{"event": "extend", "request": 5, "req_row": 0, "working_row": 1, '
                    '"tokens": 4}\n'
                    '{"event": "verify", "batch": [{"request": 5, "accepted": 0}]}\n')
    out = specstate_validate(path)
    assert out.returncode != 0
    assert ":3:" in out.stdout + out.stderr


@pytest.mark.parametrize("seed", range(12))
def test_cpp_generated_trace_passes_the_python_checker(tmp_path, seed, specstate_generate):
    """The other direction: the two rule sets agree on what the C++ generator writes
    (prefix hits, snapshots, retracts when rows run out, padding)."""
    path = tmp_path / f"gen{seed}.trace"
    out = specstate_generate(path, "--preset", "tiny", "--requests", 10, "--steps", 60,
                             "--seed", seed, "--draft-tokens", seed % 6,
                             "--page-size", [0, 4, 16][seed % 3], "--pool-rows", 8 + seed)
    assert out.returncode == 0, out.stdout + out.stderr
    read_trace(path)
