"""Reference SSIM values from scikit-image for cachedit's `demo::ssim` (test `demo_ssim`).

Writes adapters/tests/fixtures/ssim/cases.json: small channel-major images (values as given)
and skimage.metrics.structural_similarity with the Wang et al. settings
(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range given), per channel
then mean (channel_axis=0).

    /work/venv-ref/bin/python tools/reference/gen_ssim.py
"""

import json
import pathlib

import numpy as np
import skimage
from skimage.metrics import structural_similarity

OUT = pathlib.Path(__file__).resolve().parents[2] / "adapters/tests/fixtures/ssim/cases.json"


def case(name, a, b, data_range):
    value = structural_similarity(
        a.astype(np.float64),
        b.astype(np.float64),
        data_range=data_range,
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    c, h, w = a.shape
    return {
        "name": name,
        "channels": c,
        "height": h,
        "width": w,
        "data_range": data_range,
        "a": [float(v) for v in a.astype(np.float32).ravel()],
        "b": [float(v) for v in b.astype(np.float32).ravel()],
        "ssim": float(value),
    }


def main():
    rng = np.random.default_rng(0)
    cases = []
    a = rng.uniform(-1, 1, (3, 16, 16)).astype(np.float32)
    cases.append(case("rgb16_noise_0.1", a, np.clip(a + rng.normal(0, 0.1, a.shape), -1, 1).astype(np.float32), 2.0))
    cases.append(case("rgb16_noise_0.5", a, np.clip(a + rng.normal(0, 0.5, a.shape), -1, 1).astype(np.float32), 2.0))
    # A smooth image, a shifted and contrast-scaled copy (luminance and contrast terms).
    y, x = np.mgrid[0:13, 0:17]
    g = np.stack([np.sin(x / 3.0) * np.cos(y / 4.0), (x - y) / 20.0]).astype(np.float32)
    cases.append(case("smooth_2x13x17_affine", g, (0.7 * g + 0.1).astype(np.float32), 2.0))
    # 8-bit range values in float.
    u = rng.integers(0, 256, (1, 12, 12)).astype(np.float32)
    v = np.clip(u + rng.integers(-20, 21, u.shape), 0, 255).astype(np.float32)
    cases.append(case("gray12_u8_range", u, v, 255.0))
    # The busy pattern of the unit tests, in [0, 1], against an affine copy.
    r = (np.arange(3 * 16 * 16) * 37 % 101 / 100.0).astype(np.float32).reshape(3, 16, 16)
    cases.append(case("ramp_affine", r, (r * np.float32(0.8) + np.float32(0.1)).astype(np.float32), 1.0))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"skimage": skimage.__version__, "cases": cases}, indent=None))
    print(f"wrote {OUT} ({len(cases)} cases)")
    for c in cases:
        print(c["name"], c["ssim"])


if __name__ == "__main__":
    main()
