"""Importing published PyTorch checkpoints (EZ-VSL family, SLAVC, LVS, SSL-TIE, SSL-SaN,
SSL-Align, RCGrad): saved from the plain-PyTorch references of tests/references.py with the
published state_dict key names, imported, and compared with the reference's embeddings and
similarity maps (RCGrad's: its Grad-CAM maps); the architecture detected from the keys; and an
imported network localizing as the published model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import assert_parity, import_error, keras_outputs
from references import (
    A_WIDTH,
    DIM,
    EZVSL,
    LVS,
    SLAVC,
    SSLTIE,
    V_WIDTH,
    RCGradModel,
    SSLAlign,
    gradcam_reference,
    inputs,
    randomise,
    rcgrad_spectrogram,
    reference,
    save_published,
)

from avloc.errors import DataError
from avloc.models.import_torch import PUBLISHED_INPUTS, import_checkpoint, load_state_dict
from avloc.models.io import load_network

# ------------------------------------------------------------------------------------------
# parity: save -> import -> same embeddings and similarity maps


@pytest.mark.parametrize("arch", ["ezvsl", "fnac", "marginnce"])
def test_ezvsl_family_matches_reference(arch, ezvsl_model, ezvsl_file, tmp_path):
    image, audio = inputs()
    want = reference(ezvsl_model, image, audio)
    net, report = import_checkpoint(ezvsl_file, arch, tmp_path / "model.keras")
    assert want[0].shape == (2, 2, 2, DIM)  # 64 px -> 2x2 maps (7x7 at 224)
    assert_parity(net, want, image, audio)
    # every tensor of the state_dict was used, none merely ignored
    state = load_state_dict(ezvsl_file)
    tensors = {k for k in state if not k.endswith("num_batches_tracked")}
    assert set(report.used) == tensors and report.ignored == []
    assert report.config["embed_dim"] == DIM
    assert report.config["visual"]["width"] == V_WIDTH
    assert report.config["audio"]["width"] == A_WIDTH
    # the saved file loads and gives the same outputs; published inputs, not calibrated
    loaded = load_network(tmp_path / "model.keras")
    assert (
        loaded.inputs == {**PUBLISHED_INPUTS, "published_as": arch} and loaded.calibration is None
    )
    assert loaded.arch == "ezvsl"  # the architecture its weights fill, beside the published name
    assert_parity(loaded, want, image, audio)


@pytest.mark.parametrize("head, momentum", [(1, False), (2, True)])
def test_slavc_branch_matches_reference(head, momentum, tmp_path):
    model = randomise(SLAVC(), seed=2)
    path = save_published(model, tmp_path / "slavc.pth")
    image, audio = inputs(seed=2)
    want = reference(model, image, audio, "branch", head, momentum)
    net, report = import_checkpoint(path, "slavc", head=head, momentum=momentum)
    assert_parity(net, want, image, audio)
    other = 3 - head
    pre = "momentum_" if momentum else ""
    unused = "" if momentum else "momentum_"
    assert f"{pre}img_proj{other}.weight" in report.ignored
    assert f"{unused}imgnet.conv1.weight" in report.ignored
    assert not set(report.used) & set(report.ignored)
    assert report.notes  # says that SLAVC's own map averages both heads
    # the other choice gives different maps (the branches really are distinct)
    other_net, _ = import_checkpoint(path, "slavc", head=other, momentum=not momentum)
    assert np.abs(keras_outputs(other_net, image, audio)[2] - want[2]).max() > 1e-2


@pytest.mark.parametrize("momentum", [False, True])
def test_slavc_exact_map_is_the_mean_of_both_heads(momentum, tmp_path):
    """SLAVC's test map, ``(S1 + S2) / 2`` from its two projection pairs, written out here."""
    model = randomise(SLAVC(), seed=7)
    path = save_published(model, tmp_path / "slavc.pth")
    image, audio = inputs(seed=7)
    heads = [reference(model, image, audio, "branch", h, momentum) for h in (1, 2)]
    want_maps = (heads[0][2] + heads[1][2]) / 2
    net, report = import_checkpoint(path, "slavc", tmp_path / "slavc.keras", momentum=momentum)
    assert net.heads == 2 and not report.notes
    pre, unused = ("momentum_", "") if momentum else ("", "momentum_")
    assert {f"{pre}img_proj2.weight", f"{pre}aud_proj1.bias"} <= set(report.used)
    assert f"{unused}img_proj1.weight" in report.ignored
    for candidate in (net, load_network(tmp_path / "slavc.keras")):
        v, a, maps = keras_outputs(candidate, image, audio)
        assert np.abs(maps - want_maps).max() < 1e-4
        np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, atol=1e-5)  # unit vectors
        np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1.0, atol=1e-5)
    assert np.ptp(want_maps) > 0.1
    assert load_network(tmp_path / "slavc.keras").arch == "ezvsl"  # two heads, recorded too
    # detected from the keys, and the same network
    auto, _ = import_checkpoint(path, None)
    assert auto.heads == 2


