"""mygene.info look-ups through the real ``mygene`` client, with every answer cached on disk.

The cache is the only way compute jobs see mygene: only the submit-host rule that builds the species'
STRING gene table talks to the service, and a rerun answers from the cache without a single request.

Layout under ``cache_dir``::

    release.json                                   {"release": "<build_version>", "url": ..., "recorded": ...}
    <release>/taxon<species>/<scope>/<fields>.json {query: [hit, ...], ...}   ([] = the service found nothing)

Answers are keyed by query, scope, species and fields, under the service release that gave them
(``build_version`` of ``GET /v3/metadata``). The release in use is the one recorded in ``release.json``;
a run whose queries are all cached makes no request at all. When a query is missing, the service is asked
for its current release first: if it moved on, the new release is recorded and every query is asked again
under it (answers of two releases are never mixed). Delete ``release.json`` (or the folder) to start over.

Transfers: batches of ``batch_size`` queries (one ``POST /v3/query`` each), a socket timeout per request,
``retries`` extra attempts with exponential backoff after a timeout, a connection error or HTTP 5xx/429;
each answered batch is saved at once, so an interrupted run resumes where it stopped. When the service stays
unreachable, :class:`MyGeneUnavailable` says so; callers may instead continue with what the cache holds
(``lookup(..., on_unreachable="continue")``).

Needs ``biothings_client`` >= 0.4 (the httpx-based client that ``mygene`` 3.2 uses): the client is given an
``httpx.Client`` with a timeout, because its own has none.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from genegraph.errors import DataError
from genegraph.io import write_json

log = logging.getLogger(__name__)

DEFAULT_URL = "https://mygene.info/v3"
ON_UNREACHABLE = ("error", "continue")


class MyGeneUnavailable(RuntimeError):
    """The mygene.info service could not be reached (after retries) for queries the cache does not hold."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._,-]+", "_", name)


