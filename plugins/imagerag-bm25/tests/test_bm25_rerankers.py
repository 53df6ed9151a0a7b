"""BM25 and RRF order on a hand-made caption set, with the expected scores computed by hand."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from imagerag_bm25 import BM25Index, BM25Reranker, RRFReranker
from imagerag_sdk.errors import ConfigError, MissingDependencyError
from imagerag_sdk.testing.contracts import RerankerContract, assert_imports_light
from imagerag_sdk.types import Hit

# visual order 1..5; the query matches caption 4 best although it is ranked 4th of 5 visually
CAPTIONS = [
    "a red car on a street",            # 1: no query term
    "a dog in a green field",           # 2: field
    "a sheep",                          # 3: sheep (short caption)
    "a sheep grazing in a green field",  # 4: sheep, grazing, field
    "",                                 # 5: no caption
]
QUERY = "a sheep grazing in a field"


def lucene_bm25(query_terms, docs, k1=1.5, b=0.75):
    """BM25 as Lucene computes it, by hand: idf = ln(1 + (N - df + .5) / (df + .5)),
    tf part = tf / (tf + k1 * (1 - b + b * dl / avgdl))."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    out = []
    for d in docs:
        s = 0.0
        for t in query_terms:
            df = sum(t in doc for doc in docs)
            tf = d.count(t)
            if tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(s)
    return out


# tokens after English stopwords and the two-letter minimum ("a", "in", "on" go)
TOKENS = [["red", "car", "street"], ["dog", "green", "field"], ["sheep"], ["sheep", "grazing", "green", "field"]]
EXPECTED_BM25 = lucene_bm25(["sheep", "grazing", "field"], TOKENS) + [0.0]


@pytest.fixture
def bm25_hits():
    return [Hit(path=f"/corpus/{i}.png", score=round(0.35 - 0.01 * i, 2), corpus="demo",
                metadata={"caption": c} if c else {}, query=QUERY, rank=i - 1)
            for i, c in enumerate(CAPTIONS, 1)]


def ids(hits):
    return [int(h.path.rsplit("/", 1)[1].split(".")[0]) for h in hits]


def test_hand_computed_scores_order_as_expected():
    # the hand computation itself: 4 > 3 > 2 > 1 = 5 = 0
    s = EXPECTED_BM25
    assert s[3] > s[2] > s[1] > 0 and s[0] == s[4] == 0


def test_bm25_order_and_scores(bm25_hits):
    out = BM25Reranker().rerank(QUERY, bm25_hits)
    assert ids(out) == [4, 3, 2, 1, 5]
    for h in out:
        i = ids([h])[0] - 1
        assert h.score == pytest.approx(EXPECTED_BM25[i], rel=1e-5)
        assert h.metadata["bm25_score"] == h.score
        assert h.metadata["visual_rank"] == i + 1
        assert h.metadata["visual_score"] == bm25_hits[i].score
    assert [h.rank for h in out] == list(range(5))
    assert out[0].metadata["caption"] == CAPTIONS[3] and out[0].corpus == "demo" and out[0].query == QUERY


def test_bm25_uncaptioned_go_last_in_visual_order():
    hits = [Hit(path=f"/corpus/{i}.png", score=0.3, metadata={} if i in (1, 3) else {"caption": c})
            for i, c in enumerate(["", "a blue bird", "", "a bird on a branch"], 1)]
    # 1 and 3 have no caption; "bird" is in both captions, "branch" only in 4
    assert ids(BM25Reranker().rerank("bird on a branch", hits)) == [4, 2, 1, 3]


def test_bm25_no_match_keeps_visual_order(bm25_hits):
    out = BM25Reranker().rerank("submarine", bm25_hits)
    assert ids(out) == [1, 2, 3, 4, 5] and all(h.score == 0 for h in out)
    assert BM25Reranker().rerank("only stopwords: the of a", bm25_hits)[0].path == bm25_hits[0].path
    assert BM25Reranker().rerank(QUERY, []) == []


def test_bm25_parameters_change_scores(bm25_hits):
    out = BM25Reranker(k1=0.9, b=0.4).rerank(QUERY, bm25_hits)
    expected = lucene_bm25(["sheep", "grazing", "field"], TOKENS, k1=0.9, b=0.4)
    assert out[0].score == pytest.approx(expected[3], rel=1e-5)
    out = BM25Reranker(keep_visual_score=False).rerank(QUERY, bm25_hits)
    assert "visual_score" not in out[0].metadata and "bm25_score" in out[0].metadata


