"""Pixel-level augmentation for what inspection and drone photos look like.

Ultralytics already does the geometry (mosaic, scale, translation, flips) and mild HSV jitter;
these albumentations transforms add the conditions the shared data lacks: haze, rain, motion blur
from a walking inspector or a moving drone, heavy JPEG from phone uploads, dusk and low light,
sensor noise, and soft low-resolution frames. `RandomSunFlare` paints a bright warm light that
is not fire onto every kind of frame, a cheap stand-in for the sunsets and lamps that fool fire
detectors. None of them moves pixels, so boxes need no adjustment.
"""

from __future__ import annotations

import albumentations as A


def inspection_photo_augmentations() -> list[A.BasicTransform]:
    return [
        A.RandomFog(fog_coef_range=(0.1, 0.35), alpha_coef=0.08, p=0.05),
        A.RandomRain(drop_length=12, blur_value=3, brightness_coefficient=0.85, p=0.04),
        A.MotionBlur(blur_limit=(3, 9), p=0.08),
        A.ImageCompression(quality_range=(30, 85), p=0.2),
        A.RandomBrightnessContrast(brightness_limit=(-0.35, 0.15), contrast_limit=0.2, p=0.2),
        A.RandomGamma(gamma_limit=(80, 160), p=0.1),
        A.GaussNoise(std_range=(0.02, 0.08), p=0.08),
        A.Downscale(scale_range=(0.4, 0.8), p=0.08),
        A.RandomSunFlare(flare_roi=(0, 0, 1, 0.6), src_radius=80, num_flare_circles_range=(3, 6), p=0.04),
        A.CLAHE(p=0.02),
        A.ToGray(p=0.02),
    ]
