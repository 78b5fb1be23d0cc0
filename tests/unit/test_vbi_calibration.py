"""The calibration math against ccdproc, an independent implementation, on seeded synthetic frames."""

from __future__ import annotations

import astropy.units as u
import ccdproc
import numpy as np
import pytest
from astropy.nddata import CCDData

from obsflow.simulate import DEAD_PIXELS, _pixels
from obsflow_tasks.vbi import calibration

SHAPE = (48, 64)


@pytest.fixture(scope="module")
def frames():
    """Given seeded darks, gains and observe frames (a vignetted, dusty flat with three dead pixels)."""
    rng = np.random.default_rng(42)
    return {kind: [_pixels(kind, SHAPE, rng, i).astype(float) for i in range(n)]
            for kind, n in (("dark", 5), ("gain", 4), ("observe", 3))}


def ccd(array) -> CCDData:
    return CCDData(array, unit=u.adu)


def test_the_average_dark_equals_ccdprocs_average_combine(frames):
    ours = calibration.average_darks(frames["dark"], [4.0] * 5)
    theirs = ccdproc.combine([ccd(d) for d in frames["dark"]], method="average")
    assert list(ours) == [4.0]
    np.testing.assert_allclose(ours[4.0], theirs.data, rtol=1e-12)


def test_darks_are_averaged_per_exposure_time(frames):
    darks = calibration.average_darks(frames["dark"][:4], [4.0, 8.0, 4.0, 8.0])
    np.testing.assert_allclose(darks[8.0], (frames["dark"][1] + frames["dark"][3]) / 2)


def test_calibrated_frames_equal_ccdprocs_dark_subtraction_and_flat_correction(frames):
    dark = calibration.average_frames(frames["dark"])
    gain = calibration.normalised_gain(frames["gain"], dark)
    bad = np.zeros(SHAPE, dtype=bool)
    master_dark = ccd(dark)
    flat = ccdproc.subtract_dark(ccdproc.combine([ccd(g) for g in frames["gain"]], method="average"), master_dark,
                                 dark_exposure=4 * u.ms, data_exposure=4 * u.ms)
    for raw in frames["observe"]:
        ours = calibration.calibrate(raw, dark, gain, bad)
        reduced = ccdproc.subtract_dark(ccd(raw), master_dark, dark_exposure=4 * u.ms, data_exposure=4 * u.ms)
        theirs = ccdproc.flat_correct(reduced, flat, norm_value=np.median(flat.data))
        np.testing.assert_allclose(ours, theirs.data, rtol=1e-10)


def test_the_dead_pixels_are_flagged_and_nothing_else_in_the_bright_field(frames):
    dark = calibration.average_frames(frames["dark"])
    gain = calibration.normalised_gain(frames["gain"], dark)
    bad = calibration.bad_pixel_mask(gain, 0.5, 1.5)
    flagged = {tuple(p) for p in np.argwhere(bad)}
    assert flagged == {(int(fy * SHAPE[0]), int(fx * SHAPE[1])) for fy, fx in DEAD_PIXELS}
    calibrated = calibration.calibrate(frames["observe"][0], dark, gain, bad)
    assert np.isnan(calibrated[bad]).all() and np.isfinite(calibrated[~bad]).all()


def test_a_gain_without_light_is_refused():
    with pytest.raises(ValueError, match="hold no light"):
        calibration.normalised_gain([np.full(SHAPE, 100.0)], np.full(SHAPE, 100.0))


def test_the_browse_stretch_clips_at_percentiles_and_blacks_out_bad_pixels():
    image = np.linspace(0, 1000, 1000).reshape(10, 100)
    image[0, 0] = np.nan
    stretched = calibration.percentile_stretch(image, 1, 99)
    assert stretched.dtype == np.uint8 and stretched[0, 0] == 0 and stretched.max() == 255
    assert (stretched[-1, -5:] == 255).all()


def test_the_tasks_read_a_tile_compressed_frame_s_image_and_header():
    import io

    from astropy.io import fits

    from obsflow_tasks.vbi.tasks import fits_bytes, read_fits

    # Given one frame in the primary HDU and the same frame as DKIST stores it (RICE CompImageHDU)
    data = np.random.default_rng(3).integers(0, 60000, (1, 64, 64), dtype=np.uint16)
    header = fits.Header([("INSTRUME", "VBI"), ("CAM__004", 4.0)])
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, compression_type="RICE_1")]).writeto(buffer)
    # When the tasks read both
    plain, compressed = read_fits(fits_bytes(data, header)), read_fits(buffer.getvalue())
    # Then they get the same pixels (lossless) and the frame's own header cards
    assert np.array_equal(plain[0], compressed[0])
    assert compressed[1]["INSTRUME"] == "VBI" and compressed[1]["CAM__004"] == 4.0
