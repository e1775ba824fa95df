"""Cross-modal retrieval R@k between audio and image embeddings (docs/protocol.md).

* audio embeddings ``a`` ``(N, D)``, L2-normalised;
* image embeddings ``v = normalize(mean_{h,w} normalize_D(v_map))`` from the channels-last
  visual map ``(N, h, w, D)`` (:func:`image_embedding_from_map`);
* similarity ``S = a @ v.T`` (``S[i, j]`` = audio ``i`` vs image ``j``).

For each query the gallery is ranked by descending similarity with a **stable** sort
(``np.argsort(-s, kind="stable")``: on ties the lower gallery index ranks first). A query is a
hit at ``k`` when one of its top ``k`` gallery items

* **semantic**: has the query's class label;
* **instance**: is the paired item itself (same index), i.e. semantic with labels ``arange(N)``.

Units: :func:`recall_at_k` returns fractions; :func:`retrieval_summary` returns percent.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "image_embedding_from_map",
    "l2_normalize",
    "recall_at_k",
    "retrieval_summary",
]

_EPS = 1e-12


def l2_normalize(x, axis: int = -1) -> np.ndarray:
    """``x / max(||x||_2, 1e-12)`` along ``axis``; float64, same shape (zero vectors stay 0)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, _EPS)


def image_embedding_from_map(v_map) -> np.ndarray:
    """Image embedding: L2-normalised spatial mean of the channel-normalised visual map.

    ``emb = normalize(mean_{h, w} normalize_D(v_map[n, h, w, :]))`` (normalising an already
    normalised map is a no-op).

    Args:
        v_map: ``(N, h, w, D)`` channels-last visual feature map (or ``(h, w, D)`` for one image).

    Returns:
        float64 ``(N, D)`` (or ``(D,)``) unit vectors.
    """
    v = np.asarray(v_map, dtype=np.float64)
    if v.ndim not in (3, 4):
        raise ValueError(f"v_map must be (N, h, w, D) or (h, w, D); got shape {v.shape}")
    v = l2_normalize(v, axis=-1)
    return l2_normalize(v.mean(axis=(-3, -2)), axis=-1)


def recall_at_k(
    sim, query_labels, gallery_labels, ks=(1, 5, 10), chunk: int = 1024
) -> dict[int, float]:
    """R@k: fraction of queries with a same-label gallery item among their top ``k``.

    ``hit_q(k) = any(gallery_labels[rank_q[:k]] == query_labels[q])`` with
    ``rank_q = np.argsort(-sim[q], kind="stable")``; ``R@k = mean_q hit_q(k)``. ``k`` larger
    than the gallery is clipped to the gallery size.

    Args:
        sim: ``(Q, G)`` similarities, queries by rows.
        query_labels: ``(Q,)`` labels (any comparable dtype); ``arange(Q)`` for instance recall.
        gallery_labels: ``(G,)`` labels; ``arange(G)`` for instance recall.
        ks: the cut-offs ``k >= 1``.
        chunk: queries ranked at once (bounds memory, does not change the result).

    Returns:
        ``{k: fraction in [0, 1]}`` as Python floats.
    """
    s = np.asarray(sim, dtype=np.float64)
    ql = np.asarray(query_labels).ravel()
    gl = np.asarray(gallery_labels).ravel()
    if s.ndim != 2 or s.shape != (ql.size, gl.size):
        raise ValueError(
            f"sim must be (Q, G) = ({ql.size}, {gl.size}) for the given labels; got {s.shape}"
        )
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError("recall_at_k needs at least one query and one gallery item")
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1; got {ks}")
    kmax = min(max(ks), s.shape[1])
    hits = {k: 0 for k in ks}
    for start in range(0, s.shape[0], chunk):
        block = s[start : start + chunk]
        top = np.argsort(-block, axis=1, kind="stable")[:, :kmax]
        match = gl[top] == ql[start : start + chunk, None]
        first_cum = np.cumsum(match, axis=1) > 0  # hit within the first j+1
        for k in ks:
            hits[k] += int(np.count_nonzero(first_cum[:, min(k, kmax) - 1]))
    return {k: hits[k] / s.shape[0] for k in ks}


def retrieval_summary(
    audio_emb, image_emb, labels=None, ks=(1, 5, 10), normalize: bool = True
) -> dict[str, float]:
    """Audio->image and image->audio R@k, semantic and instance, **in percent**.

    Similarity ``S = a @ v.T`` (after L2 normalisation of both when ``normalize``); audio->image
    ranks the rows of ``S``, image->audio the rows of ``S.T``. The pair ``(a[i], v[i])`` is the
    instance match.

    Args:
        audio_emb: ``(N, D)`` audio embeddings.
        image_emb: ``(N, D)`` image embeddings (e.g. from :func:`image_embedding_from_map`).
        labels: ``(N,)`` class labels shared by the pair ``i``; ``None`` skips semantic recall.
        ks: cut-offs (default 1, 5, 10).
        normalize: L2-normalise both embeddings first (idempotent for unit vectors).

    Returns:
        Python floats in ``[0, 100]`` keyed ``"{a2i|i2a}_{semantic|instance}_R@{k}"``, e.g.
        ``"a2i_instance_R@1"``.
    """
    a = np.asarray(audio_emb, dtype=np.float64)
    v = np.asarray(image_emb, dtype=np.float64)
    if a.ndim != 2 or v.ndim != 2 or a.shape != v.shape:
        raise ValueError(f"audio_emb and image_emb must both be (N, D); got {a.shape}, {v.shape}")
    if normalize:
        a, v = l2_normalize(a), l2_normalize(v)
    sim = a @ v.T
    n = a.shape[0]
    kinds = {"instance": np.arange(n)}
    if labels is not None:
        lab = np.asarray(labels).ravel()
        if lab.size != n:
            raise ValueError(f"labels must have {n} entries; got {lab.size}")
        kinds = {"semantic": lab, **kinds}
    out: dict[str, float] = {}
    for direction, s in (("a2i", sim), ("i2a", sim.T)):
        for kind, lab in kinds.items():
            for k, frac in recall_at_k(s, lab, lab, ks).items():
                out[f"{direction}_{kind}_R@{k}"] = 100.0 * frac
    return out
