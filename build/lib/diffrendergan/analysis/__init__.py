"""Particle sizes and shapes in nm from unlabeled micrographs (``python -m experiments.analyze``).

The end product of the project: a trained segmenter turns new micrographs into instance maps, and
every particle is measured the way a microscopist would (area, equal-area diameter, Feret
diameters, shape), in nm. Modules, one concept each:

* :mod:`.inputs` — which files are analysed and at what pixel size, checked before inference;
* :mod:`.inference` — resampling to the segmenter's training scale, whole-image prediction,
  mapping the instances back onto the file's pixel grid;
* :mod:`.feret` — minimum Feret diameter (rotating calipers on the convex hull);
* :mod:`.measure` — the per-particle table of one instance map;
* :mod:`.tables` — columnar tables: concatenation, filtering, CSV/parquet output;
* :mod:`.lognormal` — lognormal fit of diameters with 95 % confidence intervals;
* :mod:`.labels` — the same measurements on manual masks, and the distances between both;
* :mod:`.figures` — histograms and per-image overlays;
* :mod:`.report` — ``summary.json`` and ``report.md``;
* :mod:`.pipeline` — the whole run over a folder.
"""
