"""Faces: detection, the 478-point mesh, 68-point landmarks, tracking, head pose,
alignment / crop / paste-back and identity embeddings.

Models ship inside installed packages (MediaPipe face detection and mesh, dlib's
68-point predictor and ResNet descriptor) and load lazily on first use. Frames
are RGB uint8 ``(H, W, 3)``; every coordinate is in frame pixels.

    from avatarlab.face import track_video, align_face
    track = track_video("clip.mp4").require_all()
    crop = align_face(frame, track.landmarks[0], size=256)
"""

from avatarlab.face.align import (
    AlignedFace,
    align_face,
    alignment_matrix,
    box_crop,
    crop_box,
    default_mask,
    paste_back,
)
from avatarlab.face.analyze import FaceAnalysis, analyze_image
from avatarlab.face.detect import Detection, FaceDetector
from avatarlab.face.draw import draw_annotations, draw_faces
from avatarlab.face.filters import OneEuroFilter
from avatarlab.face.identity import FaceEmbedder, identity_similarity
from avatarlab.face.landmarks68 import (
    MESH_TO_68,
    inter_ocular_distance,
    landmarks68_dlib,
    mesh_to_68,
)
from avatarlab.face.mesh import FaceMesher, face_mesh
from avatarlab.face.pose import HeadPose, head_pose, head_poses
from avatarlab.face.track import (
    FaceState,
    FaceTrack,
    FaceTracker,
    TrackerOptions,
    track_video,
)

__all__ = [
    "MESH_TO_68",
    "AlignedFace",
    "Detection",
    "FaceAnalysis",
    "FaceDetector",
    "FaceEmbedder",
    "FaceMesher",
    "FaceState",
    "FaceTrack",
    "FaceTracker",
    "HeadPose",
    "OneEuroFilter",
    "TrackerOptions",
    "align_face",
    "alignment_matrix",
    "box_crop",
    "analyze_image",
    "crop_box",
    "default_mask",
    "draw_annotations",
    "draw_faces",
    "face_mesh",
    "head_pose",
    "head_poses",
    "identity_similarity",
    "inter_ocular_distance",
    "landmarks68_dlib",
    "mesh_to_68",
    "paste_back",
    "track_video",
]
