"""Reading a request body (`read_body`, the one reader of every route), and what bodies may cost a
worker's memory: one budget per worker for the bodies in flight and the memory their parse takes, read
from the deployment's memory limit; bodies past the byte limit are refused, bodies that trickle are cut.

A body's bytes are not what kills a worker: its parse is. JSON of `0,0,0,...` costs ~20 times its
size once parsed (simdjson's tape, Python objects, the float arrays), so a 64 MiB body under the byte
limit took ~1.2 GB. Here every body bigger than SMALL_BODY_BYTES reserves memory from its worker's
budget while it arrives (twice its bytes: the chunks, then their join) and, before it is parsed, what
its parse will take, estimated from a count of its commas, brackets and quotes (a few ms a MiB) times
the measured peak per value of the path it takes (`parse_cost`). A body that can never fit is refused
at once with 413; one that fits but finds the budget taken waits up to WAIT_SECONDS, then is answered
503 with Retry-After. Small bodies (a single row's) skip all of it: their memory is bounded by the
connection limit and costs nothing to check.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .answers import BUSY_RETRY_SECONDS, BodyTimeout, BodyTooCostly, BodyTooLarge, Busy, ClientGone
from .environment import BUDGET_ENV, MEMORY_ENV

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

SMALL_BODY_BYTES = 64 * 2**10  # a body up to this, arriving in one message, is not counted (a single row: ~4-10 KB)
MEMORY_SHARE = 0.75  # of the memory left after init(): the rest is for the server, responses and fragmentation
MIN_BUDGET_BYTES = 16 * 2**20
WAIT_SECONDS = 2.0  # a body that finds its worker's budget taken waits this long, then 503
BODY_TIMEOUT_SECONDS = 60.0  # a body that has not fully arrived by then is refused (408)
MIN_BODY_RATE = 16 * 2**10  # bytes/s: a body arriving slower than this (after GRACE_SECONDS) is cut with 408
GRACE_SECONDS = 10.0
THREAD_JOIN_BYTES = 2**20

# Peak memory per JSON value (each comma), measured with VmHWM around the parse of 4 M values of each
# kind (numbers `0`, `0.5`, `1e1`, `true`, `null`, `""`, `"a"`, `[]`, `{}`; 1-D and 2-D):
# the tutorial's run() (json.loads, np.array): 52 B for floats; the built-in script's run() (simdjson
# into float64 then float32, or orjson): 40 B; V2 JSON (orjson, np.asarray, astype): 60 B. Each
# container or string costs up to ~72 B more (an empty list per value: 104-107 B a comma).
TUTORIAL_VALUE_BYTES = 56
V2_VALUE_BYTES = 64
OBJECT_BYTES = 72
# .npy and binary tensors: the loaded array (the body's size), then up to 9 B a value (float32 copy and
# uint8 scaling, the finiteness mask).
ARRAY_VALUE_BYTES = 9

TOO_COSTLY = ("this {what} would take about {cost:,.0f} MiB of memory to parse ({values:,} values), more than this "
              "deployment's memory gives one request ({budget:,.0f} MiB per worker): send fewer rows per request{npy}; "
              "or deploy with more memory")
SEND_NPY = ", or send them as .npy (Content-Type: application/x-npy), which costs about its own size"
SEND_BINARY = (", or send the tensor as binary data (parameters.binary_data_size; or to /score as .npy, Content-Type: "
               "application/x-npy), which costs about its own size")
TOO_BIG_FOR_MEMORY = ("this request body ({size:,.1f} MiB) takes about {cost:,.0f} MiB of memory while it arrives, more "
                      "than this deployment's memory gives one request ({budget:,.0f} MiB per worker): send fewer "
                      "rows per request, or send them as .npy (Content-Type: application/x-npy), about 5 times "
                      "smaller; or deploy with more memory")
BUSY = ("this worker's memory for request bodies ({budget:,.0f} MiB) is taken by the bodies in flight: retry "
        "after {retry} s")
TOO_SLOW_RATE = (f"the request body arrived slower than {MIN_BODY_RATE // 2**10} KiB/s: send it at once (bodies "
                 "that trickle are cut so that they cannot hold the server)")
TOO_SLOW = f"the request body did not arrive within {BODY_TIMEOUT_SECONDS:.0f} s"
TOO_LARGE = ("the request body ({size}) is larger than this deployment's limit of {limit:,.0f} MiB: send fewer "
             "rows per request, or send them as .npy (Content-Type: application/x-npy), about 5 times smaller; "
             "`deploy --max-body-mb` sets the limit")


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_stat(path: str, *names: str) -> int:
    try:
        with open(path) as handle:
            stats = dict(line.split() for line in handle if line.count(" ") == 1)
    except (OSError, ValueError):
        return 0
    for name in names:
        if stats.get(name, "").isdigit():
            return int(stats[name])
    return 0


def cgroup_headroom() -> int | None:
    """Bytes this process's memory cgroup can still take (its limit less what it uses, page cache not
    counted), from cgroup v2 (memory.max) or v1 (memory.limit_in_bytes); None without a limit."""
    for folder, limit_name, usage_name, file_stat in (
            ("/sys/fs/cgroup", "memory.max", "memory.current", ("inactive_file",)),
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
             ("total_inactive_file", "inactive_file"))):
        limit = _read_int(os.path.join(folder, limit_name))
        usage = _read_int(os.path.join(folder, usage_name))
        if limit is not None and usage is not None and limit < 2**60:
            return max(0, limit - usage + _cgroup_stat(os.path.join(folder, "memory.stat"), *file_stat))
    return None


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def declared_headroom() -> int | None:
    """What $MODELDECK_MEMORY_MB leaves beside this process's resident memory; None when unset."""
    try:
        declared = float(os.environ.get(MEMORY_ENV, "")) * 2**20
        with open("/proc/self/statm") as handle:
            resident = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, IndexError):
        return None
    return max(0, int(declared) - resident)


