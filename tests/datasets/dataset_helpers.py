"""Helpers the dataset tests share: Ultralytics' own label check, called the same on every tested version."""

from __future__ import annotations

from ultralytics.data.utils import verify_image_label


def read_label(im_file: str, lb_file: str, prefix: str, keypoint: bool, num_cls: int, nkpt: int, ndim: int) -> tuple:
    """`verify_image_label` of one image/label pair: (im_file, boxes, shape, segments, keypoints, ..., message).

    Its argument tuple gained `single_cls` after 8.3.0 (passed as False); 8.3.0 unpacks seven values.
    """
    args = (im_file, lb_file, prefix, keypoint, num_cls, nkpt, ndim)
    try:
        return verify_image_label((*args, False))
    except ValueError:  # "too many values to unpack": a release without single_cls
        return verify_image_label(args)
