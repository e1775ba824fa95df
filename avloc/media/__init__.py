"""Media in and out, in numpy (no Keras): decoding files and writing pictures and videos.

Modules: :mod:`.audio` (decoding, resampling, the centred clip), :mod:`.image` (image loading,
video-frame extraction), :mod:`.video` (PyAV probe, frames, MP4 writer), :mod:`.formats` (media
kinds by extension), :mod:`.items` (image + audio pairs or videos from arguments, folders or
manifests) and :mod:`.overlay` (heatmaps over their images). What decoded media become as model
inputs is :mod:`avloc.inputs`'.
"""
