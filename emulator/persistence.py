"""moto's services kept under the state dir, so that a restart (after SIGTERM or SIGKILL) serves the same state.

Design: after every request that may change moto's state, and before its answer is sent, the backends of
every service moto serves here are pickled into one snapshot, written atomically (a temporary file,
fsync, rename, fsync of the directory). A restart loads that snapshot before the first request, so every
write that was answered is there after a SIGKILL, and nothing that was not answered half-exists.

Why a snapshot and not a journal of requests replayed on start: moto's answers depend on its clock and
its random ids (stack ids, version ids, timestamps), which a replay would draw anew; a snapshot keeps
them as they were answered. Why one snapshot of all services and not one per service: a CloudFormation
stack holds the very objects (buckets, roles, parameters) the other services hold, and one pickle keeps
them one object after a reload. What keeps the snapshot small: S3 object bodies, the only large values,
are written once each as content-addressed blobs beside it (blobs/<sha256>), and the snapshot names them.

Writes are serialised by one lock (moto's own models assume little concurrency); reads are not.
In-process writers (the runtime's log shipper) take the same lock through `changing()`.
"""
from __future__ import annotations

import collections
import contextlib
import copyreg
import hashlib
import io
import logging
import os
import pickle
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

log = logging.getLogger("emulator.persistence")

# The services moto answers for the emulator (emulator.server.MOTO_SERVICES), whose state is kept.
SERVICES = ("cloudformation", "s3", "ssm", "ecr", "iam", "sts", "logs", "codebuild")
FORMAT = 1
# Operations that only read, by the prefix of their name in botocore's models. Anything else (and any
# request whose operation cannot be read off it) counts as a write: saving once too often costs a few
# milliseconds, saving once too few loses an acknowledged write.
_READ_PREFIXES = ("Get", "Describe", "List", "BatchGet", "BatchCheck", "Head", "Validate", "Estimate",
                  "Filter", "Lookup", "Search", "Test", "Simulate")
_READ_METHODS = ("GET", "HEAD", "OPTIONS")
_ACTION = re.compile(rb"(?:^|&)Action=([A-Za-z0-9]+)")

_active: "MotoState | None" = None


class PersistenceError(Exception):
    """The state could not be saved or loaded; the message names the file and what to do."""


def _dict_of_dicts():
    return collections.defaultdict(dict)


# defaultdicts moto builds with a lambda (which pickle cannot name), by the lambda's qualified name, and
# a module-level function that makes the same default.
_KNOWN_FACTORIES: dict[str, Callable] = {
    # moto/ssm/models.py: self._resource_tags = defaultdict(lambda: defaultdict(dict))
    "SimpleSystemManagerBackend.__init__.<locals>.<lambda>": _dict_of_dicts,
}


def _reduce_defaultdict(obj: collections.defaultdict):
    factory = obj.default_factory
    if factory is not None and getattr(factory, "__name__", "") == "<lambda>":
        known = _KNOWN_FACTORIES.get(factory.__qualname__)
        if known is None:
            raise pickle.PicklingError(
                f"a defaultdict made with {factory.__qualname__} cannot be saved; add it to "
                "emulator.persistence._KNOWN_FACTORIES with a module-level function that makes the same default")
        factory = known
    if type(obj) is collections.defaultdict:
        return collections.defaultdict, (factory,), None, None, iter(obj.items())
    # A subclass (moto's ssm ParameterDict) may take other arguments than a factory: made without __init__,
    # then given its factory, its items and its attributes.
    return _new_defaultdict, (type(obj), factory), _dict_state(obj), None, None, _set_dict_state


def _new_defaultdict(cls, factory):
    obj = cls.__new__(cls)
    obj.default_factory = factory
    return obj


def _reduce_dict_subclass(obj: dict):
    # pickle's default for a dict subclass saves obj.items() and restores through obj[key] = value; moto's S3
    # key store (_VersionedKeyStore) overrides both to show the latest version only, so its older versions
    # would be lost. Saved and restored as the plain dict underneath, which is what the class itself keeps.
    return _new_dict_subclass, (type(obj),), _dict_state(obj), None, None, _set_dict_state


def _new_dict_subclass(cls):
    return cls.__new__(cls)


def _dict_state(obj: dict) -> tuple:
    return getattr(obj, "__dict__", None), list(dict.items(obj))


def _set_dict_state(obj: dict, state: tuple) -> None:
    attributes, items = state
    if attributes:
        obj.__dict__.update(attributes)
    dict.update(obj, items)  # dict's own update: never the subclass's __setitem__


def _subclasses(cls) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def _reduce_rlock(_lock):
    return threading.RLock, ()


def _reduce_lock(_lock):
    return threading.Lock, ()


