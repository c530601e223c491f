"""Run a blocking adapter on a worker thread of its own.

pyroute2 0.9's synchronous ``IPRoute`` drives a private asyncio event loop, so it
cannot be created or called from a thread whose loop is running (the daemon's).
``InThread`` owns such an object on one worker thread and forwards every method
call there, waiting for the result: the calls are rare (port setup, router flags,
filters) and short, so the daemon simply blocks on them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class InThread(Generic[T]):
    def __init__(self, factory: Callable[..., T], *args: Any, **kwargs: Any) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        try:
            self._obj: T = self._pool.submit(factory, *args, **kwargs).result()
        except BaseException:
            self._pool.shutdown(wait=False)
            raise

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._pool.submit(attr, *args, **kwargs).result()

        return call

    def close(self) -> None:
        try:
            closer = getattr(self._obj, "close", None)
            if closer is not None:
                self._pool.submit(closer).result()
        finally:
            self._pool.shutdown(wait=True)