def test_lvs_matches_reference(tmp_path):
    model = randomise(LVS(width=4), seed=3)
    path = save_published(model, tmp_path / "lvs.pth.tar", key="model_state_dict")
    image, audio = inputs(seed=3)
    want = reference(model, image, audio)
    assert want[0].shape == (2, 4, 4, 32)  # last stage at stride 1: 14x14 at 224
    net, report = import_checkpoint(path, "lvs", tmp_path / "lvs.keras")
    assert not net.projection and net.embed_dim == 32
    assert_parity(net, want, image, audio)
    assert "audnet.conv1_a.weight" in report.used
    assert {
        "imgnet.conv1_a.weight",
        "imgnet.conv1_flow.weight",
        "imgnet.fc.weight",
        "audnet.conv1.weight",
        "audnet.fc.bias",
    } <= set(report.ignored)
    assert_parity(load_network(tmp_path / "lvs.keras"), want, image, audio)


def save_ssltie_like(arch: str, model, path):
    """As the authors publish it: SSL-TIE's ``model_state_dict`` with DDP prefixes (the test
    fixture's usual wrapper), SSL-SaN's ``{'state_dict', 'epoch'}`` without ``module.``."""
    if arch == "ssltie":
        return save_published(model, path, key="model_state_dict")
    torch.save({"state_dict": model.state_dict(), "epoch": 20}, path)
    return path


# SSL-SaN's network is SSL-TIE's AVENet; its checkpoint may hold learnable tri-map thresholds
SSLTIE_CASES = [("ssltie", False), ("sslsan", True), ("sslsan", False)]


@pytest.mark.parametrize(
    "arch, thresholds", SSLTIE_CASES, ids=["ssltie", "sslsan", "sslsan-no-epsilon"]
)
def test_ssltie_and_sslsan_match_reference_and_record_their_front_end(arch, thresholds, tmp_path):
    model = randomise(SSLTIE(width=4, learnable_thresholds=thresholds), seed=5)
    path = save_ssltie_like(arch, model, tmp_path / f"{arch}.pth.tar")
    image, audio = inputs(seed=5)
    want = reference(model, image, audio)
    net, report = import_checkpoint(path, arch, tmp_path / f"{arch}.keras")
    assert report.arch == arch
    assert_parity(net, want, image, audio)
    assert {"vision_fc1.weight", "conv3.bias", "norm3.running_var"} <= set(report.ignored)
    assert ({"epsilon", "epsilon2"} <= set(report.ignored)) == thresholds
    assert "audnet.conv1_a.weight" in report.used
    assert report.notes[0].startswith(
        "SSL-SaN: SSL-TIE's network" if arch == "sslsan" else "SSL-TIE"
    )
    loaded = load_network(tmp_path / f"{arch}.keras")
    assert loaded.inputs["audio_frontend"] == "mel_db" and loaded.inputs["clip_seconds"] == 10.0
    assert loaded.inputs["published_as"] == arch and loaded.arch == "lvs"
    assert_parity(loaded, want, image, audio)
    # the keys are SSL-TIE's: without --arch an SSL-SaN file is taken for SSL-TIE's, and one
    # with learnable thresholds is refused with the hint to pass --arch sslsan
    if not thresholds:
        assert import_checkpoint(path, None)[1].arch == "ssltie"
    else:
        with pytest.raises(DataError, match="unexpected key epsilon.*pass --arch sslsan"):
            import_checkpoint(path, None)