class _Blobs:
    """S3 object bodies by sha256, each written once (atomically) and read back on load."""

    def __init__(self, root: Path):
        self.root = root
        self.written_since_sync = False
        self.referenced: set[str] = set()

    def path(self, digest: str) -> Path:
        return self.root / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, data, sync_dir=False)
            self.written_since_sync = True
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise PersistenceError(f"the S3 object body {digest} is missing from {self.root}") from None


# The blobs of the snapshot being loaded: pickle's reconstructors are module-level functions.
_loading = threading.local()


def _restore_s3_key(cls, digest: str, state: dict):
    key = cls.__new__(cls)
    state["value"] = _loading.blobs.get(digest) if digest else b""
    key.__setstate__(state)
    key._emulator_blob = digest
    _loading.blobs.referenced.add(digest)
    return key


class _Pickler(pickle.Pickler):
    def __init__(self, file, blobs: _Blobs):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        from moto.s3.models import FakeKey

        self.blobs = blobs
        self.dispatch_table = copyreg.dispatch_table.copy()
        for cls in _subclasses(dict):
            if issubclass(cls, collections.defaultdict):
                self.dispatch_table[cls] = _reduce_defaultdict
            elif cls.__module__.startswith("moto."):
                self.dispatch_table[cls] = _reduce_dict_subclass
        self.dispatch_table[type(threading.RLock())] = _reduce_rlock
        self.dispatch_table[type(threading.Lock())] = _reduce_lock
        self.dispatch_table[FakeKey] = self._reduce_s3_key

    def _reduce_s3_key(self, key):
        # moto's FakeKey pickles its body inline (__getstate__); here the body goes to a blob, written the
        # first time this key is saved. moto never changes a key's body after creating it (a PutObject makes
        # a new FakeKey), so the digest is remembered on the key.
        # The state is moto's __getstate__ without the body, which is read only when not saved before.
        state = {k: v for k, v in key.__dict__.items() if k not in ("_value_buffer", "lock", "_emulator_blob")}
        digest = getattr(key, "_emulator_blob", None)
        if digest is None:
            try:
                data = key.value
            except ValueError:  # its buffer is closed: moto disposed of a deleted key (its __getstate__ says so)
                data = b""
            digest = self.blobs.put(data) if data else ""
            key._emulator_blob = digest
        if digest:
            self.blobs.referenced.add(digest)
        return _restore_s3_key, (type(key), digest, state)


