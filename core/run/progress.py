"""Progress of the CLI's long commands, one way for all: a live bar on a terminal, plain lines elsewhere.

On a terminal (stderr is a TTY) a Meter draws a tqdm bar that updates in place. On a pipe or a file (CI,
`2> log`) it writes a plain line each time another `step` percent is done (5 by default: at most 22 lines
per meter, the first and the last included), never a carriage return. `quiet=True` writes nothing.

    with Meter("judging", total=len(items), unit="item", quiet=args.quiet) as meter:
        for done in ...:
            meter.update(done, note="dr 0.81")

Used by `python -m core` run (one meter per target), judge, judge-eval, import-align and export.
"""
from __future__ import annotations

import sys
import time
from typing import IO

STEP_PERCENT = 5.0


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


class Meter:
    """Progress of one task of `total` units, shown as a live bar (terminal), plain lines (pipe, file) or not."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "item", quiet: bool = False,
                 stream: IO[str] | None = None, live: bool | None = None, step: float = STEP_PERCENT) -> None:
        self.desc, self.total, self.unit, self.step = desc, total, unit, step
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.live = (is_terminal(self.stream) if live is None else live) and not quiet
        self.done = 0
        self.note = ""
        self.started = time.monotonic()
        self._bar = None
        self._next_percent: float | None = None  # plain mode: the next percentage that earns a line
        self._printed: int | None = None  # plain mode: `done` of the last line written
        self._closed = False

    # -- feeding -----------------------------------------------------------------------------------
    def update(self, done: int, total: int | None = None, note: str | None = None) -> None:
        """Set the count done so far (and the total, or a short note such as a live DR or an ETA)."""
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        self.done = done
        if self.quiet or self._closed:
            return
        if self.live:
            self._draw_bar()
        else:
            self._maybe_line()

    def close(self) -> None:
        """End the meter: the bar is closed, or the last line is written if it was not yet."""
        if self._closed:
            return
        self._closed = True
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.close()
        elif not self.live and self._printed is not None and self._printed != self.done:
            self._line()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- showing -----------------------------------------------------------------------------------
    def percent(self) -> float | None:
        if not self.total:
            return None
        return 100.0 * min(self.done, self.total) / self.total

    def text(self) -> str:
        """The plain line: `desc: done/total units (pct%), elapsed mm:ss; note`."""
        elapsed = _clock(time.monotonic() - self.started)
        units = self.unit + ("s" if (self.total or self.done) != 1 else "")
        count = f"{self.done:,}/{self.total:,} {units} ({self.percent():.0f}%)" if self.total else \
            f"{self.done:,} {units}"
        return f"{self.desc}: {count}, {elapsed} elapsed" + (f"; {self.note}" if self.note else "")

    def _line(self) -> None:
        print(self.text(), file=self.stream, flush=True)
        self._printed = self.done

    def _maybe_line(self) -> None:
        percent = self.percent()
        if percent is None:  # no total known: only the first and the last line
            if self._printed is None:
                self._line()
            return
        if self._next_percent is None or percent >= self._next_percent:
            self._line()
            self._next_percent = (percent // self.step + 1) * self.step

    def _draw_bar(self) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.done, unit=self.unit, file=self.stream, desc=self.desc,
                             dynamic_ncols=True)
        if self.total is not None and self._bar.total != self.total:
            self._bar.total = self.total
        self._bar.n = self.done
        if self.note:
            self._bar.set_postfix_str(self.note, refresh=False)
        self._bar.refresh()