@pytest.mark.parametrize("arch", ["ssltie", "sslsan"])
def test_ssltie_and_sslsan_missing_or_misshapen_trunk_key_is_named(arch, tmp_path):
    state = dict(randomise(SSLTIE(width=4, learnable_thresholds=arch == "sslsan"), 5).state_dict())
    missing = dict(state)
    del missing["imgnet.layer2.0.conv1.weight"]
    message = import_error(missing, tmp_path, arch=arch)
    assert "missing key imgnet.layer2.0.conv1.weight" in message
    misshapen = dict(state, **{"imgnet.layer2.0.conv1.weight": torch.zeros(8, 4, 3, 1)})
    message = import_error(misshapen, tmp_path, arch=arch)
    assert "wrong shape imgnet.layer2.0.conv1.weight (8, 4, 3, 1)" in message


def test_sslalign_matches_reference_and_records_its_front_end(tmp_path):
    from avloc.inputs.contract import InputContract

    model = randomise(SSLAlign(width=4), seed=7)
    path = tmp_path / "ours_sup.pth.tar"  # SSL-Align's: model_state_dict without module.
    torch.save({"model_state_dict": model.state_dict(), "epoch": 20}, path)
    image, audio = inputs(seed=7)
    want = reference(model, image, audio)
    net, report = import_checkpoint(path, None, tmp_path / "sslalign.keras")
    assert report.arch == "sslalign"
    assert_parity(net, want, image, audio)
    assert {"projection_v.weight", "projection_a.bias"} <= set(report.ignored)
    assert "audnet.conv1_a.weight" in report.used
    loaded = load_network(tmp_path / "sslalign.keras")
    assert loaded.inputs["stft_hop"] == 159 and loaded.inputs["clip_seconds"] == 3.0
    assert loaded.inputs["published_as"] == "sslalign" and loaded.arch == "lvs"
    contract = InputContract(loaded.inputs)
    noise = np.random.default_rng(0).normal(0, 0.1, 80000).astype(np.float32)
    spec = contract.spectrogram(noise)
    assert spec.shape == (257, 299)  # 3 s every 159 samples
    want_spec = scipy_log_spectrogram(contract.clip_samples, noise, noverlap=353)
    np.testing.assert_allclose(spec, want_spec, atol=1e-4)
    assert_parity(loaded, want, image, audio)
    # a trunk key is still required, and named when missing
    state = dict(model.state_dict())
    del state["imgnet.layer1.0.conv1.weight"]
    message = import_error(state, tmp_path, arch="sslalign")
    assert "imgnet.layer1.0.conv1.weight" in message


