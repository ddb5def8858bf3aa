"""BrainSegFounder: a two-stage self-supervised 3D Swin UNETR for brain MRI segmentation.

The package is laid out like the pipeline:

- :mod:`brainsegfounder.data`: data set layouts -> validated ``tio.Subject`` lists, splits,
  transforms, LightningDataModules, and the synthetic brain generator.
- :mod:`brainsegfounder.models`: Swin UNETR presets, SSL heads, weight import and adaptation.
- :mod:`brainsegfounder.tasks`: LightningModules (SSL pretraining, disease-aware refinement,
  segmentation fine-tuning).
- :mod:`brainsegfounder.fit`, :mod:`brainsegfounder.predict`, :mod:`brainsegfounder.evaluate`:
  the command lines.
"""

__version__ = "0.1.0"
