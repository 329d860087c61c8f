"""Which failed engine calls are tried again, and how: transient errors and an engine that did
not answer (not a refused permission), a few times with exponential waits (tenacity)."""

from __future__ import annotations

from collections.abc import Callable

from isol8.errors import EnginePermissionDenied, EngineTransient, EngineUnavailable
from isol8.log import get_logger
from isol8.records import NamedTuple

TYPE_CHECKING = False  # imports for annotations only: the run path never loads them
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, EngineTransient | EngineUnavailable) and not isinstance(exc, EnginePermissionDenied)


def _log_retry(state: Any) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.debug("engine call failed (%s); retry %d", exc, state.attempt_number)


class RetryPolicy(NamedTuple):
    attempts: int = 4
    first_wait: float = 0.2
    max_wait: float = 1.0

    def retrying(self, sleep: Callable[[float], None]) -> Any:
        import tenacity  # only on the first idempotent call: the run path never pays for it

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.first_wait, min=self.first_wait, max=self.max_wait),
            retry=tenacity.retry_if_exception(_retryable),
            before_sleep=_log_retry,
            reraise=True,
            sleep=sleep,
        )
