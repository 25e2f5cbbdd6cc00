"""The downstream segmenter: what synthetic data is worth, and the tool users keep.

recipe           typed configuration (the ``segmenter`` config group), CPU/GPU profiles
representations  instance targets (line, contour, bordercore) and their decoders
data             annotated folders -> samples in the recipe's intensity convention; crops
module           the smp network as a LightningModule (loss, poly schedule, inference)
train            step-budgeted training
checkpoint       safe loading of segmenter.ckpt
"""
