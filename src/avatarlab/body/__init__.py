"""Bodies: body, hand and face keypoints in OpenPose layouts, skeleton renders, pose alignment, person masks.

Models ship inside ``mediapipe`` (pose landmarker "full", hand landmarker,
selfie segmentation) plus our own face mesh from ``avatarlab.face``; they load
on first use and run offline on a CPU. Frames are RGB uint8 ``(H, W, 3)``;
every coordinate is in source pixels.

    from avatarlab.body import PoseEstimator, EstimatorOptions, draw_pose, to_openpose
    with PoseEstimator(EstimatorOptions(hands=True, face=True)) as est:
        frame_pose = est.update(frame)
    canvas = draw_pose(frame_pose)          # ControlNet/DWPose skeleton
    data = to_openpose(frame_pose)          # OpenPose JSON dict (BODY_25)
"""

from avatarlab.body.align import AlignScales, align_person, align_sequence, alignment_scales
from avatarlab.body.draw import draw_people, draw_pose, overlay
from avatarlab.body.estimate import (
    EstimatorOptions,
    FramePose,
    Person,
    PoseEstimator,
)
from avatarlab.body.layouts import (
    BODY25_TO_COCO18,
    BODY_25_NAMES,
    COCO_18_NAMES,
    COCO_COLOURS,
    COCO_LIMBS,
    MEDIAPIPE_TO_BODY_25,
    body25_to_coco18,
    mediapipe_to_body25,
    mesh_to_face70,
)
from avatarlab.body.masks import (
    Background,
    PersonSegmenter,
    parse_background,
    person_mask,
    replace_background,
)
from avatarlab.body.openpose import (
    from_openpose,
    openpose_filename,
    read_openpose,
    to_dwpose,
    to_openpose,
    write_dwpose,
    write_openpose,
)
from avatarlab.errors import NoPersonError

__all__ = [
    "BODY25_TO_COCO18",
    "BODY_25_NAMES",
    "COCO_18_NAMES",
    "COCO_COLOURS",
    "COCO_LIMBS",
    "MEDIAPIPE_TO_BODY_25",
    "AlignScales",
    "Background",
    "EstimatorOptions",
    "FramePose",
    "NoPersonError",
    "Person",
    "PersonSegmenter",
    "PoseEstimator",
    "align_person",
    "align_sequence",
    "alignment_scales",
    "body25_to_coco18",
    "draw_people",
    "draw_pose",
    "from_openpose",
    "mediapipe_to_body25",
    "mesh_to_face70",
    "openpose_filename",
    "overlay",
    "parse_background",
    "person_mask",
    "read_openpose",
    "replace_background",
    "to_dwpose",
    "to_openpose",
    "write_dwpose",
    "write_openpose",
]
