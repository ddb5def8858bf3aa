"""Row 1: training patches per second, our TorchIO-queue DataModule vs the original MONAI loader.

The baseline is configured like the original Swin UNETR / BrainSegFounder BraTS fine-tuning loader:
a MONAI ``Dataset`` whose transforms load the whole case (four modalities and the label), convert
the label to TC/WT/ET channels, crop the foreground, cut one random patch, flip it on each axis
(p = 0.5), z-score it over non-zero voxels per channel and scale and shift its intensity (+-0.1).
Each loaded case gives one patch. Ours is :class:`SegmentationDataModule`'s training loader: a
``tio.Queue`` whose workers load, normalise and augment each case once and then cut
``samples_per_volume`` label-balanced patches from it.

Both read the same synthetic NIfTI files, cut patches of the same size, batch them alike and use
the same number of loader processes; each repeat times one pass that yields the same number of
patches (the baseline lists every case ``samples_per_volume`` times). The note of the row states
the settings; ``extra`` holds ours at one patch per volume, the like-for-like figure.

Example:
    >>> from benchmarks.data_pipeline import run  # doctest: +SKIP
    >>> [row.ratio for row in run()]  # doctest: +SKIP
"""

from __future__ import annotations

import time

from benchmarks.common import Result, synthetic_brats, time_interleaved

__all__ = ["run", "monai_brats_loader", "ours_loader", "count_patches"]


def monai_brats_loader(cases, patch_size: int, batch_size: int, num_workers: int, repeats_per_case: int):
    """The original BraTS fine-tuning loader, rebuilt from MONAI parts (one patch per loaded case)."""
    from monai import transforms as mt
    from monai.data import DataLoader, Dataset

    roi = [patch_size] * 3
    # Modality order of the original fold file (flair, t1ce, t1, t2); it does not change the cost.
    files = [{"image": [str(c.images[m]) for m in ("flair", "t1ce", "t1", "t2")], "label": str(c.label)}
             for c in cases] * repeats_per_case
    transform = mt.Compose([
        mt.LoadImaged(keys=["image", "label"]),
        mt.ConvertToMultiChannelBasedOnBratsClassesd(keys="label"),
        mt.CropForegroundd(keys=["image", "label"], source_key="image", k_divisible=roi),
        mt.RandSpatialCropd(keys=["image", "label"], roi_size=roi, random_size=False),
        mt.RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
        mt.RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=1),
        mt.RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=2),
        mt.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
        mt.RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
        mt.RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
    ])
    return DataLoader(Dataset(files, transform=transform), batch_size=batch_size, shuffle=True,
                      num_workers=num_workers)


def ours_loader(root, patch_size: int, batch_size: int, num_workers: int, samples_per_volume: int):
    """Our training loader, as ``python -m brainsegfounder.fit`` builds it (all subjects but fold 0)."""
    from brainsegfounder.data.datamodule import SegmentationDataModule

    dm = SegmentationDataModule(root=str(root), layout="brats2021", patch_size=patch_size,
                                batch_size=batch_size, samples_per_volume=samples_per_volume,
                                queue_length=max(16, 4 * samples_per_volume), num_workers=num_workers,
                                validate="header")
    dm.setup("fit")
    return dm


def count_patches(loader) -> int:
    """Iterate one pass of ``loader``; the number of patches it yielded."""
    n = 0
    for batch in loader:
        n += len(batch["label"])
    return n


def run(full: bool = False, subjects: int | None = None, spacing: float | None = None,
        patch_size: int | None = None, samples_per_volume: int = 4, num_workers: int = 2,
        batch_size: int = 2, repeats: int | None = None) -> list[Result]:
    """Measure row 1. Defaults: 8 subjects at 2 mm, 64^3 patches (``full``: 1 mm, 96^3, 10 subjects)."""
    subjects = subjects or (10 if full else 8)
    spacing = spacing or (1.0 if full else 2.0)
    patch_size = patch_size or (96 if full else 64)
    repeats = repeats or (5 if full else 3)
    # Ten cases give 8 training cases in a 5-fold split; scale so that ``subjects`` train.
    root = synthetic_brats(int(round(subjects * 5 / 4)), spacing)
    dm = ours_loader(root, patch_size, batch_size, num_workers, samples_per_volume)
    dm_one = ours_loader(root, patch_size, batch_size, num_workers, 1)
    baseline = monai_brats_loader(dm.train_cases, patch_size, batch_size, num_workers, samples_per_volume)
    patches = len(dm.train_cases) * samples_per_volume

    counts: dict[str, int] = {}

    def timed(name, make_loader):
        def fn():
            counts[name] = count_patches(make_loader())
        return fn

    start = time.perf_counter()
    ours_s, one_s, base_s = time_interleaved(
        [timed("ours", dm.train_dataloader), timed("ours1", dm_one.train_dataloader),
         timed("baseline", lambda: baseline)], repeats=repeats, warmup=1)
    elapsed = time.perf_counter() - start
    if counts["ours"] != patches or counts["baseline"] != patches:
        raise RuntimeError(f"expected {patches} patches per pass, got {counts}")
    ours_rate = [patches / s for s in ours_s]
    base_rate = [patches / s for s in base_s]
    one_rate = [counts["ours1"] / s for s in one_s]
    one_rate.sort()
    note = (f"{len(dm.train_cases)} synthetic BraTS cases at {spacing:g} mm, {patch_size}^3 patches, batch "
            f"{batch_size}, {num_workers} loader workers each; ours: tio.Queue, samples_per_volume="
            f"{samples_per_volume}, label-balanced sampler, whole-volume flips + intensity; baseline: "
            f"MONAI Dataset, 1 patch per loaded case, uniform crop, patch-level flips + intensity. "
            f"Ours at samples_per_volume=1: {one_rate[len(one_rate) // 2]:.3g} patches/s.")
    return [Result(name="1. training data pipeline", ours="TorchIO queue (SegmentationDataModule)",
                   baseline="MONAI Dataset + BraTS transforms", unit="patches/s",
                   ours_samples=ours_rate, baseline_samples=base_rate, target_op=">=", target=2.0,
                   note=note, extra={"ours_spv1_patches_per_s": one_rate, "patches_per_pass": patches,
                                     "samples_per_volume": samples_per_volume, "patch_size": patch_size,
                                     "spacing_mm": spacing, "num_workers": num_workers,
                                     "batch_size": batch_size, "seconds": round(elapsed, 1)})]


if __name__ == "__main__":
    for row in run():
        print(row.to_dict())
