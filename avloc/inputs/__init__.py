"""Inputs: every transform from stored media to the model's inputs, train and test, in one place.

Each transform has a numpy version and, where the training step runs it on the device, a
keras.ops twin beside it (``*_ops``), with one parity test per pair:

- :mod:`~avloc.inputs.images`: resize, crop, flip, normalise (numpy; ``augment_images_ops``);
- :mod:`~avloc.inputs.spectrogram`: avloc's log power spectrogram (numpy; ``spectrogram_ops``);
- :mod:`~avloc.inputs.mel`, :mod:`~avloc.inputs.stft`: SSL-TIE's mel-dB and RCGrad's
  standardised log STFT front ends (numpy);
- :mod:`~avloc.inputs.frontends`: the audio front ends by name (``inputs["audio_frontend"]``);
- :mod:`~avloc.inputs.noise`: silence and noise clips (numpy; ``seeded_noise_ops``);
- :mod:`~avloc.inputs.pcm`: 16-bit PCM <-> float (numpy; ``pcm_to_float_ops``);
- :mod:`~avloc.inputs.geometry`: SSL-TIE's rotation/scale/flip T for its equivariance loss
  (draws and matrices in numpy; ``transform_maps_ops``);
- :mod:`~avloc.inputs.moco`, :mod:`~avloc.inputs.specaugment`: SSL-TIE's training
  augmentations, moco_v2 on images and SpecAugment on mel-dB spectrograms (draws in numpy from
  the caller's generator, then a deterministic apply; numpy and Pillow only);
- :mod:`~avloc.inputs.training`: a training batch's preprocessing, in the loader
  (``LoaderPreprocessing``) or inside the step (``DevicePreprocessing``), chosen explicitly;
- :mod:`~avloc.inputs.contract`: the test-time input contract of a trained network
  (``InputContract``: images and waveforms -> model inputs for every stage after training).

Decoding files (images, audio, video frames) is :mod:`avloc.media`'s. Importing this package or
any module of it imports no framework: the twins import ``keras.ops`` when called.
"""
