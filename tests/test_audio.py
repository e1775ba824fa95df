"""avloc.media.audio (decoding, clipping) and avloc.inputs (negatives, the log-spectrogram)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from avloc.errors import AvlocError, MediaError
from avloc.inputs import noise as negatives
from avloc.inputs import spectrogram
from avloc.media import audio

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

SR = 16000


def _reference(x: np.ndarray, fs: int = SR) -> np.ndarray:
    _, _, s = scipy.signal.spectrogram(np.asarray(x, np.float64), fs=fs, nperseg=512, noverlap=274)
    return np.log(s + 1e-7) / 12


def _dominant_hz(wave: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spec)])


# ------------------------------------------------------------------------------------------
# spectrogram
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_spectrogram_matches_scipy_on_noise(seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, 48000).astype(np.float32) * rng.uniform(0.01, 1)
    got = spectrogram.spectrogram(x)
    ref = _reference(x)
    assert got.dtype == np.float32
    assert got.shape == ref.shape == (257, 200)
    assert np.max(np.abs(got - ref)) < 1e-5


def test_spectrogram_matches_scipy_on_sine_and_odd_length():
    t = np.arange(50001) / SR
    x = (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.1).astype(np.float32)  # DC offset too
    got = spectrogram.spectrogram(x)
    ref = _reference(x)
    assert got.shape == ref.shape == (257, (50001 - 512) // 238 + 1)
    assert np.max(np.abs(got - ref)) < 1e-5
    # the energy sits in the 1 kHz bin (31.25 Hz spacing -> bin 32)
    assert np.all(np.argmax(got, axis=0) == 32)


def test_spectrogram_shape_for_three_seconds():
    assert spectrogram.spectrogram(np.zeros(48000, np.float32)).shape == (257, 200)


def test_spectrogram_batch_equals_per_item():
    rng = np.random.default_rng(7)
    batch = rng.standard_normal((40, 48000)).astype(np.float32) * 0.3  # > one internal chunk
    got = spectrogram.spectrogram(batch)
    assert got.shape == (40, 257, 200)
    for i in (0, 17, 33, 39):
        np.testing.assert_allclose(got[i], spectrogram.spectrogram(batch[i]), rtol=0, atol=1e-6)


def test_spectrogram_of_silence_is_constant_floor():
    got = spectrogram.spectrogram(negatives.silence_waveform(48000))
    np.testing.assert_allclose(got, np.log(1e-7) / 12, rtol=0, atol=1e-6)


def test_spectrogram_rejects_too_short_input():
    with pytest.raises(ValueError):
        spectrogram.spectrogram(np.zeros(100, np.float32))


# ------------------------------------------------------------------------------------------
# negatives
# ------------------------------------------------------------------------------------------


def test_noise_waveform_statistics():
    noise = negatives.noise_waveform(np.random.default_rng(0), 1_000_000)
    assert noise.dtype == np.float32 and noise.shape == (1_000_000,)
    assert noise.min() == -1.0 and noise.max() == 1.0
    assert abs(noise.std() - 0.719) < 0.01
    assert abs(np.mean(np.abs(noise) == 1.0) - 0.317) < 0.01
    assert abs(noise.mean()) < 0.01


def test_noise_waveform_is_reproducible():
    a = negatives.noise_waveform(np.random.default_rng(5), 1000)
    b = negatives.noise_waveform(np.random.default_rng(5), 1000)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("color", ["pink", "brown"])
def test_coloured_noise_has_its_spectral_slope(color):
    """Power ~ 1/f^k: the log-log slope of the averaged periodogram is -k (clipping at +-1
    touches few samples of unit-variance noise and barely bends it)."""
    n = 2**15
    exponent = negatives.NOISE_COLORS[color]
    powers = []
    for seed in range(20):
        wave = negatives.noise_waveform(np.random.default_rng(seed), n, color)
        assert wave.dtype == np.float32 and wave.shape == (n,)
        assert np.abs(wave).max() <= 1.0
        powers.append(np.abs(np.fft.rfft(wave.astype(np.float64))) ** 2)
    power = np.mean(powers, axis=0)
    bins = np.arange(power.size)
    band = (bins >= 16) & (bins <= n // 16)  # away from DC and from clipping's flat floor
    slope = np.polyfit(np.log(bins[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.25)


def test_white_noise_is_unchanged_by_the_colour_option():
    a = negatives.noise_waveform(np.random.default_rng(3), 4000)
    b = negatives.noise_waveform(np.random.default_rng(3), 4000, "white")
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown noise colour"):
        negatives.noise_waveform(np.random.default_rng(3), 10, "blue")


def test_silence_waveform():
    s = negatives.silence_waveform(48000)
    assert s.dtype == np.float32 and s.shape == (48000,) and not s.any()


# ------------------------------------------------------------------------------------------
# clip_centered
# ------------------------------------------------------------------------------------------


def test_clip_tiles_short_audio_exactly():
    wave = np.arange(1, 8, dtype=np.float32)  # 7 samples
    out = audio.clip_centered(wave, sample_rate=10, seconds=2.0)  # 20 samples
    expected = np.array([1, 2, 3, 4, 5, 6, 7] * 3, np.float32)[:20]
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32


def test_clip_of_exact_length_is_identity():
    wave = np.arange(48000, dtype=np.float32)
    np.testing.assert_array_equal(audio.clip_centered(wave), wave)


def test_clip_centred_on_middle_by_default():
    wave = np.arange(5 * SR, dtype=np.float32)  # 5 s -> start at 1.0 s
    out = audio.clip_centered(wave)
    assert out.shape == (48000,)
    assert out[0] == SR and out[-1] == SR + 48000 - 1


def test_clip_centred_on_given_time():
    wave = np.arange(10 * SR, dtype=np.float32)
    out = audio.clip_centered(wave, center=4.0)  # start at 2.5 s
    assert out[0] == int(2.5 * SR) and len(out) == 48000
    out = audio.clip_centered(wave, center=0.5)  # would start before 0 -> 0
    assert out[0] == 0


def test_clip_near_the_end_shifts_left():
    wave = np.arange(10 * SR, dtype=np.float32)
    out = audio.clip_centered(wave, center=9.5)
    assert len(out) == 48000
    assert out[-1] == 10 * SR - 1 and out[0] == 7 * SR


@pytest.mark.parametrize("seconds,sr", [(3.0, 16000), (1.0, 22050), (0.3333, 16000)])
def test_clip_length_is_exact(seconds, sr):
    for n in (1, 1000, int(seconds * sr), 5 * sr + 3):
        out = audio.clip_centered(np.ones(n, np.float32), sample_rate=sr, seconds=seconds)
        assert out.shape == (round(seconds * sr),)


def test_clip_rejects_empty():
    with pytest.raises(ValueError):
        audio.clip_centered(np.zeros(0, np.float32))


# ------------------------------------------------------------------------------------------
# load_audio
# ------------------------------------------------------------------------------------------


def _stereo_sine(sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    left = 0.8 * np.sin(2 * np.pi * 440 * t)
    return np.stack([left, np.zeros_like(left)], axis=1)


def test_load_stereo_wav_mixes_and_resamples(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, _stereo_sine(44100, 2.0), 44100, subtype="FLOAT")
    wave = audio.load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 32000) <= 1
    assert abs(_dominant_hz(wave, SR) - 440) <= 1.0
    # mono = mean of channels: the sine (0.8 peak) in one channel -> 0.4 peak
    assert abs(np.max(np.abs(wave[1000:-1000])) - 0.4) < 0.01


def test_load_at_native_rate_is_exact(tmp_path):
    path = tmp_path / "native.wav"
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 16000)
    sf.write(path, x, SR, subtype="FLOAT")
    np.testing.assert_allclose(audio.load_audio(path), x.astype(np.float32), atol=1e-7)


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3"])
def test_load_flac_ogg_mp3(tmp_path, ext):
    path = tmp_path / f"clip.{ext}"
    sf.write(path, _stereo_sine(44100, 1.0), 44100)
    wave = audio.load_audio(path)
    assert abs(len(wave) - 16000) <= 1
    assert abs(_dominant_hz(wave, SR) - 440) <= 1.0
    assert np.all(np.abs(wave) <= 1.0)


def test_load_clips_to_unit_range(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.full(1000, 3.0), SR, subtype="FLOAT")
    wave = audio.load_audio(path)
    assert wave.max() == 1.0


def _write_aac_mp4(path, seconds: float, rate: int = 44100, with_video: bool = False) -> None:
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with av.open(str(path), "w") as out:  # all streams must exist before the first mux
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "stereo"
        v = out.add_stream("mpeg4", rate=10) if with_video else None
        if v is not None:
            v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
            for _ in range(int(seconds * 10)):
                img = np.full((32, 32, 3), 100, np.uint8)
                for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in v.encode(None):
                out.mux(packet)
        pts = 0
        for i in range(0, len(samples), 1024):
            chunk = samples[i : i + 1024]
            planar = np.stack([chunk, np.zeros_like(chunk)])  # sine left, silence right
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += chunk.shape[0]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_load_aac_from_mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_aac_mp4(path, 1.5)
    wave = audio.load_audio(path)
    assert abs(len(wave) / SR - 1.5) <= 0.05
    assert abs(_dominant_hz(wave[2000:-2000], SR) - 440) <= 2.0
    # a 0.5 sine averaged with a silent channel (away from the AAC onset transient)
    assert abs(np.max(np.abs(wave[2000:-2000])) - 0.25) < 0.02


def test_load_audio_segment_from_mp4_with_video(tmp_path):
    path = tmp_path / "both.mp4"
    _write_aac_mp4(path, 2.0, with_video=True)
    wave = audio.load_audio(path)
    assert abs(len(wave) / SR - 2.0) <= 0.05
    seg = audio.load_audio_segment(path, seconds=3.0)  # shorter than 3 s: tiled
    assert seg.shape == (48000,) and seg.dtype == np.float32
    np.testing.assert_array_equal(seg[: len(wave)], wave)
    np.testing.assert_array_equal(seg[len(wave) :], wave[: 48000 - len(wave)])


def test_video_without_audio_track(tmp_path):
    path = tmp_path / "video.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    with pytest.raises(MediaError, match="no audio") as info:
        audio.load_audio(path)
    assert "video.mp4" in str(info.value) and "\n" not in str(info.value)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes\nnot audio at all\n" * 20)
    with pytest.raises(MediaError) as info:
        audio.load_audio(path)
    msg = str(info.value)
    assert "notes.wav" in msg and "not a readable audio file" in msg and "\n" not in msg
    assert isinstance(info.value, AvlocError)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file") as info:
        audio.load_audio(tmp_path / "clip.wav")
    assert "clip.wav" in str(info.value)


def test_zero_length_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 2)), SR)
    with pytest.raises(MediaError, match="no audio samples") as info:
        audio.load_audio(path)
    assert "empty.wav" in str(info.value)
    with pytest.raises(MediaError, match="empty.wav"):
        audio.load_audio_segment(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="zero.wav"):
        audio.load_audio(path)


def _wav_declaring(path, declared_frames: int, present: np.ndarray, rate: int = 16000):
    """A mono 16-bit WAV whose header declares ``declared_frames``, holding ``present``."""
    import struct

    data = present.astype("<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    size = struct.pack("<I", declared_frames * 2 if declared_frames >= 0 else 0xFFFFFFFF)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data"
                     + size + data)  # fmt: skip
    return path


def test_truncated_wav_is_used_with_one_warning_line(tmp_path, capsys):
    """Header 3 s, 8 samples present: a warning naming the file and both lengths (a warning,
    not a refusal: see avloc.media.audio's docstring)."""
    path = _wav_declaring(tmp_path / "cut.wav", 48000, np.arange(8) * 1000)
    clip = audio.load_audio_segment(path, 16000, 3.0)
    assert clip.shape == (48000,)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"warning: {path}: truncated: its header declares 3.000 s of audio, 0.0005 s are "
        "present; the result is for the part present"
    ]