class MyGeneCache:
    """Cached ``querymany`` for one species, scope and field list.

    ``species``: NCBI taxon id (mygene's ``species`` parameter). ``client_factory`` builds the client
    (default ``mygene.MyGeneInfo``); its ``url`` attribute is set to ``url``. ``offline=True`` never builds
    a client: look-ups answer from the cache only (what compute jobs use).
    """

    def __init__(
        self,
        cache_dir: str | Path,
        species: int,
        *,
        scope: str = "ensembl.protein",
        fields: Sequence[str] = ("symbol", "ensembl.gene"),
        url: str = DEFAULT_URL,
        offline: bool = False,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        batch_size: int = 1000,
        delay: float = 1.0,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        if not isinstance(species, int) or isinstance(species, bool) or species <= 0:
            raise DataError(f"mygene species must be an NCBI taxon id (int), got {species!r}")
        self.cache_dir = Path(cache_dir)
        self.species = species
        self.scope = scope
        self.fields = tuple(fields)
        self.url = url.rstrip("/")
        self.offline = offline
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.batch_size = batch_size
        self.delay = delay
        self._client_factory = client_factory
        self._client: Any = None
        #: Requests sent to the service by this object (metadata + query batches, retries included).
        self.requests = 0

    # --- cache files -------------------------------------------------------------------------------

    @property
    def _release_file(self) -> Path:
        return self.cache_dir / "release.json"

    def recorded_release(self) -> str | None:
        """The release the cache answers under (None before the first contact with the service)."""
        if not self._release_file.exists():
            return None
        return str(json.loads(self._release_file.read_text())["release"])

    def _answers_file(self, release: str) -> Path:
        return (self.cache_dir / _safe(release) / f"taxon{self.species}" / _safe(self.scope)
                / f"{_safe(','.join(self.fields))}.json")

    def _load(self, release: str | None) -> dict[str, list[dict]]:
        if release is None:
            return {}
        path = self._answers_file(release)
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"mygene cache file {path} is corrupt ({err}); delete it to ask again") from err

    def _save(self, release: str, answers: dict[str, list[dict]]) -> None:
        write_json(answers, self._answers_file(release))

    # --- service -----------------------------------------------------------------------------------

    def _get_client(self) -> Any:
        if self._client is None:
            import httpx

            if self._client_factory is None:
                import mygene

                self._client_factory = mygene.MyGeneInfo
            client = self._client_factory()
            client.url = self.url
            if not hasattr(client, "http_client_setup"):
                raise DataError("the mygene client needs biothings_client >= 0.4 (httpx based); "
                                "pip install 'biothings_client>=0.4'")
            client.http_client = httpx.Client(timeout=httpx.Timeout(self.timeout))
            client.http_client_setup = True
            client.delay = 0  # batching and pauses are done here
            client.step = client.max_query = max(self.batch_size, 1)
            self._client = client
        return self._client

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one request with retries; map failures to :class:`MyGeneUnavailable` / :class:`DataError`."""
        import httpx

        attempt = 0
        while True:
            self.requests += 1
            try:
                return fn()
            except httpx.HTTPStatusError as err:
                code = err.response.status_code
                if code < 500 and code != 429:
                    raise DataError(f"mygene.info at {self.url} refused {what}: HTTP {code}") from err
                reason = f"HTTP {code}"
            except (httpx.TimeoutException, httpx.TransportError) as err:
                reason = f"{type(err).__name__}: {err}"
            except ValueError as err:  # a body that is not JSON
                reason = f"unreadable answer ({err})"
            if attempt >= self.retries:
                raise MyGeneUnavailable(f"mygene.info at {self.url} unreachable for {what} after "
                                        f"{attempt + 1} attempts (last: {reason})")
            wait = self.backoff * 2**attempt
            attempt += 1
            log.warning("mygene %s failed (%s); retry %d/%d in %.1f s", what, reason, attempt, self.retries, wait)
            time.sleep(wait)

    def service_release(self) -> str:
        """The service's current release (``build_version`` of its metadata): one request."""
        client = self._get_client()
        meta = self._call("GET /metadata", lambda: client.metadata())
        release = meta.get("build_version") if isinstance(meta, dict) else None
        if not release:
            raise DataError(f"mygene.info at {self.url} answered /metadata without a build_version")
        return str(release)

    def _record_release(self, release: str) -> None:
        write_json({"release": release, "url": self.url,
                    "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, self._release_file)

    def _query_batch(self, batch: list[str]) -> dict[str, list[dict]]:
        client = self._get_client()
        out = self._call(
            f"POST /query ({len(batch)} {self.scope} ids)",
            lambda: client.querymany(batch, scopes=self.scope, fields=",".join(self.fields),
                                     species=self.species, returnall=True, verbose=False),
        )
        answers: dict[str, list[dict]] = {q: [] for q in batch}
        for hit in out["out"]:
            query = str(hit.get("query", ""))
            if query not in answers:
                raise DataError(f"mygene.info answered a query that was not asked: '{query}'")
            if not hit.get("notfound", False):
                answers[query].append({k: v for k, v in hit.items() if k != "query"})
        return answers

    # --- look-up -----------------------------------------------------------------------------------

    def lookup(self, queries: Iterable[str], *, on_unreachable: str = "error") -> dict[str, list[dict]]:
        """Hits per query (``[]``: the service found nothing), from the cache, asking the service for the
        rest. Queries left unanswered (offline, or unreachable with ``on_unreachable="continue"``) are absent
        from the result."""
        if on_unreachable not in ON_UNREACHABLE:
            raise DataError(f"on_unreachable must be one of {ON_UNREACHABLE}, not '{on_unreachable}'")
        wanted = list(dict.fromkeys(str(q) for q in queries))
        release = self.recorded_release()
        answers = self._load(release)
        missing = [q for q in wanted if q not in answers]
        cached = len(wanted) - len(missing)
        asked = 0
        if missing and not self.offline:
            try:
                current = self.service_release()
                if current != release:
                    if release is not None:
                        log.warning("mygene.info release changed from %s to %s: queries are asked again under %s",
                                    release, current, current)
                    release = current
                    self._record_release(release)
                    answers = self._load(release)
                    missing = [q for q in wanted if q not in answers]
                    cached = len(wanted) - len(missing)
                for start in range(0, len(missing), self.batch_size):
                    if start and self.delay:
                        time.sleep(self.delay)
                    batch = missing[start:start + self.batch_size]
                    answers.update(self._query_batch(batch))
                    asked += len(batch)
                    self._save(release, answers)
            except MyGeneUnavailable as err:
                if on_unreachable == "error":
                    raise MyGeneUnavailable(f"{err}. Set the mygene on_unreachable switch to 'continue' to go on "
                                            f"with what the tables map") from err
                log.warning("%s; continuing without the %d uncached queries", err,
                            sum(q not in answers for q in wanted))
        result = {q: answers[q] for q in wanted if q in answers}
        log.info("mygene %s -> %s (taxon %d, release %s): %d queries, %d from the cache, %d asked, %d unanswered, "
                 "%d requests", self.scope, ",".join(self.fields), self.species, release, len(wanted), cached,
                 asked, len(wanted) - len(result), self.requests)
        return result