def test_stopwords_option():
    hits = [Hit(path="/c/1.png", score=0.3, metadata={"caption": "the cat"}),
            Hit(path="/c/2.png", score=0.2, metadata={"caption": "the the the dog"})]
    # with English stopwords "the" matches nothing; without, caption 2 has it three times
    assert ids(BM25Reranker().rerank("the", hits)) == [1, 2]
    assert BM25Reranker().rerank("the", hits)[0].score == 0
    assert ids(BM25Reranker(stopwords="none").rerank("the", hits)) == [2, 1]
    assert ids(BM25Reranker(stopwords=["cat"]).rerank("cat", hits)) == [1, 2]


def test_bad_options_are_errors():
    with pytest.raises(ValidationError):
        BM25Reranker(k2=1.0)
    with pytest.raises(ValidationError):
        RRFReranker(alpha=1.5)
    with pytest.raises(ConfigError, match="stopword"):
        BM25Reranker(stopwords="klingon").load()


def test_stemmer_needs_pystemmer_or_stems():
    try:
        import Stemmer  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="PyStemmer"):
            BM25Reranker(stemmer="english").load()
    else:
        hits = [Hit(path="/c/1.png", score=0.3, metadata={"caption": "a dog"}),
                Hit(path="/c/2.png", score=0.2, metadata={"caption": "running horses"})]
        assert ids(BM25Reranker(stemmer="english").rerank("horse runs", hits)) == [2, 1]


# -- RRF -------------------------------------------------------------------------------------
def expected_rrf(alpha, c=60.0):
    visual = [1, 2, 3, 4, 5]
    bm25 = {4: 1, 3: 2, 2: 3, 1: 4, 5: 5}  # from the BM25 order [4, 3, 2, 1, 5]
    return {i: alpha / (c + visual[i - 1]) + (1 - alpha) / (c + bm25[i]) for i in visual}


@pytest.mark.parametrize("alpha", [0.3, 0.45])
def test_rrf_order_and_scores(bm25_hits, alpha):
    exp = expected_rrf(alpha)
    # alpha 0.3: 4 (.3/64 + .7/61) > 3 (.3/63 + .7/62) > 2 > 1 > 5
    out = RRFReranker(alpha=alpha).rerank(QUERY, bm25_hits)
    assert ids(out) == sorted(exp, key=lambda i: -exp[i])
    assert ids(out) == [4, 3, 2, 1, 5]
    for h in out:
        i = ids([h])[0]
        assert h.score == pytest.approx(exp[i], rel=1e-9)
        assert h.metadata["rrf_score"] == h.score
        assert h.metadata["visual_score"] == bm25_hits[i - 1].score
    assert out[0].metadata["bm25_rank"] == 1 and out[0].metadata["visual_rank"] == 4


def test_rrf_alpha_extremes(bm25_hits):
    assert ids(RRFReranker(alpha=1.0).rerank(QUERY, bm25_hits)) == [1, 2, 3, 4, 5]
    assert ids(RRFReranker(alpha=0.0).rerank(QUERY, bm25_hits)) == ids(BM25Reranker().rerank(QUERY, bm25_hits))
    assert ids(RRFReranker(alpha=0.7).rerank(QUERY, bm25_hits)) == [1, 2, 3, 4, 5]


def test_rrf_constant(bm25_hits):
    # c=0, alpha .5: 1 scores .5/1 + .5/4 and 4 scores .5/4 + .5/1, a tie far above the rest
    # (3: .5/3 + .5/2); ties keep the visual order, so 1 comes first and 4 second
    out = RRFReranker(alpha=0.5, c=0).rerank(QUERY, bm25_hits)
    assert ids(out)[:2] == [1, 4]
    assert out[0].score == pytest.approx(0.5 / 1 + 0.5 / 4)


# -- hybrid (corpus-wide BM25) ---------------------------------------------------------------
@pytest.fixture
def bm25_captions_file(tmp_path):
    rows = [{"path": f"img/{i}.png", "caption": c} for i, c in enumerate(CAPTIONS, 1)]
    rows.append({"path": "img/6.png", "caption": "a flock of sheep grazing on a hill"})
    rows.append({"path": "img/7.png", "caption": "a bowl of soup"})
    f = tmp_path / "captions.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return f


