"""DiffRenderGAN: a differentiable PyTorch3D microscopy renderer inside a GAN.

Turns unannotated SEM/HIM/TEM micrographs of nanoparticles into pixel-annotated synthetic
training data (Possart et al., npj Comput. Mater. 2025, arXiv:2502.09477).

Package map (one module per concept):
    config      typed, validated configuration dataclasses (the library's boundary)
    geometry    particle shape families -> fixed-topology meshes
    scene       size laws, placement, layouts
    rendering   windowed PyTorch3D rasterization -> G-buffers, masks
    shading     SEM / HIM / STEM-HAADF / principled shaders (differentiable in their parameters)
    noise       detector chain: probe blur, gain/offset, shot + read noise
    params      ParamSpace: named [low, high] ranges <-> unit vectors
    models      parameter network, generator, discriminator, GAN losses, segmenter
    training    Lightning modules, data modules, callbacks
    data        micrograph readers, data-bar detection, patching, demo set
    metrics     realism (SWD, histogram) and segmentation metrics
    evaluation  instance splitting, tiled inference, classical baseline
    export      atomic, resumable dataset writer
"""

__version__ = "0.1.0"
