"""Tests of the face modules in lookups.faces (plain pytest, no database).

Face images come from the shared, licence-restricted set (KINGUARD_FACES_DIR or
../shared/faces); they are read by path and never copied into the repo. Bad inputs are built
in memory here. Without the face set, image tests skip -- or fail when CI=true.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from lookups.faces.burst import check_burst, y4m_frames
from lookups.faces.calibration import calibrate, default_faces_dir, parse_identities
from lookups.faces.detection import FaceSample, detect_single_face, warm_up
from lookups.faces.errors import REJECTION_CODES, ProbeRejected
from lookups.faces.images import MAX_BURST_FRAMES, MAX_LONG_SIDE, MAX_UPLOAD_BYTES, MIN_FACE_HEIGHT_PX, load_probe_image
from lookups.faces.matching import (
    DEFAULT_THRESHOLD,
    MODEL_VERSION,
    build_template,
    compare,
    decode_template_bytes,
    encode_template_bytes,
    face_distance,
)

# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces() -> Path:
    root = default_faces_dir()
    if not (root / "person_01").is_dir():
        msg = f"face test set not found at {root} (set KINGUARD_FACES_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


def _jpeg(im: Image.Image | np.ndarray, quality: int = 92, **kwargs: object) -> bytes:
    if isinstance(im, np.ndarray):
        im = Image.fromarray(im)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _sample(path: Path) -> FaceSample:
    return detect_single_face(load_probe_image(path.read_bytes()))


def _code(data: bytes) -> str:
    with pytest.raises(ProbeRejected) as info:
        detect_single_face(load_probe_image(data))
    assert info.value.message == REJECTION_CODES[info.value.code]
    assert "retake" in info.value.message.lower() or "take" in info.value.message.lower()
    return info.value.code


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height RGB, with a tiny (invalid) IDAT."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def obama_template(faces: Path) -> np.ndarray:
    """Template of person_01/01-03 (person_01/04.jpg is the source of the camera clip)."""
    return build_template([_sample(faces / f"person_01/0{i}.jpg") for i in (1, 2, 3)])


# --------------------------------------------------------------------------------------------
# Interface basics
# --------------------------------------------------------------------------------------------


def test_model_version_built_from_installed_versions() -> None:
    assert re.fullmatch(r"face_recognition-\d[\d.]*/dlib-\d[\d.]*/resnet128-v1/hog", MODEL_VERSION)


def test_default_threshold_is_calibrated_and_strict() -> None:
    assert 0.3 <= DEFAULT_THRESHOLD <= 0.5
    assert MAX_UPLOAD_BYTES == 10 * 1024 * 1024


def test_probe_rejected_codes_messages_and_pickle() -> None:
    for code, message in REJECTION_CODES.items():
        exc = ProbeRejected(code)
        assert exc.message == message and str(exc) == message
        assert message.endswith(".") and "Traceback" not in message
        clone = pickle.loads(pickle.dumps(exc))  # noqa: S301 - own object; Celery pickles errors
        assert (clone.code, clone.message) == (code, message)
    with pytest.raises(ValueError):
        ProbeRejected("bogus")


def test_template_bytes_roundtrip_and_validation() -> None:
    vec = np.random.default_rng(0).normal(size=128)
    blob = encode_template_bytes(vec)
    assert len(blob) == 1024
    assert np.array_equal(decode_template_bytes(blob), vec)
    with pytest.raises(ValueError):
        decode_template_bytes(blob[:-8])
    with pytest.raises(ValueError):
        decode_template_bytes(blob + b"\0")
    with pytest.raises(ValueError):
        decode_template_bytes(encode_template_bytes(vec)[:-8] + struct.pack("<d", np.nan))
    with pytest.raises(ValueError):
        encode_template_bytes(np.zeros(127))


def test_build_template_is_mean_and_needs_a_sample() -> None:
    def fake(vec: np.ndarray) -> FaceSample:
        return FaceSample(vec, (0, 1, 1, 0), 1, 100.0, 100.0, None)

    a, b = np.zeros(128), np.ones(128)
    assert np.allclose(build_template([fake(a), fake(b)]), 0.5)
    with pytest.raises(ValueError):
        build_template([])
    verdict = compare(np.zeros(128), fake(np.full(128, 0.01)), threshold=0.2)
    assert verdict.matched and verdict.distance == pytest.approx(0.01 * np.sqrt(128))
    assert verdict.threshold == 0.2 and verdict.model_version == MODEL_VERSION
    assert not compare(np.zeros(128), fake(np.full(128, 0.1)), threshold=0.2).matched


# --------------------------------------------------------------------------------------------
# Bad uploads (built in the test, never committed)
# --------------------------------------------------------------------------------------------


def test_empty_bytes() -> None:
    assert _code(b"") == "empty"


def test_text_renamed_jpg(tmp_path: Path) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is not a photo\n" * 20)
    assert _code(fake.read_bytes()) == "not_an_image"


def test_forty_megabytes_refused_before_parsing() -> None:
    assert _code(b"\xff\xd8\xff" + b"\0" * (40 * 1024 * 1024)) == "too_large"


@pytest.mark.parametrize("side", [30000, 8000])
def test_png_declaring_huge_size_is_not_decoded(side: int) -> None:
    # 30000^2 trips Pillow's DecompressionBombError, 8000^2 = 64 MP our own limit.
    assert _code(_png_header_only(side, side)) == "too_many_pixels"


def test_animated_gif() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "blue", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert _code(buf.getvalue()) == "animated"


def test_truncated_jpeg(faces: Path) -> None:
    data = (faces / "person_01/01.jpg").read_bytes()
    assert _code(data[: len(data) * 2 // 3]) == "unreadable"


# --------------------------------------------------------------------------------------------
# Mode conversions, orientation, size
# --------------------------------------------------------------------------------------------


def test_cmyk_jpeg(faces: Path) -> None:
    src = Image.open(faces / "person_01/02.jpg")
    data = _jpeg(src.convert("CMYK"))
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image = load_probe_image(data)
    assert image.dtype == np.uint8 and image.shape == (800, 417, 3)
    cmyk = detect_single_face(image)
    assert face_distance(cmyk.embedding, _sample(faces / "person_01/02.jpg").embedding) < 0.1


def test_sixteen_bit_png_is_rescaled_not_clipped(faces: Path) -> None:
    gray = np.asarray(Image.open(faces / "person_01/02.jpg").convert("L"), dtype=np.uint16)
    data = _png(Image.fromarray(gray * 257))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    image = load_probe_image(data)
    assert image.dtype == np.uint8 and abs(float(image.mean()) - float(gray.mean())) < 1.0
    assert detect_single_face(image).face_height_px >= MIN_FACE_HEIGHT_PX


def test_png_with_alpha_is_composited_on_white(faces: Path) -> None:
    rgba = Image.open(faces / "person_01/02.jpg").convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, np.uint8)
    alpha[:40, :40] = 0  # fully transparent corner (pixels underneath stay dark)
    rgba.putalpha(Image.fromarray(alpha))
    image = load_probe_image(_png(rgba))
    assert (image[:40, :40] == 255).all()
    detect_single_face(image)


def test_exif_rotated_portrait(faces: Path) -> None:
    upright = Image.open(faces / "person_01/02.jpg")  # 417x800 portrait
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # camera sensor is landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image = load_probe_image(_jpeg(stored, exif=exif.tobytes()))
    assert image.shape[:2] == (800, 417)
    detect_single_face(image)
    # Without the orientation tag the face lies on its side and is not found.
    assert _code(_jpeg(stored)) == "no_face"


def test_large_upscaled_image_is_downscaled_and_matches(faces: Path, obama_template: np.ndarray) -> None:
    src = Image.open(faces / "person_01/04.jpg")  # 800x450
    big = src.resize((4000, 2250), Image.Resampling.BICUBIC)
    data = _jpeg(big, quality=85)
    assert len(data) <= MAX_UPLOAD_BYTES
    image = load_probe_image(data)
    assert max(image.shape[:2]) == MAX_LONG_SIDE
    sample = detect_single_face(image)
    verdict = compare(obama_template, sample)
    assert verdict.matched
    original = compare(obama_template, _sample(faces / "person_01/04.jpg"))
    assert abs(verdict.distance - original.distance) < 0.05


def test_large_original_stays_within_bounds(faces: Path) -> None:
    image = load_probe_image((faces / "special/large_original.jpg").read_bytes())
    assert image.shape == (800, 492, 3)
    assert detect_single_face(image).face_height_px > 100


# --------------------------------------------------------------------------------------------
# Quality gate
# --------------------------------------------------------------------------------------------


def test_small_face_refused(faces: Path) -> None:
    assert _code((faces / "special/small_face.jpg").read_bytes()) == "face_too_small"


@pytest.mark.parametrize("name", ["no_face_dogs", "no_face_horses", "no_face_painting_scream"])
def test_no_face(faces: Path, name: str) -> None:
    assert _code((faces / f"special/{name}.jpg").read_bytes()) == "no_face"


@pytest.mark.parametrize("name", ["multi_face_two_people", "multi_face_crowd"])
def test_multiple_faces(faces: Path, name: str) -> None:
    assert _code((faces / f"special/{name}.jpg").read_bytes()) == "multiple_faces"


def test_lfw_thumbnail_passes_gate(faces: Path) -> None:
    sample = _sample(faces / "person_12/01.jpg")  # 150x150, ~72 px face
    assert sample.face_height_px >= MIN_FACE_HEIGHT_PX
    assert sample.embedding.shape == (128,) and sample.embedding.dtype == np.float64
    assert sample.landmarks is not None and len(sample.landmarks["left_eye"]) == 6


def test_too_dark(faces: Path) -> None:
    rgb = np.asarray(Image.open(faces / "person_01/02.jpg").convert("RGB"), dtype=np.float64)
    assert _code(_jpeg((rgb * 0.2).astype(np.uint8))) == "too_dark"


def test_too_blurry(faces: Path) -> None:
    src = Image.open(faces / "person_01/02.jpg").convert("RGB")  # face ~179 px
    assert _code(_jpeg(src.filter(ImageFilter.GaussianBlur(9)))) == "too_blurry"


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------


def test_same_identity_matches(faces: Path, obama_template: np.ndarray) -> None:
    verdict = compare(obama_template, _sample(faces / "person_01/04.jpg"))
    assert verdict.matched and verdict.distance <= DEFAULT_THRESHOLD
    assert verdict.model_version == MODEL_VERSION and verdict.encode_ms >= 0


def test_other_identity_refused(faces: Path, obama_template: np.ndarray) -> None:
    for probe in ("person_04/02.jpg", "person_10/08.jpg", "person_36/01.jpg"):
        verdict = compare(obama_template, _sample(faces / probe))
        assert not verdict.matched, probe


def test_stored_template_compares_identically(faces: Path, obama_template: np.ndarray) -> None:
    restored = decode_template_bytes(encode_template_bytes(obama_template))
    sample = _sample(faces / "person_01/04.jpg")
    assert compare(restored, sample).distance == compare(obama_template, sample).distance


# --------------------------------------------------------------------------------------------
# Burst
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_frames(faces: Path) -> dict[str, list[bytes]]:
    return {who: [_jpeg(f) for f in y4m_frames(faces / f"camera/{who}.y4m")[::2]] for who in ("person_01", "person_04")}


def test_y4m_reader(faces: Path) -> None:
    frames = y4m_frames(faces / "camera/person_01.y4m")
    assert len(frames) == 10
    assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in frames)


def test_burst_of_camera_clip_accepted(clip_frames: dict[str, list[bytes]], obama_template: np.ndarray) -> None:
    verdict = check_burst(clip_frames["person_01"], obama_template)
    assert verdict.matched
    assert verdict.distance <= verdict.threshold == DEFAULT_THRESHOLD


def test_burst_rigid_only_motion_refused_when_nonrigid_required(
    clip_frames: dict[str, list[bytes]], obama_template: np.ndarray
) -> None:
    # The clips are a zoom/pan of one still: honest limit of the default motion test.
    with pytest.raises(ProbeRejected) as info:
        check_burst(clip_frames["person_01"], obama_template, require_nonrigid=True)
    assert info.value.code == "no_motion"


def test_burst_other_identity_not_matched(clip_frames: dict[str, list[bytes]], obama_template: np.ndarray) -> None:
    verdict = check_burst(clip_frames["person_04"], obama_template)
    assert not verdict.matched and verdict.distance > 0.6


def test_burst_repeated_still_refused(clip_frames: dict[str, list[bytes]], obama_template: np.ndarray) -> None:
    with pytest.raises(ProbeRejected) as info:
        check_burst([clip_frames["person_01"][0]] * 5, obama_template)
    assert info.value.code == "replayed_still"


def test_burst_noise_only_is_no_motion(faces: Path, obama_template: np.ndarray) -> None:
    still = y4m_frames(faces / "camera/person_01.y4m", limit=1)[0].astype(np.float64)
    rng = np.random.default_rng(7)
    noisy = [_jpeg(np.clip(still + rng.normal(0, 4, still.shape), 0, 255).astype(np.uint8)) for _ in range(4)]
    with pytest.raises(ProbeRejected) as info:
        check_burst(noisy, obama_template)
    assert info.value.code in {"no_motion", "replayed_still"}


def test_burst_frame_count_limits(clip_frames: dict[str, list[bytes]], obama_template: np.ndarray) -> None:
    with pytest.raises(ProbeRejected) as info:
        check_burst(clip_frames["person_01"][:2], obama_template)
    assert info.value.code == "too_few_frames"
    with pytest.raises(ProbeRejected) as info:
        check_burst([b"x"] * (MAX_BURST_FRAMES + 1), obama_template)
    assert info.value.code == "too_many_frames"


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def test_parse_identities() -> None:
    names = [f"person_{i:02d}" for i in range(1, 41)]
    chosen = parse_identities("person_01-03,person_36-37", names)
    assert chosen == ["person_01", "person_02", "person_03", "person_36", "person_37"]
    assert parse_identities(None, names) == names
    with pytest.raises(ValueError):
        parse_identities("person_41", names)


def test_calibrate_small_subset(faces: Path) -> None:
    from lookups.management.commands.calibrate_faces import format_report

    result = calibrate(faces, 3, "person_36-38", [0.3, 0.4, 0.5])
    assert result["n_templates"] == 3 and result["n_probes"] == 15
    assert len(result["genuine"]) == 15 and len(result["impostor"]) == 30
    assert [r["threshold"] for r in result["rows"]] == [0.3, 0.4, 0.5]
    lines = format_report(result)
    last = lines[-1]
    assert re.fullmatch(r"threshold=0\.\d\d fmr=\d+\.\d{3}% fnmr=\d+\.\d{2}% genuine=15 impostor=30", last)
    # the look-alike line: every identity's nearest other identity, all its accepted photos
    assert len(result["nearest_pairs"]) == 3
    assert result["nearest_pairs_fmr"]["comparisons"] == 3 * 8  # the johns: 8 accepted photos each
    summary = next(line for line in lines if line.startswith("nearest-identity pairs: "))
    assert re.match(r"nearest-identity pairs: fmr=\d+\.\d\d% \(\d+ of 24 ", summary)
    assert "person_36 (John_Salley) <- person_3" in "\n".join(lines)
    assert any(line.startswith("nearest-identity pairs, shipped rule (look-alike enrolled") for line in lines)
    assert any(line.startswith("shipped rule (threshold + cohort margin 0.03") for line in lines)
    assert {"fnmr_cohort", "fmr_cohort", "fmr_cohort_enrolled"} <= set(result["configured"])


def test_calibrate_on_a_degraded_folder(faces: Path, tmp_path: Path) -> None:
    """bench/degrade_faces.py output goes through calibrate_faces as the shared set does:
    refusals are FTA (by code), everything else is decided."""
    import importlib.util

    from lookups.management.commands.calibrate_faces import format_report

    spec = importlib.util.spec_from_file_location(
        "degrade_faces", Path(__file__).resolve().parents[2] / "bench" / "degrade_faces.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "degraded"
    assert module.main([str(out), "--src", str(faces), "--identities", "person_36-37", "--enroll", "5"]) == 0
    result = calibrate(out, 5, None, [0.42])
    n_variants = len(module.VARIANTS)
    assert result["n_templates"] == 2
    assert result["n_probes"] + len(result["probe_fta"]) == 2 * 3 * n_variants  # 8 photos: 5 enroll, 3 degraded
    assert len(result["genuine"]) == result["n_probes"]
    assert all(code in REJECTION_CODES for _, code in result["probe_fta"])
    lines = format_report(result)
    assert any(line.startswith("failure to acquire: ") for line in lines)
    assert result["configured"]["false_matches"] == 0  # two unrelated Johns


def test_nearest_identity_pairs_pick_the_closest_template_and_count_its_photos() -> None:
    from lookups.faces.calibration import nearest_identity_pairs, pairs_fmr

    base = np.zeros(128)
    templates = {"a": base, "b": base + 0.02, "c": base + 0.5}  # |a-b| = 0.23, |a-c| = 5.7
    photos = {
        "a": [("a/1", base)],
        "b": [("b/1", base + 0.01), ("b/2", base + 0.2)],  # 0.11 and 2.26 from a
        "c": [("c/1", base + 0.5)],
    }
    pairs = {p["identity"]: p for p in nearest_identity_pairs(templates, photos, 0.42)}
    assert (pairs["a"]["nearest"], pairs["b"]["nearest"], pairs["c"]["nearest"]) == ("b", "a", "b")
    assert (pairs["a"]["false_matches"], pairs["a"]["comparisons"]) == (1, 2)
    assert pairs["a"]["closest"] == pytest.approx(0.01 * np.sqrt(128))
    summary = pairs_fmr(list(pairs.values()))
    assert {k: summary[k] for k in ("comparisons", "false_matches", "fmr")} == {
        "comparisons": 5,
        "false_matches": 2,
        "fmr": 0.4,
    }
    # with the cohort (the other templates), b's photos are nearer to b: refused
    assert pairs["a"]["false_matches_cohort"] == 0 and summary["false_matches_cohort"] == 0


def test_truncated_jpeg_stays_refused_after_the_models_load(faces: Path):
    """face_recognition sets Pillow's LOAD_TRUNCATED_IMAGES on import; the pipeline undoes it."""
    warm_up()
    data = (faces / "person_02/01.jpg").read_bytes()
    with pytest.raises(ProbeRejected) as excinfo:
        load_probe_image(data[: len(data) // 2])
    assert excinfo.value.code == "unreadable"