def test_bm25_index_search(bm25_captions_file):
    index = BM25Index.from_jsonl(bm25_captions_file)
    assert len(index) == 6  # the empty caption is left out
    found = index.search("sheep grazing", k=3)
    names = [p.rsplit("/", 1)[1] for p, _ in found]
    assert set(names[:2]) == {"4.png", "6.png"} and names[2] == "3.png"
    assert found[0][0].startswith(str(bm25_captions_file.parent))
    assert index.search("submarine") == []


def test_bm25_index_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        BM25Index.from_jsonl(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"caption": "no path"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.jsonl:1"):
        BM25Index.from_jsonl(bad)


def test_rrf_hybrid_adds_corpus_matches(bm25_captions_file):
    root = bm25_captions_file.parent / "img"
    hits = [Hit(path=str(root / f"{i}.png"), score=0.3 - 0.01 * i, corpus="demo",
                metadata={"caption": CAPTIONS[i - 1]}) for i in (1, 2, 4)]
    out = RRFReranker(alpha=0.5, corpus_captions=str(bm25_captions_file), hybrid_k=2).rerank(QUERY, hits)
    got = ids(out)
    assert sorted(got) == [1, 2, 4, 6], "the corpus-wide BM25 top 2 (4 and 6) join the candidates"
    new = out[got.index(6)]
    assert new.metadata["found_by"] == "bm25" and "visual_rank" not in new.metadata
    assert new.corpus == "demo" and new.metadata["caption"].startswith("a flock")
    four = out[got.index(4)]
    rb = four.metadata["bm25_rank"]
    assert four.score == pytest.approx(0.5 / (60 + 3) + 0.5 / (60 + rb))
    assert new.score == pytest.approx(0.5 / (60 + new.metadata["bm25_rank"]))
    assert got[0] == 4, "visual and corpus BM25 both rank it"
    # a candidate whose caption matches nothing gets only its visual term
    one = out[got.index(1)]
    assert one.metadata["bm25_rank"] is None and one.score == pytest.approx(0.5 / 61)


# -- packaging -------------------------------------------------------------------------------
def test_import_does_not_load_bm25s():
    assert_imports_light("imagerag_bm25")


def test_registered_through_entry_point(imagerag_registry):
    reg = imagerag_registry
    assert {"bm25", "rrf"} <= set(reg.names("reranker"))
    assert reg.build("reranker", "rrf", {"alpha": 0.2}).options.alpha == 0.2


class TestBM25Contract(RerankerContract):
    @pytest.fixture
    def component(self):
        return BM25Reranker()


class TestRRFContract(RerankerContract):
    @pytest.fixture
    def component(self):
        return RRFReranker()


def test_rrf_hybrid_over_an_indexed_corpus(tmp_path):
    from imagerag_sdk.index import IndexRetriever, ingest
    from imagerag_sdk.testing import fake_corpus

    root = fake_corpus(tmp_path / "images")  # captioned PNGs with .txt sidecars
    ingest(root, index_dir=tmp_path / "idx", embedder={"use": "fake"}, workers=1)
    index = BM25Index.from_corpus(index_dir=tmp_path / "idx")
    assert len(index) == 12 and index.name
    query = "a lighthouse by the sea"
    (hits,) = IndexRetriever(index_dir=str(tmp_path / "idx")).search(["a red sports car"], k=3)
    assert not any("lighthouse" in h.caption for h in hits)
    out = RRFReranker(index_dir=str(tmp_path / "idx"), hybrid_k=1).rerank(query, hits)
    found = [h for h in out if h.metadata.get("found_by") == "bm25"]
    assert len(found) == 1 and "lighthouse" in found[0].caption
    assert found[0].path in index.paths and found[0].metadata["relpath"].endswith(".png")
    assert found[0].corpus == hits[0].corpus
    assert {h.path for h in hits} <= {h.path for h in out}
    # paths of the retriever and of the BM25 index agree: the car is matched, not added twice
    out = RRFReranker(index_dir=str(tmp_path / "idx"), hybrid_k=3).rerank("red sports car", hits)
    car = [h for h in out if "sports car" in h.caption]
    assert len(car) == 1 and car[0].metadata["bm25_rank"] == 1 and "found_by" not in car[0].metadata


def test_rrf_hybrid_takes_one_source():
    with pytest.raises(ValidationError, match="one caption source"):
        RRFReranker(corpus="a", corpus_captions="/x.jsonl")
