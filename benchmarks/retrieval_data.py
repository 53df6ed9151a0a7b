"""Vectors for ``benchmarks/retrieval.py``: a synthetic CLIP-like mixture, or real embeddings from
a ``.npy`` file, and the statistics that say how hard a vector set is for a graph index.

Synthetic model (d = 512 by default). ``clusters`` semantic directions sit inside a common "image"
cone (CLIP embeddings of images are far from isotropic); an image is its cluster's centre plus a
deviation, normalised. By default the deviation is isotropic Gaussian noise over all d axes
(variance of axis i ∝ i^-alpha, alpha 0 = flat): within a cluster every neighbour is then nearly
equidistant, which is hard for a graph index. With ``local_dim`` > 0 the deviation lies instead in
a ``local_dim``-dimensional subspace of its own cluster (variance of direction i ∝ i^-alpha) plus
a share ``residual`` of isotropic noise: few factors of variation per concept, a low local
intrinsic dimensionality, and an easy index.

Image-like queries are fresh points of the mixture. Text-like queries deviate the same way around
the same concepts but sit in a second cone (CLIP's modality gap), so their best cosine to any image
is low, as for CLIP text→image search.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def spectrum(r: int, alpha: float) -> np.ndarray:
    """Scale per direction with variance ∝ i^-alpha and total variance 1 (alpha 0: flat)."""
    var = np.arange(1, r + 1, dtype=np.float64) ** -alpha
    return np.sqrt(var / var.sum()).astype(np.float32)


@dataclass
class Mixture:
    centres: np.ndarray            # (clusters, d), unit
    bases: np.ndarray | None       # (clusters, local_dim, d) near-orthonormal rows, or None
    scales: np.ndarray             # (local_dim,) or (d,)
    residual: float                # share of the deviation's variance that is isotropic

    def sample(self, rng: np.random.Generator, n: int, noise: float, chunk: int = 100_000) -> np.ndarray:
        c, d = self.centres.shape
        out = np.empty((n, d), dtype=np.float32)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            idx = rng.integers(0, c, m)
            block = self.centres[idx]  # fancy indexing: a copy
            if self.bases is None:
                block += rng.standard_normal((m, d), dtype=np.float32) * (noise * self.scales)
            else:
                local = np.sqrt(1.0 - self.residual) * noise
                z = rng.standard_normal((m, len(self.scales)), dtype=np.float32) * (local * self.scales)
                order = np.argsort(idx, kind="stable")
                bounds = np.searchsorted(idx[order], np.arange(c + 1))
                for k in range(c):
                    rows = order[bounds[k]:bounds[k + 1]]
                    if len(rows):
                        block[rows] += z[rows] @ self.bases[k]
                if self.residual:
                    iso = np.sqrt(self.residual / d) * noise
                    block += rng.standard_normal((m, d), dtype=np.float32) * iso
            out[s:s + m] = unit(block)
        return out


def make_data(n: int, d: int, clusters: int, queries: int, *, local_dim: int = 0,
              alpha: float = 0.0, residual: float = 0.1, noise: float = 0.7,
              text_noise: float = 0.7, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, image-like queries, text-like queries), all unit float32."""
    rng = np.random.default_rng(seed)
    semantic = unit(rng.standard_normal((clusters, d), dtype=np.float32))
    cone_img = unit(rng.standard_normal((1, d), dtype=np.float32))
    cone_txt = unit(rng.standard_normal((1, d), dtype=np.float32))
    if local_dim and local_dim < d:
        bases = rng.standard_normal((clusters, local_dim, d), dtype=np.float32) / np.float32(np.sqrt(d))
        scales = spectrum(local_dim, alpha)
    else:
        bases, scales = None, spectrum(d, alpha)
    images = Mixture(unit(0.6 * cone_img + semantic), bases, scales, residual)
    x = images.sample(rng, n, noise)
    q_img = images.sample(rng, queries, noise)
    texts = Mixture(unit(1.2 * cone_txt + semantic), bases, scales, residual)
    q_txt = texts.sample(rng, queries, text_noise)
    return x, q_img, q_txt


def load_vectors(path: str, n: int | None, queries: int,
                 text_path: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Real embeddings: the first ``n`` rows of ``path`` (normalised) are the data, the next
    ``queries`` rows the image-like queries; ``text_path`` rows, if given, the text-like ones."""
    raw = np.load(Path(path), mmap_mode="r")
    if raw.ndim != 2:
        raise SystemExit(f"{path}: expected a 2-d array of vectors, got shape {raw.shape}")
    n = len(raw) - queries if n is None else n
    if n <= 0 or n + queries > len(raw):
        raise SystemExit(f"{path} has {len(raw)} rows: not enough for n={n} plus {queries} queries")
    x = unit(np.array(raw[:n], dtype=np.float32))
    q_img = unit(np.array(raw[n:n + queries], dtype=np.float32))
    q_txt = None
    if text_path:
        q_txt = unit(np.array(np.load(Path(text_path), mmap_mode="r")[:queries], dtype=np.float32))
        if q_txt.shape[1] != x.shape[1]:
            raise SystemExit(f"{text_path} holds {q_txt.shape[1]}-d vectors, {path} {x.shape[1]}-d")
    return x, q_img, q_txt


def lid_mle(sims: np.ndarray) -> np.ndarray:
    """Local intrinsic dimensionality of each query from the cosines of its k nearest neighbours
    (best first): the maximum-likelihood estimate -1 / mean(log(r_i / r_k)) over Euclidean
    distances r = sqrt(2 - 2 cos) between unit vectors."""
    r = np.sqrt(np.maximum(2.0 - 2.0 * sims.astype(np.float64), 1e-12))
    logs = np.log(r[:, :-1] / r[:, -1:])
    return -1.0 / np.minimum(logs.mean(axis=1), -1e-12)


def query_stats(sims: np.ndarray) -> dict[str, float]:
    """How a query set sees the data, from each query's top-k cosines (best first): median local
    intrinsic dimensionality, top-1 and top-10 cosine."""
    return {
        "lid": float(np.median(lid_mle(sims))),
        "top1_cosine": float(np.median(sims[:, 0])),
        "top10_cosine": float(np.median(sims[:, min(9, sims.shape[1] - 1)])),
    }


def random_pair_cosine(x: np.ndarray, rng: np.random.Generator, pairs: int = 2000) -> float:
    """Median cosine of random pairs: how narrow the data's cone is."""
    a = x[rng.integers(0, len(x), pairs)]
    b = x[rng.integers(0, len(x), pairs)]
    return float(np.median(np.einsum("ij,ij->i", a, b)))
