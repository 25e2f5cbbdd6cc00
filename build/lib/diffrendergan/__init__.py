"""DiffRenderGAN: a differentiable PyTorch3D microscopy renderer inside a GAN.

Turns unannotated SEM/HIM/TEM micrographs of nanoparticles into pixel-annotated synthetic
training data (Possart et al., npj Comput. Mater. 2025, arXiv:2502.09477).

Package map (one module per concept):
    config        typed, validated material / renderer configuration (the library's boundary)
    schemas       typed checks of every entry point's keys, before any work starts
    geometry      particle shape families -> fixed-topology meshes
    scene         size and count laws, placement, layouts, layout samplers (the fixed law; the
                  learnable one is models.topography)
    rendering     face-major rasterization (PyTorch3D: the reference) -> G-buffers (incl. detector
                  direction), masks
    shading       SEM / HIM / STEM-HAADF / principled shaders (differentiable in their parameters)
    noise         detector chain: probe blur, gain/offset, shot + read noise
    params        ParamSpace: named [low, high] ranges <-> unit vectors, physical domains
    models        parameter network, generator (with weight EMA), discriminator, losses, topography
    training      the GAN LightningModule, its parts built from the model config (instantiate),
                  callbacks, checkpoint loading (older flat-key checkpoints upgraded)
    data          micrograph readers, pixel size from metadata, data-bar detection, patching, demo,
                  training scenes (layouts and G-buffers drawn in DataLoader workers)
    metrics       realism (SWD, histogram), particle appearance, segmentation metrics
    segmentation  the segmenter: recipe, instance representations, data, training, checkpoints
    evaluation    comparison protocol (seeds, paired intervals), ceilings, tiling, classical baseline
    export        atomic, resumable, fingerprinted dataset writer
    analysis      particle sizes and shapes in nm of new micrographs (experiments.analyze)
    tasks         the entry points' work: train, segment, compare, realism, preview; builders of
                  the callbacks, loggers and Trainer from their config groups
"""

__version__ = "0.1.0"