def test_rcgrad_maps_are_its_gradcam_maps(tmp_path):
    from avloc.inputs.contract import InputContract

    model = randomise(RCGradModel(width=4), seed=9)
    path = tmp_path / "rc_grad.pt"
    torch.save(model.state_dict(), path)  # RCGrad's release: a flat state_dict
    image, audio = inputs(seed=9)
    want = gradcam_reference(model, image, audio)
    net, report = import_checkpoint(path, None, tmp_path / "rcgrad.keras")
    assert report.arch == "rcgrad"
    assert {"image_encoder.fc.weight", "image_encoder.conv1_a.weight",
            "audio_encoder.spectrogram.window"} <= set(report.ignored)  # fmt: skip
    for candidate in (net, load_network(tmp_path / "rcgrad.keras")):
        got = keras_outputs(candidate, image, audio)[2]
        assert got.shape == want.shape == (2, 2, 4, 4)
        scale = np.abs(want).max()
        assert scale > 0.01 and np.abs(got - want).max() < 1e-5 * max(scale, 1.0)
    loaded = load_network(tmp_path / "rcgrad.keras")
    assert loaded.inputs["image_norm"] == "clip" and loaded.arch == "lvs"
    contract = InputContract(loaded.inputs)
    pixel = np.full((8, 8, 3), 128, np.uint8)
    clip_stats = (np.array([0.48145466, 0.4578275, 0.40821073]),
                  np.array([0.26862954, 0.26130258, 0.27577711]))  # fmt: skip
    want_pixel = (128 / 255 - clip_stats[0]) / clip_stats[1]
    np.testing.assert_allclose(contract.images([pixel])[0, 0, 0], want_pixel, atol=1e-5)
    wave = np.random.default_rng(9).normal(0, 0.1, 160000).astype(np.float32)
    np.testing.assert_allclose(contract.spectrogram(wave), rcgrad_spectrogram(wave), atol=1e-4)


def scipy_log_spectrogram(samples, wave, noverlap):
    """avloc's centred clip of ``wave``, through scipy's spectrogram, ``log(S + 1e-7) / 12``."""
    import scipy.signal

    start = (len(wave) - samples) // 2
    clip = np.asarray(wave[start : start + samples], np.float64)
    spec = scipy.signal.spectrogram(clip, 16000, nperseg=512, noverlap=noverlap)[2]
    return np.log(spec + 1e-7) / 12


@pytest.mark.parametrize(
    ("model", "arch"),
    [
        (lambda: EZVSL(), "ezvsl"),
        (lambda: SLAVC(), "slavc"),
        (lambda: LVS(width=4), "lvs"),
        (lambda: SSLTIE(width=4), "ssltie"),  # SSL-SaN's too: pass --arch sslsan
        (lambda: SSLAlign(width=4), "sslalign"),
        (lambda: RCGradModel(width=4), "rcgrad"),
    ],
)
def test_arch_is_detected_from_the_keys(model, arch, tmp_path):
    path = save_published(randomise(model(), seed=6), tmp_path / "any.pth")
    _, report = import_checkpoint(path, None)
    assert report.arch == arch


def test_undetectable_layout_is_a_one_line_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(DataError, match="cannot tell the architecture from its keys; pass --arch"):
        import_checkpoint(path, None)


# ------------------------------------------------------------------------------------------
# an imported network in ``avloc localize``


def test_imported_network_localizes_as_the_published_model(ezvsl_model, ezvsl_file, tmp_path):
    """``avloc localize`` with an imported network draws the published model's own map: the
    torch reference's cosine map on the same inputs, upsampled with aligned corners."""
    from avloc.inputs.contract import InputContract
    from avloc.jobs.localize import localize_pair

    import_checkpoint(ezvsl_file, "ezvsl", tmp_path / "m.keras")
    net = load_network(tmp_path / "m.keras")
    rng = np.random.default_rng(6)
    image = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    wave = (0.1 * rng.standard_normal(16000 * 3)).astype("float32")
    loc = localize_pair(net, image, wave, uth=0.0)

    contract = InputContract(net.inputs)  # 224 px, ImageNet statistics, the log spectrogram
    x_image = contract.images([image]).transpose(0, 3, 1, 2)
    x_audio = contract.spectrogram(wave)[None, None]
    small = reference(ezvsl_model, x_image, x_audio)[2][:, 0]  # (1, h, w) in float64
    want = F.interpolate(torch.from_numpy(small)[:, None], size=(48, 80), mode="bilinear",
                         align_corners=True)[0, 0].numpy()  # fmt: skip
    assert np.ptp(want) > 0.05  # a map with structure, not a constant
    np.testing.assert_allclose(loc.heatmap, want, atol=1e-4)
    assert loc.max_score == pytest.approx(want.max(), abs=1e-4)
