"""The maps stage: network + media -> raw similarity maps, and Uth calibration on them.

- :mod:`~avloc.inputs.contract`: the network's input contract (images, audio -> model inputs);
- :mod:`~avloc.maps.conditions`: the audio conditions and their seeding rule;
- :mod:`~avloc.maps.engine`: :class:`~avloc.maps.engine.MapsEngine`, visual features once per
  image, one map per condition, through Keras or the plain-torch copy;
- :mod:`~avloc.maps.torch_engine`: the Keras-free plain-torch copy and its cache;
- :mod:`~avloc.maps.records`: per-sample maps and embeddings of a test set;
- :mod:`~avloc.maps.calibration`: the universal threshold Uth from negative-audio maps.
"""
