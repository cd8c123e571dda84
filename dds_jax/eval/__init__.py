"""Evaluation: ``metrics`` (FID as pytorch-fid, SSIM, PSNR), ``evaluate`` (Table 1, Fig. 7), ``sweep``
(Fig. 8) and ``benchmark`` (dual-domain results against the renderer's ground truth)."""
