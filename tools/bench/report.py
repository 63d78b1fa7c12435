"""The ratio table run.py prints: rows are measurements, columns frameworks.

Every time cell is ``time ratio``, where ratio = this framework's time /
graphflow-cpu's time in the same row (so 0.50x means twice as fast as
graphflow-cpu, 3.00x three times slower): for times sampled in turns, the
median over rounds of the two samples' ratio in each round (robust to the
machine's speed changing between rounds), else the ratio of the medians. A
cell flagged ``!`` disagreed with NumPy's result (details are listed under the
table).
"""

from __future__ import annotations

from collections.abc import Callable

from common import BASELINE

LABEL_W = 24
CELL_W = 18


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f}us"
    if s < 1:
        return f"{s * 1e3:.2f}ms"
    return f"{s:.2f}s"


def _status(entry: dict | None) -> str | None:
    """A short word for a cell that has no number (not installed, error, ...)."""
    if entry is None:
        return "-"
    status = entry.get("status", "ok")
    return None if status == "ok" else status


def time_row(label: str, cells: dict[str, dict | None], get: Callable[[dict], float | None],
             frameworks: list[str],
             ratio: Callable[[dict], float | None] = lambda e: None) -> str:
    """One row of times with their ratio to graphflow-cpu's: ``ratio(entry)`` where it
    gives one (the median of round-by-round ratios), else the ratio of the times."""
    base_entry = cells.get(BASELINE)
    base = get(base_entry) if base_entry and not _status(base_entry) else None
    out = [f"{label:<{LABEL_W}}"]
    for fw in frameworks:
        entry = cells.get(fw)
        word = _status(entry)
        value = None if word else get(entry)
        if word:
            text = word
        elif value is None:
            text = "n/a"
        else:
            r = ratio(entry) if base else None
            if base and r is None:
                r = value / base
            text = fmt_time(value) + (f" {r:.2f}x" if r is not None else "")
            if not entry.get("agree", {}).get("ok", True):
                text += "!"
        out.append(f"{text:>{CELL_W}}")
    return "".join(out)


def text_row(label: str, cells: dict[str, dict | None], get: Callable[[dict], str | None],
             frameworks: list[str]) -> str:
    """One row of preformatted values (ratios to the copy floor, memory)."""
    out = [f"{label:<{LABEL_W}}"]
    for fw in frameworks:
        entry = cells.get(fw)
        word = _status(entry)
        text = word or get(entry) or "n/a"
        out.append(f"{text:>{CELL_W}}")
    return "".join(out)


def header_row(frameworks: list[str]) -> str:
    return f"{'':<{LABEL_W}}" + "".join(f"{fw:>{CELL_W}}" for fw in frameworks)


def table(results: dict, frameworks: list[str]) -> list[str]:
    """The table's lines for whatever workloads ``results`` holds."""
    lines = [header_row(frameworks)]
    med = lambda e: e.get("median_s")  # noqa: E731
    paired = lambda e: e.get("paired_ratio")  # noqa: E731
    if "ew" in results:
        ew = results["ew"]
        lines.append(time_row("ew", ew, med, frameworks, paired))
        copy = ew.get("copy")
        if copy and not _status(copy):
            floor = copy["median_s"]
            lines.append(text_row(f"ew / copy ({fmt_time(floor)})", ew,
                                  lambda e: f"{e['median_s'] / floor:.2f}x floor", frameworks))
    for w, label in (("mlp", "mlp Adam step"), ("cnn", "cnn SGD step")):
        if w in results:
            lines.append(time_row(label, results[w], med, frameworks, paired))
    if "overhead" in results:
        oh = results["overhead"]
        lines.append(time_row("overhead run", oh, med, frameworks, paired))
        lines.append(time_row("overhead callable", oh,
                              lambda e: (e.get("callable") or {}).get("median_s"), frameworks,
                              lambda e: (e.get("callable") or {}).get("paired_ratio")))
    if "first-run" in results:
        fr = results["first-run"]
        for phase in ("cold", "warm"):
            cells = {fw: _phase(e, phase) for fw, e in fr.items()}
            lines.append(time_row(f"first-run {phase} to 1st step", cells,
                                  lambda e: e.get("total_s"), frameworks))
            lines.append(time_row(f"first-run {phase} 1st step", cells,
                                  lambda e: e.get("first_step_s"), frameworks))
            lines.append(time_row(f"first-run {phase} to 2nd step", cells,
                                  lambda e: e.get("two_steps_s"), frameworks))
    for w in ("mlp", "cnn"):
        mem = results.get("memory", {}).get(w)
        if mem:
            lines.append(text_row(f"RSS {w} MiB peak(+step)", mem,
                                  lambda e: f"{e['peak_mib']:.0f} (+{e['step_delta_mib']:.0f})",
                                  frameworks))
    return lines


def _phase(entry: dict | None, phase: str) -> dict | None:
    if entry is None or _status(entry):
        return entry
    return entry.get(phase)
