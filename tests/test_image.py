"""avloc.media.image (loading any image mode, video frames) and avloc.inputs.images."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from avloc.errors import MediaError
from avloc.inputs import images
from avloc.media import image

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)


def _asym(h: int = 40, w: int = 60) -> np.ndarray:
    """Red left half, blue right half, green top-left corner: every flip/rotation is visible."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)
    img[:, w // 2 :] = (0, 0, 255)
    img[: h // 4, : w // 4] = (0, 255, 0)
    return img


# ------------------------------------------------------------------------------------------
# load_image
# ------------------------------------------------------------------------------------------


def test_load_rgb_png_exact(tmp_path):
    img = _asym()
    Image.fromarray(img).save(tmp_path / "a.png")
    out = image.load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_load_rgba_composites_on_white(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :6, 3] = 255  # left opaque red-ish, right fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = image.load_image(tmp_path / "a.png")
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], (200, 0, 0))
    np.testing.assert_array_equal(out[0, -1], (255, 255, 255))


def test_load_grayscale(tmp_path):
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (8, 1))
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = image.load_image(tmp_path / "g.png")
    assert out.shape == (8, 25, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_load_16bit_grayscale_is_scaled(tmp_path):
    gray = np.tile(np.array([0, 257 * 100, 65535], np.uint16), (4, 1))
    Image.fromarray(gray).save(tmp_path / "g16.png")
    out = image.load_image(tmp_path / "g16.png")
    assert out.shape == (4, 3, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255])


def test_load_palette_with_transparency(tmp_path):
    pal = Image.fromarray(_asym()).convert("P", palette=Image.ADAPTIVE, colors=8)
    pal.save(tmp_path / "p.gif")
    out = image.load_image(tmp_path / "p.gif")
    assert out.shape == (40, 60, 3)
    assert tuple(out[-1, 0]) == (255, 0, 0) and tuple(out[-1, -1]) == (0, 0, 255)
    # palette index made transparent -> white
    idx = np.asarray(pal)[-1, -1]
    pal.save(tmp_path / "t.png", transparency=int(idx))
    out = image.load_image(tmp_path / "t.png")
    assert tuple(out[-1, -1]) == (255, 255, 255) and tuple(out[-1, 0]) == (255, 0, 0)


def test_load_cmyk_jpeg(tmp_path):
    Image.fromarray(_asym()).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    out = image.load_image(tmp_path / "c.jpg")
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert np.all(np.abs(out[-1, 2].astype(int) - (255, 0, 0)) < 30)
    assert np.all(np.abs(out[-1, -3].astype(int) - (0, 0, 255)) < 30)


def test_load_exif_rotated_jpeg(tmp_path):
    img = Image.fromarray(_asym(40, 60))  # stored landscape, green top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = image.load_image(tmp_path / "r.jpg")
    assert out.shape == (60, 40, 3)  # width and height swapped
    # after a clockwise rotation the stored top-left (green) is at the top-right
    assert out[2, -3, 1] > 200 and out[2, -3, 0] < 60
    # stored left half (red) is now the top half, stored right half (blue) the bottom
    assert out[-3, 3, 2] > 200 and out[-3, 3, 0] < 60
    assert out[20, 3, 0] > 200


