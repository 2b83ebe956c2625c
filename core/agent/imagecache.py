"""Per-host image cache: each image downloaded once, verified by sha256, published atomically.

The download itself is a callable (``Fetcher``) so the agent can pass one that streams from
glance with its token; ``http_fetcher`` is the httpx streaming one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from drivers.base import DriverError, InvalidSpec

__all__ = ["Fetcher", "ImageCache", "ImageChecksumMismatch", "ImageFetchError", "http_fetcher"]

Fetcher = Callable[[str], Iterator[bytes]]  # image id -> chunks of the image

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ImageFetchError(DriverError):
    """The image could not be downloaded (an HTTP error answer: trying again would not help)."""


class ImageFetchInterrupted(ImageFetchError):
    """The transfer broke off (a busy or restarting controller): worth another try."""


class ImageChecksumMismatch(DriverError):
    """The downloaded bytes do not have the sha256 the caller expected."""


class ImageCache:
    """Images under ``root``, named by image id.

    Concurrent ``get`` calls for one image (threads of one agent, or two agent processes)
    download it once: a per-image thread lock plus an flock on ``<root>/.locks/<id>``.
    """

    def __init__(self, root: str, fetch: Fetcher) -> None:
        if not os.path.isabs(root):
            raise InvalidSpec(f"image cache root must be absolute, got {root!r}")
        self.root = root
        self._fetch = fetch
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        os.makedirs(os.path.join(root, ".locks"), exist_ok=True)
        self.downloads = 0  # how many fetches this object actually ran (for tests and metrics)

    def path(self, image_id: str) -> str:
        _check_id(image_id)
        return os.path.join(self.root, image_id)

    def cached(self, image_id: str) -> bool:
        return os.path.isfile(self.path(image_id))

    def get(self, image_id: str, *, sha256: str | None = None) -> str:
        """Path of the cached image, downloading it first if needed (verified when ``sha256`` given)."""
        path = self.path(image_id)
        want = sha256.lower() if sha256 else None
        if want is not None and not re.fullmatch(r"[0-9a-f]{64}", want):
            raise InvalidSpec(f"bad sha256 {sha256!r}")
        with self._image_lock(image_id):
            if os.path.isfile(path) and (want is None or self.recorded_sha(image_id) == want):
                return path
            for attempt in range(FETCH_ATTEMPTS):
                try:
                    self._download(image_id, path, want)
                    break
                except ImageFetchError as e:
                    # a dropped connection (a busy or restarting controller) is worth another try;
                    # an HTTP error answer is not
                    if not isinstance(e, ImageFetchInterrupted) or attempt == FETCH_ATTEMPTS - 1:
                        raise
                    time.sleep(0.5 * (attempt + 1))
        return path

    def remove(self, image_id: str) -> bool:
        path = self.path(image_id)
        with self._image_lock(image_id):
            existed = os.path.exists(path)
            for p in (path, path + ".sha256"):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
        return existed

    def list(self) -> list[str]:
        return sorted(
            n for n in os.listdir(self.root) if _ID_RE.match(n) and not n.endswith((".sha256", ".part"))
        )

    def recorded_sha(self, image_id: str) -> str | None:
        """The sha256 recorded when the image was cached (None: none recorded); images.py checks it."""
        try:
            with open(self.path(image_id) + ".sha256") as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    # --- private ------------------------------------------------------------------------------

    def _download(self, image_id: str, path: str, want: str | None) -> None:
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{image_id}.", suffix=".part")
        self.downloads += 1
        try:
            with os.fdopen(fd, "wb") as f:
                try:
                    for chunk in self._fetch(image_id):
                        f.write(chunk)
                        digest.update(chunk)
                except DriverError:
                    raise
                except (OSError, httpx.HTTPError) as exc:
                    cls = ImageFetchInterrupted if isinstance(exc, httpx.TransportError) else ImageFetchError
                    raise cls(f"download of image {image_id} failed: {exc}") from None
                f.flush()
                os.fsync(f.fileno())
            got = digest.hexdigest()
            if want is not None and got != want:
                raise ImageChecksumMismatch(f"image {image_id}: sha256 is {got}, expected {want}")
            with open(path + ".sha256", "w") as f:
                f.write(got + "\n")
            os.replace(tmp, path)  # atomic: readers see the whole image or none
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @contextmanager
    def _image_lock(self, image_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(image_id, threading.Lock())
        with lock, open(os.path.join(self.root, ".locks", image_id), "a") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)


FETCH_ATTEMPTS = 3


def http_fetcher(
    url_template: str,
    *,
    client: httpx.Client | None = None,
    headers: dict[str, str] | None = None,
    chunk_size: int = 1 << 20,
) -> Fetcher:
    """A Fetcher streaming ``url_template.format(image_id=...)`` with httpx."""
    if "{image_id}" not in url_template:
        raise InvalidSpec("url_template must contain {image_id}")

    def fetch(image_id: str) -> Iterator[bytes]:
        c = client or httpx.Client(timeout=httpx.Timeout(30.0, read=300.0), follow_redirects=True)
        try:
            with c.stream("GET", url_template.format(image_id=image_id), headers=headers) as resp:
                if resp.status_code != 200:
                    raise ImageFetchError(f"download of image {image_id}: HTTP {resp.status_code}")
                yield from resp.iter_bytes(chunk_size)
        finally:
            if client is None:
                c.close()

    return fetch


def _check_id(image_id: str) -> None:
    if not isinstance(image_id, str) or not _ID_RE.match(image_id) or image_id.endswith((".sha256", ".part")):
        raise InvalidSpec(f"bad image id {image_id!r}")
