"""TraceWriter: record a scheduler's per-step decisions as a specstate trace (JSON Lines)."""

import io
import json
import os

from ._state import TraceState, make_header


def _verify_entry(entry):
    """(request, accepted, track) from (request, accepted[, track]) or a dict."""
    if isinstance(entry, dict):
        extra = set(entry) - {"request", "accepted", "track"}
        if extra or "request" not in entry or "accepted" not in entry:
            raise ValueError(f"verify: batch entry must have the keys request, accepted and "
                             f"optionally track, got {sorted(entry)}")
        return entry["request"], entry["accepted"], entry.get("track")
    if isinstance(entry, (tuple, list)) and len(entry) in (2, 3):
        return entry[0], entry[1], entry[2] if len(entry) == 3 else None
    raise ValueError(f"verify: batch entry must be (request, accepted), (request, accepted, "
                     f"track) or a dict, got {entry!r}")


def _decode_entry(entry):
    """(request, track) from request, (request[, track]) or a dict."""
    if isinstance(entry, dict):
        extra = set(entry) - {"request", "track"}
        if extra or "request" not in entry:
            raise ValueError(f"decode: batch entry must have the key request and optionally "
                             f"track, got {sorted(entry)}")
        return entry["request"], entry.get("track")
    if isinstance(entry, (tuple, list)) and len(entry) in (1, 2):
        return entry[0], entry[1] if len(entry) == 2 else None
    return entry, None


class TraceWriter:
    """Writes a specstate trace, one checked event per call.

    `file` is a path (opened, truncated, and closed by `close`) or an open text file (written
    to, flushed, and left open). The header is written at once. Every method checks its event
    against the events so far and raises ValueError, naming the event, the request and the
    field, before anything is written; the writer stays usable after such an error and the
    file holds only valid events. Each event is one line, flushed when written. A write that
    fails (disk full) raises OSError and records nothing: the state changes only once the whole
    line is written, and the part of the line that got out is cut off again where the file
    allows it.

    Rows: `working_row`, `cow_src_row` and track rows are scheduler rows 0..pool_rows-1;
    `req_row` (req_pool_idx) is 0..max_requests-1. A track write is (length, row) or
    {"length": ..., "row": ...}: fill `row` with the state after the request's first `length`
    tokens, a page boundary crossed by this event.
    """

    def __init__(self, file, *, preset, draft_tokens, pool_rows, max_requests, page_size=0,
                 tp=1, ssm_dtype="f32", seed=0):
        self.header = make_header(preset=preset, draft_tokens=draft_tokens, pool_rows=pool_rows,
                                  max_requests=max_requests, page_size=page_size, tp=tp,
                                  ssm_dtype=ssm_dtype, seed=seed)
        self.state = TraceState(self.header)
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
        self._record("extend", request, tokens, req_row=req_row, working_row=working_row,
                     prefix_len=prefix_len, cow_src_row=cow_src_row, track=track)

    def verify(self, batch, *, padding=0):
        """A verify step of T tokens per request.

        `batch`: entries (request, accepted), (request, accepted, track) or
        {"request", "accepted", "track"?}; accepted in 1..T (bonus included). `padding`:
        CUDA-graph padding rows in the batch.
        """
        self._ensure_open()
        self._record("verify", [_verify_entry(e) for e in self._listed(batch, "verify")],
                     padding=padding)

    def decode(self, batch, *, padding=0):
        """A decode step without drafts (one token per request, always accepted).

        `batch`: entries request, (request, track) or {"request", "track"?}.
        """
        self._ensure_open()
        self._record("decode", [_decode_entry(e) for e in self._listed(batch, "decode")],
                     padding=padding)

    def retract(self, request):
        """`request` leaves the running batch; its state is saved, its rows freed."""
        self._ensure_open()
        self._record("retract", request)

    def resume(self, request, *, req_row, working_row):
        """A retracted `request` comes back into free rows `req_row` and `working_row`."""
        self._ensure_open()
        self._record("resume", request, req_row=req_row, working_row=working_row)

    def finish(self, request):
        """`request` ends; its rows are free at once. No event may name it afterwards."""
        self._ensure_open()
        self._record("finish", request)

    def check(self):
        """Ask the replay to compare all lanes here."""
        self._ensure_open()
        self._record("check")

    def comment(self, text):
        """A `# text` line (ignored by readers), e.g. the engine's step number."""
        self._ensure_open()
        text = str(text)
        if "\n" in text or "\r" in text:
            raise ValueError("comment: text must be one line")
        self._write_line(f"# {text}\n")

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

    @staticmethod
    def _listed(batch, event):
        if isinstance(batch, (str, bytes, dict)):
            raise ValueError(f"{event}: batch must be a list of entries, got {batch!r}")
        try:
            return list(batch)
        except TypeError:
            raise ValueError(f"{event}: batch must be a list of entries, got {batch!r}") from None

    def _record(self, method, *args, **kwargs):
        """Checks the event, writes its whole line, and only then records it in the state."""
        event, commit = self.state.prepare(method, *args, **kwargs)
        self._write(event)
        commit()

    def _write(self, obj):
        self._write_line(json.dumps(obj) + "\n")

    def _write_line(self, line):
        """Writes `line` whole and flushes it. On an error (disk full, closed pipe) the bytes
        of the line that got out are cut off again where the file allows it (a regular file
        this writer opened, or a seekable one it was given), then the error propagates."""
        if self._owns_file:
            data = line.encode("utf-8")
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