def worker_budget(workers: int) -> int:
    """The bytes one of `workers` worker processes may spend on request bodies and their parse: set by
    $MODELDECK_BODY_MEMORY_MB, else MEMORY_SHARE of what the memory limit (the cgroup's, and
    $MODELDECK_MEMORY_MB's) and the machine's available memory leave now, after init(), shared between
    the workers."""
    given = os.environ.get(BUDGET_ENV, "")
    try:
        if given:
            return max(2**20, int(float(given) * 2**20))
    except ValueError:
        pass
    free = [value for value in (cgroup_headroom(), declared_headroom(), available_memory()) if value is not None]
    if not free:
        return 2**30
    return max(MIN_BUDGET_BYTES, int(min(free) * MEMORY_SHARE / max(1, workers)))


def release_memory() -> None:
    """Hands freed memory back to the system: a body's many chunks and its parse's arrays were freed,
    but the C allocator keeps freed heap pages unless asked (so the container's memory would stay up)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to ask
        pass


@dataclass(frozen=True)
class ParseCost:
    """Bytes a body's parse takes, and the values counted in it."""

    bytes: int
    values: int


_COUNTED = tuple(ord(c) for c in ',[{"')
_COUNT_STEP = 2**20


def _counts(body: bytes | memoryview) -> tuple[int, int, int, int]:
    """How many `,`, `[`, `{` and `"` are in `body`: numpy over 1 MiB slices (~1 ms a MiB; the
    comparisons release the GIL, so the event loop answers meanwhile when this runs in a thread)."""
    data = np.frombuffer(body, dtype=np.uint8)
    found = [0, 0, 0, 0]
    for start in range(0, len(data), _COUNT_STEP):
        part = data[start:start + _COUNT_STEP]
        for i, char in enumerate(_COUNTED):
            found[i] += int(np.count_nonzero(part == char))
    return found[0], found[1], found[2], found[3]


