"""The retrieval benchmark keeps working and its data model and statistics mean what the docs say.

Run on a few thousand vectors: no timing is asserted, only figures that do not depend on the
machine (recall on a small index, file size per vector, intrinsic dimensionality)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench(request):
    sys.path.insert(0, str(BENCH))
    request.addfinalizer(lambda: sys.path.remove(str(BENCH)))
    import retrieval
    import retrieval_data

    return retrieval, retrieval_data


@pytest.fixture(scope="module")
def extra(bench):
    import ivf_check
    import sentence_vectors

    return ivf_check, sentence_vectors


def top_sims(x: np.ndarray, q: np.ndarray, k: int = 20) -> np.ndarray:
    s = q @ x.T
    return -np.sort(-s, axis=1)[:, :k]


def test_lid_estimate_recovers_the_dimension_of_a_subspace(bench):
    _, data = bench
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((512, 6)))[0].T  # 6 orthonormal directions in 512-d
    pts = rng.standard_normal((20_000, 6)) @ basis * 0.05
    pts[:, 0] += 1.0  # a small patch of the sphere around e0, 6-dimensional
    pts = data.unit(pts.astype(np.float32))
    lid = np.median(data.lid_mle(top_sims(pts[200:], pts[:200])))
    assert 4.5 < lid < 7.5


def test_local_dim_sets_how_hard_the_synthetic_data_is(bench):
    _, data = bench
    lids = {}
    for local_dim in (8, 0):
        x, q_img, q_txt = data.make_data(20_000, 128, 20, 100, local_dim=local_dim,
                                         alpha=0.0, residual=0.0)
        assert x.dtype == np.float32 and x.shape == (20_000, 128)
        assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
        lids[local_dim] = np.median(data.lid_mle(top_sims(x, q_img)))
        # text-like queries sit in another cone: their best match is worse than an image's
        assert np.median(top_sims(x, q_txt)[:, 0]) < np.median(top_sims(x, q_img)[:, 0])
    assert lids[8] < 12 and lids[0] > 25  # measured: 7.3 and 43


def test_benchmark_runs_end_to_end_and_reports_its_figures(bench, tmp_path):
    retrieval, _ = bench
    out = tmp_path / "fig.json"
    fig = retrieval.main(["--n", "3000", "--queries", "64", "--clusters", "30", "--ef-sweep", "200",
                          "--json", str(out)])
    assert out.exists()
    assert fig["n"] == 3000 and fig["d"] == 512
    assert fig["recall@10_image_queries"] >= 0.99
    assert fig["recall@10_text_queries"] >= 0.95
    assert fig["recall@10_after_load"] >= 0.99
    assert fig["self_found_first"] >= 0.99  # an indexed item's own vector finds it
    # float32 vectors + M = 16 links at level 0 + label: the ≤ 2.2 KB/vector figure
    assert 2150 <= fig["hnsw_bytes_per_vector"] <= 2250
    assert fig["image_query_lid"] < fig["text_query_lid"]


def test_graph_parameters_change_the_graph(bench):
    retrieval, _ = bench
    small = retrieval.main(["--n", "2000", "--queries", "32", "--clusters", "20", "--ef-sweep",
                            "--m", "8", "--ef-construction", "40"])
    assert (small["m"], small["ef_construction"]) == (8, 40)
    # 8 fewer level-0 links of 4 bytes each than at M = 16
    assert 2100 <= small["hnsw_bytes_per_vector"] <= 2150
    assert small["recall@10_image_queries"] >= 0.9


def test_real_vectors_file_is_split_into_data_and_queries(bench, tmp_path):
    retrieval, data = bench
    rng = np.random.default_rng(1)
    path = tmp_path / "emb.npy"
    np.save(path, rng.standard_normal((2100, 64)).astype(np.float32) * 3)
    x, q, t = data.load_vectors(str(path), 2000, 100)
    assert x.shape == (2000, 64) and q.shape == (100, 64) and t is None
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    fig = retrieval.main(["--vectors", str(path), "--queries", "100", "--ef-sweep"])
    assert fig["n"] == 2000 and "recall@10_text_queries" not in fig
    with pytest.raises(SystemExit, match="not enough"):
        data.load_vectors(str(path), 2050, 100)


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="Linux only")
def test_hugepages_flag_reruns_under_the_glibc_tunable(tmp_path):
    import json
    import subprocess

    out = tmp_path / "fig.json"
    subprocess.run([sys.executable, str(BENCH / "retrieval.py"), "--n", "2000", "--queries", "32",
                    "--clusters", "20", "--ef-sweep", "--hugepages", "--json", str(out)],
                   check=True, capture_output=True, timeout=300)
    fig = json.loads(out.read_text())
    assert fig["tunables"] == "glibc.malloc.hugetlb=1"  # the re-run happened under the tunable
    assert "anon_hugepages_mb" in fig  # how much went on huge pages depends on the kernel's setting


def test_a_cluster_index_wins_only_where_the_data_is_a_clean_mixture(extra, tmp_path):
    ivf_check, _ = extra
    # the synthetic mixture: 3 of 64 k-means lists hold nearly every neighbour
    mixture = ivf_check.main(["--n", "4000", "--clusters", "30", "--queries", "50", "--nlist", "64",
                              "--nprobe", "3", "--ef", "100"])
    assert mixture["ivf64_probe3_image_recall"] >= 0.9
    assert mixture["hnsw_ef100_image_recall"] >= 0.9
    # vectors with no cluster structure: the same 3 lists miss most neighbours, the graph does not
    path = tmp_path / "iso.npy"
    np.save(path, np.random.default_rng(2).standard_normal((4050, 32)).astype(np.float32))
    iso = ivf_check.main(["--vectors", str(path), "--queries", "50", "--nlist", "64", "--nprobe", "3",
                          "--ef", "100"])
    assert iso["ivf64_probe3_image_recall"] < 0.6
    assert iso["hnsw_ef100_image_recall"] >= 0.9
    assert "ivf64_probe3_text_recall" not in iso


def test_sentence_collection_strips_roff_and_keeps_prose(extra):
    _, sv = extra
    man = "\n".join([".TH LS 1", ".SH NAME", r"Lists the \fBfiles\fR in a \s-1DIRECTORY\s0, sorted.",
                      ".PP", ".B Use", r"\-a to show hidden entries too.", '.\\" a comment'])
    text = sv.man_text(man)
    assert "Lists the files in a DIRECTORY, sorted." in text and "comment" not in text
    found = [s for s in sv.sentences(text + "\n\nx = 1. Too short. >>> code") if sv.good(s)]
    assert found == ["Lists the files in a DIRECTORY, sorted.", "Use -a to show hidden entries too."]
    pool = ["The index keeps every vector of the corpus on disk."] * 3
    queries = sv.keywords(pool, 2, np.random.default_rng(0))
    assert len(queries) == 2
    assert all(len(q.split()) == 3 and set(q.split()) <= {"index", "keeps", "every", "vector",
                                                         "corpus", "disk"} for q in queries)


def test_exact_batch_benchmark_compares_with_the_old_code_and_skips_a_missing_faiss(bench, monkeypatch):
    import exact_batch

    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss were not installed: its anchor is skipped
    fig = exact_batch.main(["--n", "3000", "--queries", "50", "--clusters", "20", "--rounds", "1",
                            "--single", "2"])
    assert fig["faiss"] is False and "batch_qps_faiss" not in fig
    assert fig["same_hits_as_old"] == 1.0 and fig["max_score_diff_vs_old"] <= 1e-5
    assert {"batch_new_vs_old", "batch_new_vs_matmul_only", "single_new_vs_old",
            "single_new_vs_bandwidth_floor"} <= set(fig)


def test_ef_choice_benchmark_reports_recall_per_ef_and_query_set(bench, tmp_path):
    import ef_choice

    rng = np.random.default_rng(4)
    path, text = tmp_path / "v.npy", tmp_path / "t.npy"
    np.save(path, rng.standard_normal((2100, 24)).astype(np.float32))
    np.save(text, rng.standard_normal((100, 24)).astype(np.float32))
    fig = ef_choice.main(["--vectors", str(path), "--text-vectors", str(text), "--queries", "100",
                          "--ef", "10", "400", "--timed", "3", "--target", "0.99"])
    rows = fig["rows"]
    assert fig["n"] == 2000 and set(rows) == {10, 400, fig["default_ef"]}
    assert rows[400]["recall_sentence"] >= 0.99 and rows[400]["recall_keyword"] >= 0.99
    assert rows[10]["recall_keyword"] < rows[400]["recall_keyword"]
    assert fig["smallest_ef_meeting_target"] in (fig["default_ef"], 400)