def test_a_streamed_wav_header_is_not_reported_as_truncated(tmp_path, capsys):
    path = _wav_declaring(tmp_path / "streamed.wav", -1, np.arange(800) * 10)
    assert audio.load_audio(path, 16000).shape == (800,)
    assert capsys.readouterr().err == ""


def test_save_wav_roundtrip(tmp_path):
    path = tmp_path / "out.wav"
    x = np.linspace(-1, 1, 1601, dtype=np.float32)
    audio.save_wav(path, x)
    info = sf.info(str(path))
    assert info.subtype == "PCM_16" and info.samplerate == SR
    np.testing.assert_allclose(audio.load_audio(path), x, atol=1 / 32767 + 1e-6)


@pytest.mark.parametrize("rate, channels", [(16000, 1), (48000, 2)])
@pytest.mark.parametrize("center", [None, 0.2, 31.7, 69.9])
def test_long_files_are_decoded_only_around_the_clip(tmp_path, monkeypatch, rate, channels, center):
    import soundfile as sf

    from avloc.media import audio

    seconds = 70.0  # over LONG_AUDIO_SECONDS
    n = int(seconds * rate)
    t = np.arange(n) / rate
    wave = 0.3 * np.sin(2 * np.pi * (200 + 3 * t) * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)
    data = np.stack([wave, -0.5 * wave], axis=1)[:, :channels].astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, data, rate, subtype="FLOAT")

    reads = []
    original = sf.read

    def counting(*args, **kwargs):
        result = original(*args, **kwargs)
        reads.append(result[0].shape[0])
        return result

    monkeypatch.setattr(sf, "read", counting)
    clip, duration = audio.load_clip(path, 16000, 3.0, center)
    assert duration == pytest.approx(seconds)
    assert reads and max(reads) <= (3.0 + 2 * audio.WINDOW_MARGIN_SECONDS) * rate + 2
    whole = audio.clip_centered(audio.load_audio(path, 16000), 16000, 3.0, center)
    assert clip.shape == whole.shape == (48000,)
    if rate == 16000:
        np.testing.assert_array_equal(clip, whole)  # no resampling: the same samples
    else:
        np.testing.assert_allclose(clip, whole, atol=1e-4)  # resampling's round-off only


