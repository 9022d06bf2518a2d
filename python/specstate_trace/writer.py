"""TraceWriter: record a scheduler's per-step decisions as a specstate trace (JSON Lines)."""

import io
import json
import os

from ._fields import _is_integer
from ._rules import MAX_LINE_BYTES
from ._state import TraceState, make_header
from .reader import TraceError


def _track_object(track):
    """A track write as on disk: (length, row) pairs become {"length", "row"} objects; anything
    else is left for the field checks to name."""
    if isinstance(track, (tuple, list)) and len(track) == 2:
        return {"length": track[0], "row": track[1]}
    return track


def _entry_object(entry, keys):
    """A batch entry as on disk from a tuple (`keys` in order, the request and, for a verify,
    accepted required, the rest optional) or a mapping; a bare request id for a decode."""
    required = 1 if keys[-1] == "track" and len(keys) == 2 else 2
    if isinstance(entry, dict):
        obj = dict(entry)
    elif isinstance(entry, (tuple, list)) and required <= len(entry) <= len(keys):
        obj = dict(zip(keys, entry))
    elif len(keys) == 2 and not isinstance(entry, (tuple, list)):
        obj = {"request": entry}  # decode([5, 6])
    else:
        return entry
    if obj.get("track") is None:
        obj.pop("track", None)
    else:
        obj["track"] = _track_object(obj["track"])
    if "tree" in obj and obj["tree"] is None:
        del obj["tree"]
    return obj


