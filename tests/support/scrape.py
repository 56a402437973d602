"""Records every agent's /metrics as Prometheus would, and writes the series as promtool input.

``Recorder`` scrapes each target once per ``interval`` (round k at start + k x interval), adds
``job`` and ``instance`` labels and an ``up`` series, and, like Prometheus, marks a series stale
when a scrape fails or no longer returns it (a dead agent's series end with a stale marker, they
do not linger for the 5-minute lookback). ``input_series`` renders the rounds in promtool's
notation, one value per round: a number, ``stale``, or ``_`` (no sample).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
STALE = "stale"


@dataclass
class Recorder:
    targets: dict[str, str]  # instance ("host:port") -> /metrics URL
    job: str = "pgwarden"
    interval: float = 1.0
    timeout: float = 0.8
    max_rounds: int = 600  # bounded whatever the test does
    keep: set[str] | None = None  # metric names to record (None: all)
    rounds: int = 0
    samples: dict[SeriesKey, dict[int, float | str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # the last successful answer per instance
    started: float = 0.0
    _live: dict[str, set[SeriesKey]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Recorder:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def round_at(self, monotonic: float) -> int:
        """The first round scraped at or after ``monotonic``."""
        return max(0, int((monotonic - self.started) / self.interval + 0.999))

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set() and self.rounds < self.max_rounds:
                k = self.rounds
                for instance, url in self.targets.items():
                    self._scrape(client, k, instance, url)
                self.rounds = k + 1
                wake = self.started + self.rounds * self.interval
                self._stop.wait(max(0.0, wake - time.monotonic()))

    def _scrape(self, client: httpx.Client, k: int, instance: str, url: str) -> None:
        base = (("instance", instance), ("job", self.job))
        seen: set[SeriesKey] = set()
        try:
            answer = client.get(url)
            answer.raise_for_status()
            text = answer.text
            families = list(text_string_to_metric_families(text))
        except (httpx.HTTPError, ValueError):
            families = None
        up = 1.0 if families is not None else 0.0
        self.samples.setdefault(("up", base), {})[k] = up
        if families is not None:
            self.texts[instance] = text
            for family in families:
                for sample in family.samples:
                    if self.keep is not None and sample.name not in self.keep:
                        continue
                    key = (sample.name, tuple(sorted({**dict(base), **sample.labels}.items())))
                    self.samples.setdefault(key, {})[k] = sample.value
                    seen.add(key)
        for gone in self._live.get(instance, set()) - seen:
            self.samples[gone][k] = STALE
        self._live[instance] = seen

    def value(self, name: str, k: int, **labels: str) -> list[float]:
        """The numbers series ``name`` (with these labels) had in round ``k``."""
        found = []
        for (metric, key_labels), values in self.samples.items():
            if metric == name and labels.items() <= dict(key_labels).items():
                v = values.get(k)
                if isinstance(v, float):
                    found.append(v)
        return found

    def input_series(self) -> list[dict[str, str]]:
        series = []
        for (name, labels), values in sorted(self.samples.items()):
            selector = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            text = " ".join(_value(values.get(k)) for k in range(self.rounds))
            series.append({"series": f"{name}{{{selector}}}", "values": text})
        return series


def _value(v: float | str | None) -> str:
    if v is None:
        return "_"
    if isinstance(v, str):
        return v
    return repr(v) if v != int(v) else str(int(v))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