# --------------------------------------------------------------------------------------------
# Long files in PyAV's containers: decoded around the clip only


def test_a_clip_of_a_long_m4a_is_decoded_around_it_and_equals_the_whole_files(tmp_path):
    from fakemedia import dominant_frequency, tone_frequency, write_m4a

    path = tmp_path / "long.m4a"
    write_m4a(path, 70.0, rate=22050)  # past LONG_AUDIO_SECONDS; 22050 Hz: resampled
    clip, duration = audio.load_clip(path, 16000, 3.0, center=45.0)
    assert duration == pytest.approx(70.0, abs=0.05)
    whole = audio.clip_centered(audio.load_audio(path, 16000), 16000, 3.0, 45.0)
    np.testing.assert_allclose(clip, whole, atol=1e-5)
    assert dominant_frequency(clip[4000:12000], 16000) == pytest.approx(tone_frequency(43), abs=4)
    # a span, as the heatmap video reads it: from a margin before its start
    span, first = audio.load_audio_span(path, 16000, 60.0, 61.0)
    assert 59.0 < first <= 60.0 - audio.WINDOW_MARGIN_SECONDS + 1e-9
    whole = audio.load_audio(path, 16000)
    lead = int(round(first * 16000))
    np.testing.assert_allclose(span[8000:24000], whole[lead + 8000 : lead + 24000], atol=1e-5)


@pytest.mark.large  # encodes 30 minutes of AAC (about 20 s)
def test_a_clip_of_a_30_minute_m4a_costs_no_more_memory_than_a_short_file(tmp_path):
    from fakemedia import peak_rss_mb, write_m4a

    path = tmp_path / "long.m4a"
    write_m4a(path, 1800.0, rate=48000)  # whole, decoded: 1800 s x 48000 x 4 B = 330 MB, twice
    code = (
        "from avloc.media.audio import load_clip\n"
        f"clip, duration = load_clip({str(path)!r}, 16000, 3.0, center=900.0)\n"
        "assert clip.shape == (48000,) and abs(duration - 1800) < 1, duration\n"
    )
    assert peak_rss_mb(code) < 250  # 59 MB measured (Python, numpy, PyAV); whole: > 700
