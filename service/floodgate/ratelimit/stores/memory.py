"""`MemoryStore`: GCRA counters in a dict, per process, for `memory://` (local runs, tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from floodgate.ratelimit.gcra import Charge, Outcome, decide, monotonic_us


class MemoryStore:
    """TATs in a dict: limits per process, for `memory://` (local runs, tests)."""

    remote = False

    def __init__(self, clock: Callable[[], int] = monotonic_us) -> None:
        self._clock = clock
        self._tats: dict[str, int] = {}
        self._sweep_at = 1024

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._tats.clear()

    async def ping(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._tats)

    def acquire_now(self, charges: Sequence[Charge], now_us: int | None = None) -> list[Outcome]:
        now = self._clock() if now_us is None else now_us
        outcomes = decide(self._tats, charges, now)
        if len(self._tats) >= self._sweep_at:
            self._sweep(now)
        return outcomes

    async def acquire(self, charges: Sequence[Charge]) -> list[Outcome]:
        return self.acquire_now(charges)

    async def acquire_batch(
        self, requests: Sequence[Sequence[Charge]], now_us: int | None = None
    ) -> list[list[Outcome]]:
        now = self._clock() if now_us is None else now_us
        return [self.acquire_now(charges, now) for charges in requests]

    def _sweep(self, now: int) -> None:
        # A TAT in the past means the same as no entry; dropping them keeps memory O(active keys).
        # The threshold doubles with the live size, so the sweeps cost O(1) amortised per write.
        self._tats = {k: v for k, v in self._tats.items() if v > now}
        self._sweep_at = max(1024, 2 * len(self._tats))