def _write_atomically(path: Path, data, sync_dir: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def operation(environ: dict, service: str | None, body: bytes) -> str | None:
    """The operation a moto request calls, as far as it can be read off it (None: unknown)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocol (SSM, ECR, Logs, CodeBuild): "AmazonSSM.PutParameter"
        return target.rsplit(".", 1)[-1]
    if service == "s3":
        return None
    match = _ACTION.search(environ.get("QUERY_STRING", "").encode()) or _ACTION.search(body)
    return match.group(1).decode() if match else None


def is_read(environ: dict, service: str | None, body: bytes) -> bool:
    if environ.get("REQUEST_METHOD", "GET") in _READ_METHODS:
        return True
    if service == "s3":
        return False  # S3's writes are PUT, POST and DELETE
    op = operation(environ, service, body)
    return op is not None and op.startswith(_READ_PREFIXES)


class MotoState:
    """The snapshot of moto's backends under `<state dir>/moto/`, and the lock every write takes."""

    def __init__(self, state_dir: Path, services: Iterable[str] = SERVICES):
        self.root = state_dir / "moto"
        self.path = self.root / "state.pickle"
        self.services = tuple(services)
        self.blobs = _Blobs(self.root / "blobs")
        self.lock = threading.RLock()
        self.saves = 0

    def _backend_dicts(self) -> dict:
        from moto.backends import get_backend

        return {name: get_backend(name) for name in self.services}

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> dict[str, int]:
        """Put the saved state into moto's backends; how many region backends each service got back."""
        if not self.path.exists():
            return {}
        try:
            with self.lock:
                _loading.blobs = self.blobs
                try:
                    with open(self.path, "rb") as f:
                        doc = pickle.load(f)
                finally:
                    _loading.blobs = None
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError(f"not a snapshot of format {FORMAT}")
        except Exception as exc:  # an unreadable snapshot must be said, and kept for a person to look at
            kept = self.path.with_name(f"state.unreadable-{int(time.time())}.pickle")
            os.replace(self.path, kept)
            raise PersistenceError(
                f"could not load the saved state of S3, SSM, ECR, IAM, Logs, CloudFormation and CodeBuild from "
                f"{self.path} ({type(exc).__name__}: {exc}). It was moved to {kept}, and the bodies it names are "
                f"kept in {self.blobs.root}; the emulator starts without it. A different moto version than the one "
                f"that wrote it is the usual cause: reinstall the pinned requirements (make .venv/.installed), or "
                f"remove the state dir to start clean.") from exc
        counts = {}
        dicts = self._backend_dicts()
        for name, accounts in doc["backends"].items():
            if name not in dicts:
                continue
            backend_dict = dicts[name]
            for account, regions in accounts.items():
                per_account = backend_dict[account]
                for region, backend in regions.items():
                    dict.__setitem__(per_account, region, backend)
                counts[name] = counts.get(name, 0) + len(regions)
        return counts

    # -- saving ------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        state = {name: {account: dict(per_account) for account, per_account in list(backend_dict.items())}
                 for name, backend_dict in self._backend_dicts().items()}
        buf = io.BytesIO()
        _Pickler(buf, self.blobs).dump({"format": FORMAT, "saved_at": time.time(), "backends": state})
        return buf.getvalue()

    def save(self) -> None:
        """Write the snapshot now (under the write lock); PersistenceError when it cannot be written."""
        with self.lock:
            self.root.mkdir(parents=True, exist_ok=True)
            data = None
            for attempt in range(3):
                try:
                    data = self.snapshot()
                    break
                except RuntimeError as exc:
                    # "dictionary changed size during iteration": a thread outside the lock (moto's own
                    # lazy updates on a read, the IAM issuer's AssumeRole) changed a backend meanwhile.
                    if attempt == 2:
                        raise PersistenceError(f"moto's state kept changing while it was saved: {exc}") from exc
                    time.sleep(0.01)
            if self.blobs.written_since_sync:
                _fsync_dir(self.blobs.root)  # the bodies' names are durable before the snapshot names them
                self.blobs.written_since_sync = False
            _write_atomically(self.path, data)
            self.saves += 1

    def remove_unreferenced_blobs(self) -> int:
        """Remove bodies no saved object names (objects deleted or overwritten); done once, on start."""
        with self.lock:
            self.blobs.referenced = set()
            self.save()
            removed = 0
            if self.blobs.root.is_dir():
                for path in self.blobs.root.iterdir():
                    if path.name not in self.blobs.referenced:
                        path.unlink(missing_ok=True)
                        removed += 1
            return removed

    # -- the WSGI side -----------------------------------------------------------------------
    def wrap(self, app, service_of: Callable[[dict], str | None]):
        """`app` (moto's WSGI application) with every write saved before its answer goes out.

        `service_of(environ)` names the service a request signs for (None when unsigned).
        """
        from .core import wsgi
        from .core.errors import ServiceError

        def persistent_app(environ: dict, start_response):
            if environ.get("REQUEST_METHOD", "GET") in _READ_METHODS:
                return app(environ, start_response)
            # The body is read before the lock is taken, so a slow upload does not hold up other writes.
            try:
                body = wsgi.read_body(environ)
            except ServiceError as exc:  # e.g. a Content-Length that is not a number: nothing reached moto
                return _answer(start_response, exc)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["wsgi.input_terminated"] = False
            service = service_of(environ)
            if is_read(environ, service, body):
                return app(environ, start_response)
            answered: list = []

            def capture(status, headers, exc_info=None):
                answered[:] = [status, headers, exc_info]
                return chunks.append

            chunks: list[bytes] = []
            with self.lock:
                result = app(environ, capture)
                try:
                    chunks.extend(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
                try:
                    self.save()
                except Exception as exc:  # the write happened in memory only: the client must not think it kept
                    log.exception("could not save moto's state to %s", self.path)
                    return _answer(start_response, ServiceError(
                        f"The emulator made the change but could not save it to {self.path} "
                        f"({type(exc).__name__}: {exc}), so it would not survive a restart. Check the disk "
                        f"(space, permissions) of the state dir, then repeat the call."))
            start_response(*answered)
            return chunks

        return persistent_app


def _answer(start_response, exc) -> list[bytes]:
    from http import HTTPStatus

    from .core.restjson import error_response

    response = error_response(exc)
    start_response(f"{response.status} {HTTPStatus(response.status).phrase}", list(response.headers.items()))
    return [response.body]


def install(state: MotoState | None) -> None:
    """Make `state` the one in-process writers save through (None: nothing is saved)."""
    global _active
    _active = state


@contextlib.contextmanager
def changing() -> Iterator[None]:
    """For code that changes moto's backends in-process, not through a request: take the write lock, and save
    when done (a no-op when the emulator keeps no state, as in tests that use moto directly)."""
    state = _active
    if state is None:
        yield
        return
    with state.lock:
        try:
            yield
        finally:
            try:
                state.save()
            except Exception:  # no client to answer: the writer (the log shipper) must go on, and the log says it
                log.exception("could not save moto's state to %s after an in-process write", state.path)
