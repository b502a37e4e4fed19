"""The real ``mygene`` client against a loopback server that answers like mygene.info v3
(``POST /v3/query/``, ``GET /v3/metadata``): success, partial and duplicate hits, 5xx then success,
timeouts, an unreachable service, release changes; the on-disk cache makes a rerun request-free."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from genegraph.errors import DataError
from genegraph.graphs.priors.mygene_cache import MyGeneCache, MyGeneUnavailable
from genegraph.graphs.priors.string_links import map_proteins_to_genes, mygene_queries

HITS = {
    "ENSP00000000001": [{"_id": "1", "_score": 20.0, "symbol": "GENEA", "ensembl": {"gene": "ENSG00000000001"}}],
    "ENSP00000000002": [  # duplicate hits: one protein, two genes
        {"_id": "2", "_score": 15.0, "symbol": "GENEB", "ensembl": [{"gene": "ENSG00000000002"}]},
        {"_id": "3", "_score": 15.0, "symbol": "GENEBL", "ensembl": {"gene": ["ENSG00000000009"]}},
    ],
    "ENSP00000000004": [{"_id": "4", "_score": 9.0, "symbol": "OLDNAME", "ensembl": {"gene": "ENSG00000000004"}}],
}


class FakeMyGene(ThreadingHTTPServer):
    """Answers like mygene.info v3; ``fail_next`` POSTs get HTTP 503, ``slow_next`` POSTs sleep ``slow_s``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.release = "20240101"
        self.fail_next = 0
        self.slow_next = 0
        self.slow_s = 0.0
        self.requests: list[tuple[str, str, dict]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v3"

    def count(self, method: str | None = None) -> int:
        return sum(1 for m, _, _ in self.requests if method in (None, m))


class Handler(BaseHTTPRequestHandler):
    server: FakeMyGene

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _json(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(("GET", self.path, {}))
        if self.path.split("?")[0] == "/v3/metadata":
            self._json(200, {"biothing_type": "gene", "build_version": self.server.release,
                             "build_date": "2024-01-01T00:00:00", "stats": {"total": 3}})
        else:
            self._json(404, {"success": False, "error": f"no route {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        self.server.requests.append(("POST", self.path, form))
        if self.server.slow_next > 0:
            self.server.slow_next -= 1
            time.sleep(self.server.slow_s)
        if self.server.fail_next > 0:
            self.server.fail_next -= 1
            self._json(503, {"success": False, "error": "service unavailable"})
            return
        if self.path.rstrip("/") != "/v3/query" or form.get("scopes") != "ensembl.protein" \
                or form.get("species") != "9606":
            self._json(400, {"success": False, "error": f"bad request {self.path} {form}"})
            return
        fields = form.get("fields", "").split(",")
        out = []
        for q in next(csv.reader([form["q"]], skipinitialspace=True)):  # the client sends "a","b"
            hits = HITS.get(q)
            if not hits:
                out.append({"query": q, "notfound": True})
            for hit in hits or []:
                keep = {k: v for k, v in hit.items() if k.startswith("_") or k.split(".")[0] in
                        {f.split(".")[0] for f in fields}}
                out.append({"query": q, **keep})
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self._json(200, out)


@pytest.fixture
def server(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    srv = FakeMyGene()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def cache(tmp_path, url: str, **kw) -> MyGeneCache:
    kw = {"timeout": 2.0, "retries": 3, "backoff": 0.0, "delay": 0.0} | kw
    return MyGeneCache(tmp_path / "mygene", 9606, url=url, **kw)


QUERIES = ["ENSP00000000001", "ENSP00000000002", "ENSP00000000003"]


def test_hits_partial_and_duplicates_then_cache_answers_without_requests(server, tmp_path):
    first = cache(tmp_path, server.url)
    got = first.lookup(QUERIES)
    assert got["ENSP00000000001"][0]["symbol"] == "GENEA"
    assert [h["symbol"] for h in got["ENSP00000000002"]] == ["GENEB", "GENEBL"]  # both duplicate hits kept
    assert got["ENSP00000000003"] == []  # not found: cached as an empty answer
    assert (server.count("GET"), server.count("POST")) == (1, 1)
    method, path, form = server.requests[-1]
    assert path == "/v3/query/" and form["fields"] == "symbol,ensembl.gene" and form["species"] == "9606"
    assert first.recorded_release() == "20240101"
    assert (tmp_path / "mygene" / "20240101" / "taxon9606" / "ensembl.protein" / "symbol,ensembl.gene.json").exists()

    before = server.count()
    second = cache(tmp_path, server.url)  # a rerun: a new object over the same cache folder
    assert second.lookup(reversed(QUERIES)) == got
    assert server.count() == before and second.requests == 0


def test_batches_are_saved_one_by_one(server, tmp_path):
    c = cache(tmp_path, server.url, batch_size=2)
    got = c.lookup(["ENSP00000000001", "ENSP00000000002", "ENSP00000000003", "ENSP00000000004", "ENSP00000000005"])
    assert len(got) == 5 and server.count("POST") == 3
    assert [f["q"].count(",") + 1 for m, _, f in server.requests if m == "POST"] == [2, 2, 1]


def test_5xx_then_success_is_retried(server, tmp_path, caplog):
    server.fail_next = 2
    c = cache(tmp_path, server.url, retries=3)
    with caplog.at_level(logging.WARNING, logger="genegraph.graphs.priors.mygene_cache"):
        got = c.lookup(QUERIES)
    assert got["ENSP00000000001"][0]["symbol"] == "GENEA"
    assert server.count("POST") == 3 and "HTTP 503" in caplog.text


def test_timeout_then_success(server, tmp_path):
    server.slow_next, server.slow_s = 1, 1.0
    c = cache(tmp_path, server.url, timeout=0.2, retries=2)
    got = c.lookup(QUERIES[:1])
    assert got["ENSP00000000001"][0]["symbol"] == "GENEA"
    assert server.count("POST") == 2


def test_persistent_timeouts_are_a_clear_error_or_skipped_on_request(server, tmp_path, caplog):
    c = cache(tmp_path, server.url)
    c.lookup(QUERIES[:1])  # cached
    server.slow_next, server.slow_s = 10, 0.6
    slow = cache(tmp_path, server.url, timeout=0.1, retries=1)
    with pytest.raises(MyGeneUnavailable, match=r"unreachable .* after 2 attempts .*ReadTimeout.*on_unreachable"):
        slow.lookup(QUERIES)
    with caplog.at_level(logging.WARNING, logger="genegraph.graphs.priors.mygene_cache"):
        got = slow.lookup(QUERIES, on_unreachable="continue")
    assert list(got) == ["ENSP00000000001"]  # what the cache holds; the rest is left unanswered
    assert "continuing without the 2 uncached queries" in caplog.text


def test_unreachable_service(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = cache(tmp_path, f"http://127.0.0.1:{port}/v3", retries=1)
    with pytest.raises(MyGeneUnavailable, match="ConnectError"):
        c.lookup(QUERIES)
    assert c.lookup(QUERIES, on_unreachable="continue") == {}
    with pytest.raises(DataError, match="on_unreachable"):
        c.lookup(QUERIES, on_unreachable="ignore")


def test_offline_reads_only_the_cache(server, tmp_path):
    cache(tmp_path, server.url).lookup(QUERIES[:2])
    before = server.count()
    offline = cache(tmp_path, server.url, offline=True)
    got = offline.lookup(QUERIES)
    assert set(got) == set(QUERIES[:2]) and server.count() == before and offline.requests == 0


def test_new_service_release_asks_again(server, tmp_path, caplog):
    cache(tmp_path, server.url).lookup(QUERIES[:1])
    server.release = "20250101"
    c = cache(tmp_path, server.url)
    assert c.lookup(QUERIES[:1]) and server.count("POST") == 1  # all cached: the service is not asked
    with caplog.at_level(logging.WARNING, logger="genegraph.graphs.priors.mygene_cache"):
        c.lookup(QUERIES[:2])
    assert "release changed from 20240101 to 20250101" in caplog.text
    assert server.requests[-1][2]["q"] == '"ENSP00000000001","ENSP00000000002"'  # both asked again
    assert c.recorded_release() == "20250101"


def test_client_errors_are_data_errors(server, tmp_path):
    c = MyGeneCache(tmp_path / "m", 10090, url=server.url, retries=0, delay=0.0)  # the server expects 9606
    with pytest.raises(DataError, match="HTTP 400"):
        c.lookup(QUERIES)
    with pytest.raises(DataError, match="taxon id"):
        MyGeneCache(tmp_path / "m", "human")  # type: ignore[arg-type]


def test_mygene_maps_only_what_the_tables_leave(server, tmp_path):
    gene_table = pd.DataFrame({"ensembl": ["ENSG00000000001", "ENSG00000000002", "ENSG00000000004"],
                               "symbol": ["GENEA", "GENEB", "GENED"], "version": "1", "length": "1",
                               "biotype": "protein_coding"})
    aliases = pd.DataFrame({"protein": ["9606.ENSP00000000001"], "alias": ["GENEA"],
                            "source": ["Ensembl_HGNC_symbol"]})
    info = pd.DataFrame({"protein": ["9606.ENSP00000000003"], "preferred_name": ["ENSP00000000003"]})  # unnamed
    proteins = [f"9606.ENSP0000000000{k}" for k in (1, 2, 3, 4)]
    queries = mygene_queries(proteins, taxon=9606, gene_table=gene_table, aliases=aliases, info=info)
    assert queries == ["ENSP00000000002", "ENSP00000000003", "ENSP00000000004"]  # what the tables leave
    c = cache(tmp_path, server.url)
    answers = c.lookup(queries)
    mapping, summary = map_proteins_to_genes(proteins, taxon=9606, gene_table=gene_table, aliases=aliases,
                                             info=info, mygene_answers=answers)
    got = mapping.set_index("protein")
    assert server.requests[-1][2]["q"] == '"ENSP00000000002","ENSP00000000003","ENSP00000000004"'
    assert got.at["9606.ENSP00000000001", "method"] == "alias:Ensembl_HGNC_symbol"
    assert got.at["9606.ENSP00000000002", "symbol"] == "GENEB"  # the duplicate hit GENEBL is unknown to GENCODE
    assert got.at["9606.ENSP00000000004", "symbol"] == "GENED"  # Ensembl gene -> GENCODE beats mygene's symbol
    assert got.at["9606.ENSP00000000004", "method"] == "mygene_ensembl_gene"
    assert summary["unmapped"] == 1 and summary["mygene_queries"] == 3

    rerun = cache(tmp_path, server.url)
    before = server.count()
    again, _ = map_proteins_to_genes(proteins, taxon=9606, gene_table=gene_table, aliases=aliases, info=info,
                                     mygene_answers=rerun.lookup(queries))
    pd.testing.assert_frame_equal(again, mapping)
    assert server.count() == before  # the second run issues zero requests
    offline, _ = map_proteins_to_genes(proteins, taxon=9606, gene_table=gene_table, aliases=aliases, info=info)
    assert len(offline) == 1  # without mygene answers only the aliases map
