"""dlib identity descriptors: same person close, different people far."""

from __future__ import annotations

import numpy as np
import pytest

from avatarlab.errors import OptionError
from avatarlab.face import FaceDetector, FaceEmbedder, face_mesh, identity_similarity


def test_same_person_more_similar_than_different_people(clip):
    embedder = FaceEmbedder()
    a = clip("talk_a.mp4").frames
    c = clip("talk_c.mp4").frames
    h = clip("hdtf_aoc_8s.mp4").frames
    e_a1 = embedder.embed(a[5], face_mesh(a[5]))
    e_a2 = embedder.embed(a[120], face_mesh(a[120]))
    e_c = embedder.embed(c[5], face_mesh(c[5]))
    e_h = embedder.embed(h[5], face_mesh(h[5]))
    assert e_a1.shape == (128,) and e_a1.dtype == np.float32
    same = identity_similarity(e_a1, e_a2)
    different = max(identity_similarity(e_a1, e_c), identity_similarity(e_a1, e_h))
    assert same > 0.95
    assert same > different + 0.05
    # dlib's own criterion: Euclidean distance under 0.6 means the same person.
    assert np.linalg.norm(e_a1 - e_a2) < 0.6 < np.linalg.norm(e_a1 - e_h)


def test_box_68_and_mesh_inputs_agree(clip):
    frame = clip("talk_c.mp4").frames[0]
    embedder = FaceEmbedder()
    box = FaceDetector().detect(frame)[0].box
    mesh = face_mesh(frame, box)
    from_box = embedder.embed(frame, box)
    from_mesh = embedder.embed(frame, mesh)
    assert identity_similarity(from_box, from_mesh) > 0.97
    with pytest.raises(OptionError):
        embedder.embed(frame, np.zeros((5, 2)))


def test_similarity_is_cosine():
    assert identity_similarity(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    assert identity_similarity(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)
    assert identity_similarity(np.zeros(3), np.ones(3)) == 0.0