def json_cost(body: bytes | memoryview, value_bytes: int) -> ParseCost:
    """The memory a JSON body's parse may take: `value_bytes` per value (a comma each), OBJECT_BYTES more
    per list, object or string, plus a copy of the text."""
    commas, brackets, braces, quotes = _counts(body)
    values = commas + 1
    return ParseCost(len(body) + values * value_bytes + (brackets + braces + quotes // 2) * OBJECT_BYTES, values)


def npy_cost(body: bytes) -> ParseCost:
    """The memory an .npy body takes loaded and scored, from its header (the body's size when the header
    does not parse: np.load refuses it then)."""
    import io

    try:
        stream = io.BytesIO(body)
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        values = min(int(np.prod(shape, dtype=np.float64)), len(body) // max(1, dtype.itemsize))  # no more than sent
        return ParseCost(len(body) + values * max(dtype.itemsize, ARRAY_VALUE_BYTES), values)
    except Exception:
        return ParseCost(len(body), 0)


def score_cost(json_value_bytes: int | None, body: bytes, content_type: str) -> ParseCost:
    """What POST /score's parse of `body` takes: .npy by its header, JSON by its values at the script's
    measured cost per value (the built-in script's `json_value_bytes`) or, for a script that does not
    say, the tutorial's json.loads."""
    if content_type.split(";")[0].strip().lower() == "application/x-npy":
        return npy_cost(body)
    return json_cost(body, json_value_bytes or TUTORIAL_VALUE_BYTES)


def v2_cost(body: bytes, header_length: str | None) -> ParseCost:
    """What a V2 inference body's parse takes: its JSON part by its values, its binary part as arrays."""
    head = int(header_length) if header_length and header_length.strip().isdigit() else len(body)
    head = min(head, len(body))
    cost = json_cost(memoryview(body)[:head] if head < len(body) else body, V2_VALUE_BYTES)
    binary = len(body) - head
    return ParseCost(cost.bytes + binary * ARRAY_VALUE_BYTES, cost.values)  # UINT8: a value a byte


class BodyBudget:
    """One worker's budget for request bodies in flight and their parse (made before the fork: each
    worker then counts its own). `reserve` and `give_back` are plain arithmetic on the event loop."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self._freed: asyncio.Event | None = None

    async def reserve(self, amount: int, what: Callable[[], str], own: int = 0) -> float:
        """Takes `amount` bytes more for a request that holds `own` already, waiting up to WAIT_SECONDS
        for bodies in flight to give theirs back; returns the seconds waited.

        Raises:
            BodyTooCostly: `amount` and `own` are more than the whole budget (`what()` says why, for the 413).
            Busy: the budget stayed taken.
        """
        if self.in_use + amount <= self.total:
            self.in_use += amount
            return 0.0
        if amount + own > self.total:
            raise BodyTooCostly(what())
        started = time.monotonic()
        deadline = started + WAIT_SECONDS
        while self.in_use + amount > self.total:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Busy(self.busy_message())
            if self._freed is None:
                self._freed = asyncio.Event()
            freed = self._freed
            try:
                await asyncio.wait_for(freed.wait(), left)
            except TimeoutError:
                raise Busy(self.busy_message()) from None
            finally:
                if freed.is_set() and self._freed is freed:
                    self._freed = None  # the next waiter waits for the next release
        self.in_use += amount
        return time.monotonic() - started

    def give_back(self, amount: int) -> None:
        if amount:
            self.in_use = max(0, self.in_use - amount)
            if self._freed is not None:
                self._freed.set()

    def busy_message(self) -> str:
        return BUSY.format(budget=self.total / 2**20, retry=BUSY_RETRY_SECONDS)


def _too_large(size: str, limit: int) -> BodyTooLarge:
    return BodyTooLarge(TOO_LARGE.format(size=size, limit=limit / 2**20))


def _too_large_for_memory(size: int, budget: BodyBudget) -> str:
    return TOO_BIG_FOR_MEMORY.format(size=size / 2**20, cost=2 * size / 2**20, budget=budget.total / 2**20)


async def read_body(receive: Receive, declared: str, limit: int, budget: BodyBudget) -> tuple[bytes, int]:
    """(the request body, the bytes of `budget` it holds): read from ASGI `receive` within
    BODY_TIMEOUT_SECONDS, refused as soon as it passes `limit` bytes (a declared Content-Length above
    it before anything is read). A small body that came in one message is returned as it is, holding
    nothing. A bigger one reserves twice its bytes as it arrives (its Content-Length up front when
    declared); after the join it holds its size. The caller gives back what it holds; memory is handed
    back to the system when the body was refused or its client left.

    Raises:
        BodyTooLarge: past the byte limit.
        BodyTooCostly: twice the body is more than the worker's whole budget.
        Busy: the budget stayed taken.
        BodyTimeout: the body arrived slower than MIN_BODY_RATE after GRACE_SECONDS, or not within
            BODY_TIMEOUT_SECONDS.
        ClientGone: the client disconnected first.
    """
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            return await _receive(receive, declared, limit, budget)
    except TimeoutError:
        release_memory()
        raise BodyTimeout(TOO_SLOW) from None
    except (BodyTooLarge, BodyTooCostly, Busy, BodyTimeout, ClientGone):
        release_memory()
        raise


async def _receive(receive: Receive, declared: str, limit: int, budget: BodyBudget) -> tuple[bytes, int]:
    """The body and the bytes it holds (see read_body), without its time limit."""
    expected = int(declared) if declared.isdigit() else -1
    if expected > limit:
        raise _too_large(f"{expected / 2**20:,.1f} MiB", limit)
    held = 0
    if expected > SMALL_BODY_BYTES:  # declared: take its memory before reading any of it
        await budget.reserve(2 * expected, lambda: _too_large_for_memory(expected, budget))
        held = 2 * expected
    try:
        message = await receive()
    except BaseException:
        budget.give_back(held)
        raise
    chunk = message.get("body", b"")
    if message.get("more_body", False):
        return await _receive_rest(receive, chunk, limit, budget, held)
    budget.give_back(held)  # in one message: it holds its size (if not small)
    if message["type"] != "http.request":
        raise ClientGone()
    if len(chunk) > limit:
        raise _too_large(f"more than {limit / 2**20:,.0f} MiB", limit)
    keep = len(chunk) if len(chunk) > SMALL_BODY_BYTES else 0
    budget.in_use += keep  # never waits: the bytes are here already
    return chunk, keep


async def _receive_rest(receive: Receive, first: bytes, limit: int, budget: BodyBudget,
                        held: int) -> tuple[bytes, int]:
    """The rest of a body that came in more than one message (see read_body)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    waited = 0.0
    chunks = [first]
    size = len(first)
    try:
        while True:
            if size > SMALL_BODY_BYTES and 2 * size > held:
                step = max(2 * size - held, 2 * 2**20)  # in steps: the budget is not asked per chunk
                held += step
                try:
                    waited += await budget.reserve(step, functools.partial(_too_large_for_memory, size, budget),
                                                   held - step)
                except BaseException:
                    held -= step
                    raise
            # the next chunk must come before the body's average rate falls under MIN_BODY_RATE
            due = started + waited + max(GRACE_SECONDS, size / MIN_BODY_RATE)
            if loop.time() >= due:
                raise BodyTimeout(TOO_SLOW_RATE)
            try:
                async with asyncio.timeout_at(due):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(TOO_SLOW_RATE) from None
            if message["type"] != "http.request":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                chunks.clear()  # the traceback keeps this frame alive: drop what was read now
                raise _too_large(f"more than {limit / 2**20:,.0f} MiB", limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                # a big join in a thread: bytes.join lets go of the GIL, so the loop answers meanwhile
                body = b"".join(chunks) if size < THREAD_JOIN_BYTES else await asyncio.to_thread(b"".join, chunks)
                chunks.clear()
                keep = len(body) if size > SMALL_BODY_BYTES else 0
                budget.give_back(held - keep)
                return body, keep
    except BaseException:
        chunks.clear()
        budget.give_back(held)
        raise


async def reserve_parse(budget: BodyBudget, cost: ParseCost, held: int, what: str, hint: str = SEND_NPY) -> int:
    """Reserves `cost` beyond the `held` bytes of the body itself; returns the bytes taken.

    Raises:
        BodyTooCostly: the parse can never fit (TOO_COSTLY, naming `what` and the budget, then `hint`:
            what costs less).
        Busy: the budget stayed taken.
    """
    def message() -> str:
        return TOO_COSTLY.format(what=what, cost=cost.bytes / 2**20, values=cost.values, budget=budget.total / 2**20,
                                 npy=hint)

    await budget.reserve(cost.bytes, message, held)
    return cost.bytes