def test_corrupt_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_asym(64, 64)).save(buf, format="JPEG")
    data = buf.getvalue()
    path = tmp_path / "x.jpg"
    path.write_bytes(data[: len(data) // 3])  # truncated
    with pytest.raises(MediaError) as info:
        image.load_image(path)
    msg = str(info.value)
    assert "x.jpg" in msg and "not a readable image" in msg and "\n" not in msg
    path.write_bytes(b"\xff\xd8\xff\xe0 garbage" * 10)  # JPEG magic, then nonsense
    with pytest.raises(MediaError, match="x.jpg: not a readable image"):
        image.load_image(path)


def test_missing_image(tmp_path):
    with pytest.raises(MediaError, match="x.jpg: no such file"):
        image.load_image(tmp_path / "x.jpg")


# ------------------------------------------------------------------------------------------
# preprocessing
# ------------------------------------------------------------------------------------------


def test_normalize_mean_is_zero():
    mean_img = np.broadcast_to(np.array(images.IMAGENET_MEAN) * 255, (4, 4, 3))
    out = images.normalize(mean_img)
    assert out.dtype == np.float32
    assert np.max(np.abs(out)) < 1e-5
    one_std = images.normalize(np.full((1, 1, 3), 255, np.uint8))[0, 0]
    np.testing.assert_allclose(
        one_std, (1 - np.array(images.IMAGENET_MEAN)) / images.IMAGENET_STD, rtol=1e-6
    )


def test_preprocess_test_shape_and_values():
    img = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    out = images.preprocess_test(img)
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    flat = np.full((50, 70, 3), (124, 116, 104), np.uint8)  # ~ ImageNet mean
    assert np.max(np.abs(images.preprocess_test(flat, size=32))) < 0.01
    assert images.preprocess_test(img, size=64).shape == (64, 64, 3)


def test_resize_uint8():
    out = images.resize_uint8(_asym(40, 60), 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert tuple(out[-1, 0]) == (255, 0, 0) and tuple(out[-1, -1]) == (0, 0, 255)


def test_preprocess_train_deterministic_per_seed():
    img = np.random.default_rng(1).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    a = images.preprocess_train(img, np.random.default_rng(3))
    b = images.preprocess_train(img, np.random.default_rng(3))
    c = images.preprocess_train(img, np.random.default_rng(4))
    assert a.shape == (224, 224, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


class _ForcedRng:
    """Stands in for a Generator: crop offsets always 0, flip draw fixed."""

    def __init__(self, flip_draw: float):
        self.flip_draw = flip_draw

    def integers(self, low, high=None):
        return low

    def random(self):
        return self.flip_draw


def test_preprocess_train_flip_really_flips():
    img = _asym(246, 246)  # already at the resize size: the crop is a pure slice
    kept = images.preprocess_train(img, _ForcedRng(0.9), size=200)
    flipped = images.preprocess_train(img, _ForcedRng(0.1), size=200)
    np.testing.assert_array_equal(kept, images.normalize(img[:200, :200]))
    np.testing.assert_array_equal(flipped, images.normalize(img[:200, :200][:, ::-1]))
    np.testing.assert_array_equal(flipped, kept[:, ::-1])


class _RecordingRng:
    """Returns the largest allowed crop offsets and records the ranges it was asked for."""

    def __init__(self):
        self.calls = []

    def integers(self, low, high=None):
        self.calls.append((low, high))
        return high - 1

    def random(self):
        return 0.99  # no flip


def test_preprocess_train_resizes_shorter_side_and_crops_inside():
    img = _asym(400, 200)  # tall: width -> 246, height -> int(246 * 400 / 200) = 492
    rng = _RecordingRng()
    out = images.preprocess_train(img, rng)
    assert rng.calls == [(0, 492 - 224 + 1), (0, 246 - 224 + 1)]
    # the maximal offset takes the bottom-right corner of the resized image: blue
    expected = np.asarray(Image.fromarray(img).resize((246, 492), Image.BICUBIC), dtype=np.uint8)[
        -224:, -224:
    ]
    np.testing.assert_array_equal(out, images.normalize(expected))


def test_preprocess_train_flip_probability_is_half():
    img = _asym(246, 246)
    unflipped = images.preprocess_train(img, _ForcedRng(0.9), size=224)
    flips = [
        not np.array_equal(
            images.preprocess_train(img, np.random.default_rng(s), size=246), images.normalize(img)
        )
        for s in range(200)
    ]
    assert 0.35 < np.mean(flips) < 0.65
    assert unflipped.shape == (224, 224, 3)


# ------------------------------------------------------------------------------------------
# extract_video_frame
# ------------------------------------------------------------------------------------------


def _level(k: int) -> int:
    """Gray level of frame k: 12 levels apart, so a +-8 tolerance rejects the neighbours."""
    return 10 + 12 * k


def _write_gray_video(path, codec: str = "mpeg4", fps: int = 10, seconds: float = 2.0) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": "2"}
        for k in range(int(fps * seconds)):
            img = np.full((48, 64, 3), _level(k), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
def test_extract_video_frame_picks_closest(tmp_path, codec):
    path = tmp_path / f"gray_{codec}.mp4"
    _write_gray_video(path, codec)
    frame, t = image.extract_video_frame(path, 1.25)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    # 1.25 s is between frames 12 (1.2 s) and 13 (1.3 s); either is "closest"
    # 1.25 s is half-way between frames 12 (1.2 s) and 13 (1.3 s): either is closest
    assert min(abs(t - 1.2), abs(t - 1.3)) < 1e-6
    assert abs(float(frame.mean()) - _level(round(t * 10))) <= 8
    assert float(frame.std()) < 3  # a solid frame, not a blend
    for when, k in [(1.22, 12), (1.27, 13), (0.04, 0), (1.96, 19)]:
        frame, t = image.extract_video_frame(path, when)
        assert abs(t - k / 10) < 1e-6, (when, t)
        assert abs(float(frame.mean()) - _level(k)) <= 8, (when, frame.mean())
    frame, t = image.extract_video_frame(path, 0.71)
    assert abs(t - 0.7) < 1e-6 and abs(float(frame.mean()) - _level(7)) <= 8
    frame, t = image.extract_video_frame(path, 0.0)
    assert t == 0.0 and abs(float(frame.mean()) - _level(0)) <= 8


def test_extract_video_frame_after_seeking_with_b_frames(tmp_path):
    # many keyframes and B-frames: the decoder seeks, and frames arrive out of decode order
    path = tmp_path / "long.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.gop_size = 10
        stream.options = {"bf": "3", "crf": "10"}
        for k in range(100):
            img = np.full((48, 64, 3), (k * 7) % 250, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    for k in (3, 31, 50, 77, 99):
        frame, t = image.extract_video_frame(path, k / 25 + 0.01)
        assert abs(t - k / 25) < 1e-6
        assert abs(float(frame.mean()) - (k * 7) % 250) <= 8


def test_extract_video_frame_default_middle_and_past_end(tmp_path):
    path = tmp_path / "gray.mp4"
    _write_gray_video(path)
    frame, t = image.extract_video_frame(path)
    assert abs(t - 1.0) <= 0.1
    assert abs(float(frame.mean()) - _level(round(t * 10))) <= 8
    frame, t = image.extract_video_frame(path, 30.0)
    assert abs(t - 1.9) < 1e-6 and abs(float(frame.mean()) - _level(19)) <= 8


def test_extract_video_frame_errors(tmp_path):
    with pytest.raises(MediaError, match="v.mp4: no such file"):
        image.extract_video_frame(tmp_path / "v.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    with pytest.raises(MediaError) as info:
        image.extract_video_frame(bad)
    assert "bad.mp4" in str(info.value) and "\n" not in str(info.value)
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(1600), 16000)
    with pytest.raises(MediaError, match="a.wav: has no video stream"):
        image.extract_video_frame(wav)


def _png_declaring(path, width: int, height: int) -> None:
    """A 1-pixel PNG whose header says ``width`` x ``height`` (the CRC fixed): a bomb's header."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_an_image_over_the_pixel_cap_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_declaring(bomb, 12500, 12500)  # 156 M pixels: under Pillow's hard limit
    with pytest.raises(MediaError) as info:
        image.load_image(bomb)
    message = str(info.value)
    assert message.startswith(f"{bomb}: 12500 x 12500 pixels, more than the 40 million")
    assert "refused before decoding" in message and "\n" not in message


def test_pillows_decompression_bomb_warning_is_an_error(tmp_path, monkeypatch):
    import PIL.Image

    path = tmp_path / "small.png"
    Image.new("RGB", (20, 20)).save(path)
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 300)  # 400 pixels warn (not twice over)
    with pytest.raises(MediaError, match=r"small.png: not a readable image \(Image size"):
        image.load_image(path)


def test_overlays_are_rendered_at_a_capped_size():
    from avloc.jobs.localize import Localization, render
    from avloc.media.overlay import MAX_OVERLAY_SIDE

    wide = np.zeros((10, MAX_OVERLAY_SIDE + 904, 3), np.uint8)
    heat = np.tile(np.linspace(-1, 1, wide.shape[1], dtype=np.float32), (10, 1))
    out = render(wide, Localization.from_map(heat, 0.5))
    assert out.shape == (8, MAX_OVERLAY_SIDE, 3)  # 10 * 4096 / 5000, aspect kept
    small = np.zeros((10, 30, 3), np.uint8)
    assert render(small, Localization.from_map(heat[:, :30], 0.5)).shape == small.shape