def _comment_problem(text):
    """Why the comment line "# text" would be refused by the readers (core/trace/format.cpp,
    reader.py), or None. Both read bytes: a NUL or a CR inside a line is refused, and a line
    longer than MAX_LINE_BYTES bytes before its newline."""
    if "\n" in text or "\r" in text:
        return "text must be one line (no \\n or \\r)"
    nul = text.find("\0")
    if nul >= 0:
        return f"NUL character at index {nul} (a trace holds no NUL byte)"
    try:
        size = 2 + len(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        return f"text is not valid Unicode ({e.reason} at index {e.start})"
    if size > MAX_LINE_BYTES:
        return (f"the line would be {size} bytes, longer than {MAX_LINE_BYTES} bytes (the "
                f"readers' limit of one line, without its newline)")
    return None


def _batch_objects(batch, keys):
    if isinstance(batch, (str, bytes, dict)) or not hasattr(batch, "__iter__"):
        return batch  # the field check says "must be an array"
    return [_entry_object(e, keys) for e in batch]


class TraceWriter:
    """Writes a specstate trace, one checked event per call.

    `file` is a path (opened, truncated, and closed by `close`) or an open text file (written
    to, flushed, and left open). The header is written at once. Every method checks its event
    against the events so far before anything is written and raises TraceError (a ValueError)
    "FILE:LINE: message" with the line the event would have been and the message `specstate
    validate` prints for it; the writer stays usable after such an error and the
    file holds only valid events. Each event is one line, flushed when written. A write that
    fails (disk full) raises OSError and records nothing: the state changes only once the whole
    line is written, and the part of the line that got out is cut off again where the file
    allows it.

    Rows: `working_row`, `cow_src_row` and track rows are scheduler rows 0..pool_rows-1;
    `req_row` (req_pool_idx) is 0..max_requests-1. A track write is (length, row) or
    {"length": ..., "row": ...}: fill `row` with the state after the request's first `length`
    tokens, a page boundary crossed by this event.
    """

    def __init__(self, file, *, preset=None, draft_tokens, pool_rows, max_requests, page_size=0,
                 tp=1, ssm_dtype="f32", seed=0, geometry=None, tree_nodes=0, overlap=False,
                 host_slots=0, rank=0, prefill_tp=0):
        label = os.fspath(file) if isinstance(file, (str, os.PathLike)) else getattr(file, "name",
                                                                                       "<stream>")
        self._label = os.fsdecode(label) if isinstance(label, (str, bytes)) else "<stream>"
        try:
            self.header = make_header(preset=preset, draft_tokens=draft_tokens,
                                      pool_rows=pool_rows, max_requests=max_requests,
                                      page_size=page_size, tp=tp, ssm_dtype=ssm_dtype, seed=seed,
                                      geometry=geometry, tree_nodes=tree_nodes, overlap=overlap,
                                      host_slots=host_slots, rank=rank, prefill_tp=prefill_tp)
        except ValueError as e:
            raise TraceError(self._label, 1, str(e)) from None
        self.state = TraceState(self.header)
        self._line = 1  # the line written last
        if isinstance(file, (str, bytes, os.PathLike)):
            # Unbuffered bytes: a line reaches the file in os-level writes this writer sees
            # fail, so that it can cut a half-written line off again.
            self._file = open(file, "wb", buffering=0)
            self._owns_file = True
            self.path = os.fspath(file)
        elif isinstance(file, io.TextIOBase) or hasattr(file, "write"):
            self._file = file
            self._owns_file = False
            self.path = getattr(file, "name", None)
        else:
            raise ValueError(f"TraceWriter: file must be a path or a text file, got {file!r}")
        self._closed = False
        self._write(self.header)

    # ---- properties --------------------------------------------------------------------------
    @property
    def tokens_per_verify(self):
        """T = draft_tokens + 1."""
        return self.state.T

    @property
    def closed(self):
        return self._closed

    # ---- events ------------------------------------------------------------------------------
    def extend(self, request, tokens, *, req_row=None, working_row=None, prefix_len=0,
               cow_src_row=None, track=()):
        """Prefill `tokens` new tokens of `request`.

        First extend of a request: `req_row` and `working_row` required (free rows); on a
        prefix hit `prefix_len` > 0 and `cow_src_row`, a row holding a snapshot of exactly
        `prefix_len` tokens. Later extends (chunked prefill) continue from the live state;
        `req_row` / `working_row` may be repeated and must match. `track`: snapshots of page
        boundaries crossed by these tokens.
        """
        self._ensure_open()
        obj = {"event": "extend", "request": request, "tokens": tokens}
        for key, value in (("req_row", req_row), ("working_row", working_row),
                           ("cow_src_row", cow_src_row)):
            if value is not None:
                obj[key] = value
        if prefix_len is not None and not (_is_integer(prefix_len) and prefix_len == 0):
            obj["prefix_len"] = prefix_len
        if track:
            obj["track"] = ([_track_object(t) for t in track]
                            if isinstance(track, (list, tuple)) else track)
        self._record(obj)

    def verify(self, batch, *, padding=0):
        """A verify step of T tokens per request.

        `batch`: entries (request, accepted), (request, accepted, track) or
        {"request", "accepted", "track"?, "tree"?}; accepted in 1..T (bonus included). A tree
        (format version 2, a writer made with tree_nodes) is {"parents": [...], "path": [...]}:
        the parent of each node (-1 for the root, node 0) and the accepted path from the root;
        accepted is the path's length. A writer made with overlap=True (format version 2) may
        write accepted 0: a discarded entry (the step ran for a request that had already
        finished; its next event must be its finish). `padding`: CUDA-graph padding rows.
        """
        self._ensure_open()
        self._record({"event": "verify",
                      "batch": _batch_objects(batch, ("request", "accepted", "track", "tree")),
                      "padding": 0 if padding is None else padding})

    def decode(self, batch, *, padding=0):
        """A decode step without drafts (one token per request, always accepted).

        `batch`: entries request, (request, track) or {"request", "track"?}.
        """
        self._ensure_open()
        self._record({"event": "decode", "batch": _batch_objects(batch, ("request", "track")),
                      "padding": 0 if padding is None else padding})

    def retract(self, request):
        """`request` leaves the running batch; its state is saved, its rows freed."""
        self._ensure_open()
        self._record({"event": "retract", "request": request})

    def resume(self, request, *, req_row, working_row):
        """A retracted `request` comes back into free rows `req_row` and `working_row`."""
        self._ensure_open()
        self._record({"event": "resume", "request": request, "req_row": req_row,
                      "working_row": working_row})

    def finish(self, request):
        """`request` ends; its rows are free at once. No event may name it afterwards."""
        self._ensure_open()
        self._record({"event": "finish", "request": request})

    def check(self):
        """Ask the replay to compare all lanes here."""
        self._ensure_open()
        self._record({"event": "check"})

    def offload(self, row, slot):
        """The snapshot cache row `row` holds is saved into host slot `slot` (a writer made with
        host_slots > 0; format version 2)."""
        self._ensure_open()
        self._record({"event": "offload", "row": row, "slot": slot})

    def restore(self, slot, row):
        """Host slot `slot` is loaded into `row` (not a running request's working row), which
        then holds its snapshot; a prefix hit on it recomputes the tokens after it."""
        self._ensure_open()
        self._record({"event": "restore", "slot": slot, "row": row})

    def handoff(self, request, length, row):
        """Request `request` arrives from the prefill instance (a writer made with prefill_tp;
        format version 2) with the state after its first `length` tokens, resliced to this rank,
        in `row` (not a running request's working row); its first extend is a prefix hit on it
        of `length` tokens."""
        self._ensure_open()
        self._record({"event": "handoff", "request": request, "length": length, "row": row})

    def comment(self, text):
        """A `# text` line (ignored by readers), e.g. the engine's step number.

        The text is one line without NUL, and "# " + text is at most MAX_LINE_BYTES bytes in
        UTF-8 (16 MiB): both readers refuse any other line. Anything else raises TraceError
        "FILE:LINE: comment: ..." and writes nothing."""
        self._ensure_open()
        text = str(text)
        line = self._line + 1
        problem = _comment_problem(text)
        if problem:
            raise TraceError(self._label, line, f"comment: {problem}")
        self._write_line(f"# {text}\n", line)
        self._line = line

    def close(self):
        """Flush, and close the file if the writer opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_file:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    # ---- internals ---------------------------------------------------------------------------
    def _ensure_open(self):
        if self._closed:
            raise ValueError("trace writer is closed")

    def _record(self, obj):
        """Checks the event as the line it would be, writes the whole line, and only then
        records it in the state. A refused event raises TraceError "FILE:LINE: message" with
        the message `specstate validate` prints for that line."""
        line = self._line + 1
        try:
            event, commit = self.state.prepare(obj, line)
        except ValueError as e:
            raise TraceError(self._label, line, str(e)) from None
        self._write(event, line)
        self._line = line
        commit()

    def _write(self, obj, number=1):
        self._write_line(json.dumps(obj) + "\n", number)

    def _write_line(self, line, number):
        """Writes `line` (line `number` of the file) whole and flushes it. On an error (disk
        full, closed pipe) the bytes of the line that got out are cut off again where the file
        allows it (a regular file this writer opened, or a seekable one it was given), then the
        error propagates. A line longer than the readers take raises TraceError and writes
        nothing (an event of a batch of millions of requests could be)."""
        data = line.encode("utf-8")
        if len(data) - 1 > MAX_LINE_BYTES:
            raise TraceError(self._label, number,
                             f"the line would be {len(data) - 1} bytes, longer than "
                             f"{MAX_LINE_BYTES} bytes (the readers' limit of one line, without "
                             f"its newline)")
        if self._owns_file:
            fd = self._file.fileno()
            try:
                start = os.lseek(fd, 0, os.SEEK_CUR)
            except OSError:
                start = None  # a pipe or a character device: nothing to cut
            done = 0
            try:
                while done < len(data):
                    done += os.write(fd, data[done:])
            except BaseException:
                if start is not None:
                    try:
                        os.ftruncate(fd, start)
                        os.lseek(fd, start, os.SEEK_SET)
                    except OSError:
                        pass
                raise
            return
        start = None
        try:
            if self._file.seekable():
                self._file.flush()
                start = self._file.tell()
        except (OSError, ValueError, AttributeError):
            start = None
        try:
            self._file.write(line)
            self._file.flush()
        except BaseException:
            if start is not None:
                try:
                    self._file.seek(start)
                    self._file.truncate(start)
                except (OSError, ValueError):
                    pass
            raise
