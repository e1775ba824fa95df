"""Media in and out, in numpy (no Keras): decoding, clipping and model inputs.

Modules: :mod:`.audio` (decoding, the 3 s clip, the log-spectrogram), :mod:`.mel` and
:mod:`.stft` (SSL-TIE's and RCGrad's audio front ends), :mod:`.image` (image loading, frame
extraction, preprocessing), :mod:`.video` (PyAV probe, frames, MP4 writer), :mod:`.formats`
(media kinds by extension), :mod:`.items` (image + audio pairs or videos from arguments, folders
or manifests) and :mod:`.overlay` (heatmaps over their images).
"""
