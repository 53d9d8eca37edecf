"""avatarlab.metrics: scores for generated talking-face videos, and the evaluation.

- :mod:`~avatarlab.metrics.base`: the :class:`~avatarlab.metrics.base.Metric` base
  class, its declarations, the context and the ``METRICS`` registry;
- one module per metric family: ``quality`` (MAE, MSE, PSNR, SSIM), ``cpbd``, ``niqe``,
  ``fid`` (FID, IS), ``identity`` (CSIM), ``lipsync`` (LMD, MA), ``syncnet`` (LSE),
  ``motion`` (head diversity, beat alignment), ``reenactment`` (AKD, APD, AED),
  ``perceptual`` (LPIPS);
- the evaluation, one job per module: ``pairing`` (pairs by file stem), ``planning``
  (which metrics run, skips), ``alignment`` (the reference's timeline and grid),
  ``crops`` (SyncNet-geometry face crops), ``scoring`` (one clip, many clips),
  ``summary``, ``results`` (result types), ``report`` (tables, JSON, HTML) and
  ``evaluate`` (the entry point).
"""

from avatarlab.weights import add_provider

# Importing these registers the checkpoints the metrics use (no torch at import).
for _module in ("syncnet", "fid", "identity", "perceptual"):
    add_provider(f"avatarlab.metrics.{_module}")
