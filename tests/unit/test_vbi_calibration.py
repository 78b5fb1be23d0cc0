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
    ours = calibration.average_darks(zip(frames["dark"], [4.0] * 5))
    theirs = ccdproc.combine([ccd(d) for d in frames["dark"]], method="average")
    assert list(ours) == [4.0]
    np.testing.assert_allclose(ours[4.0], theirs.data, rtol=1e-12)


def test_darks_are_averaged_per_exposure_time(frames):
    darks = calibration.average_darks(zip(frames["dark"][:4], [4.0, 8.0, 4.0, 8.0]))
    np.testing.assert_allclose(darks[8.0], (frames["dark"][1] + frames["dark"][3]) / 2)


def test_calibrated_frames_equal_ccdprocs_dark_subtraction_and_flat_correction(frames):
    dark = calibration.average_frames(frames["dark"])
    gain = calibration.normalised_gain(frames["gain"], dark)
    bad = np.zeros(SHAPE, dtype=bool)
    master_dark = ccd(dark)
    flat = ccdproc.subtract_dark(ccdproc.combine([ccd(g) for g in frames["gain"]], method="average"), master_dark,
                                 dark_exposure=4 * u.ms, data_exposure=4 * u.ms)
    for raw in frames["observe"]:
        ours = calibration.Calibrator(dark, gain, bad)(raw)
        reduced = ccdproc.subtract_dark(ccd(raw), master_dark, dark_exposure=4 * u.ms, data_exposure=4 * u.ms)
        theirs = ccdproc.flat_correct(reduced, flat, norm_value=np.median(flat.data))
        assert ours.dtype == np.float32  # within 1e-6 of float64, far below the photon noise
        np.testing.assert_allclose(ours, theirs.data, rtol=1e-6)


def test_a_prepared_calibrator_writes_into_the_given_frame_and_flags_bad_pixels(frames):
    # Given a calibrator prepared once from a dark, a gain and a bad-pixel map, and an output frame
    dark = calibration.average_frames(frames["dark"])
    gain = calibration.normalised_gain(frames["gain"], dark)
    bad = np.zeros(SHAPE, dtype=bool)
    bad[3, 4] = True
    gain[5, 6] = 0.0  # a dead pixel the mask missed: no infinity comes out of it either
    calibrate = calibration.Calibrator(dark, gain, bad)
    out = np.empty(SHAPE, dtype=np.float32)
    # When uint16 raw frames are calibrated into it, one after the other
    for raw in frames["observe"]:
        result = calibrate(raw.astype(np.uint16), out=out)
        # Then the result is that frame, NaN exactly where the pixel is bad, and the values match float64
        assert result is out
        assert {tuple(p) for p in np.argwhere(np.isnan(out))} == {(3, 4), (5, 6)}
        expected = (raw.astype(np.uint16) - dark) / gain
        keep = ~np.isnan(out)
        np.testing.assert_allclose(out[keep], expected[keep], rtol=1e-6)


def test_the_dead_pixels_are_flagged_and_nothing_else_in_the_bright_field(frames):
    dark = calibration.average_frames(frames["dark"])
    gain = calibration.normalised_gain(frames["gain"], dark)
    bad = calibration.bad_pixel_mask(gain, 0.5, 1.5)
    flagged = {tuple(p) for p in np.argwhere(bad)}
    assert flagged == {(int(fy * SHAPE[0]), int(fx * SHAPE[1])) for fy, fx in DEAD_PIXELS}
    calibrated = calibration.Calibrator(dark, gain, bad)(frames["observe"][0])
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


def test_l1_data_is_stored_tile_compressed_losslessly_or_within_its_recorded_error():
    import io
    import re
    import warnings

    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    from obsflow_tasks.vbi.tasks import l1_fits_bytes, read_fits

    # Given a calibrated float32 frame with a bad (NaN) pixel
    rng = np.random.default_rng(5)
    data = rng.normal(20000.0, 150.0, (1, 128, 128)).astype(np.float32)
    data[0, 3, 4] = np.nan
    header = fits.Header([("OBJECT", "quiet sun")])
    # When it is written losslessly (the default) and with quantize level 16
    lossless, lossy = l1_fits_bytes(data, header), l1_fits_bytes(data, header, quantize_level=16)
    # Then the lossless file holds the same bits, NaN included, and both are smaller than the raw data
    image, stored_header = read_fits(lossless)
    assert np.array_equal(image, data, equal_nan=True) and "HISTORY" not in stored_header
    assert len(lossy) < len(lossless) < data.nbytes
    # And the lossy file records its measured maximum error, which holds for every pixel
    image, stored_header = read_fits(lossy)
    [card] = [line for line in stored_header["HISTORY"] if "lossy" in line]
    bound = float(re.search(r"max abs error (\S+)", card).group(1))
    assert 0 < bound < 150.0 / 16 and np.nanmax(np.abs(image - data)) <= bound and np.isnan(image[0, 3, 4])
    # And a flipped byte in the stored data fails astropy's checksum verification
    damaged = bytearray(lossless)
    damaged[-200] ^= 0xFF
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        with fits.open(io.BytesIO(bytes(damaged)), checksum=True, disable_image_compression=True) as hdus:
            hdus[1].data  # noqa: B018 - reading verifies DATASUM
    assert any("Datasum verification failed" in str(w.message) for w in caught)


def test_averages_hold_one_frame_at_a_time_whatever_the_number_of_frames():
    import tracemalloc

    # Given 40 frames of 256x256 uint16, read one by one as the calibration tasks read them
    def frames():
        rng = np.random.default_rng(11)
        for _ in range(40):
            yield rng.integers(90, 110, (256, 256), dtype=np.uint16)

    # When they are averaged, as a gain and as darks of two exposure times
    tracemalloc.start()
    mean = calibration.average_frames(frames())
    darks = calibration.average_darks((frame, 4.0 if i % 2 else 8.0) for i, frame in enumerate(frames()))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Then the results are the means, and memory held a few frames at most (stacking 40 in float64 is 21 MB)
    expected = np.mean(np.stack(list(frames())).astype(np.float64), axis=0)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    assert sorted(darks) == [4.0, 8.0]
    assert peak < 8 * 256 * 256 * 8
