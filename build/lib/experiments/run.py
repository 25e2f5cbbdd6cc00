"""Main job: train DiffRenderGAN on real (or demo) patches, export, evaluate.

python -m experiments.run +material=tio2                       # embedded demo data
python -m experiments.run +material=tio2 data.real_dir=/path/to/tiffs data.pixel_size_nm=7.34
python -m experiments.run +material=sio2 experiment=paper trainer=ddp trainer.devices=4
python -m experiments.run --help                               # config groups and options
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from experiments._common import check_command_line, one_line_errors, output_dir, require_material


@hydra.main(version_base="1.3", config_path="../configs", config_name="run")
@one_line_errors
def main(cfg: DictConfig) -> float | None:
    """Returns the best realism value (SWD), so Hydra sweepers (e.g. Optuna) can minimise it."""
    from diffrendergan.schemas import check_run
    from diffrendergan.segmentation.recipe import segmenter_from_dict
    from diffrendergan.utils.checkpoints import resume_checkpoint

    material = require_material(cfg)
    segmenter_from_dict(cfg.segmenter)  # a bad recipe key fails now, not after the GAN run
    check_run(cfg)  # types, ranges and folders, before Lightning is even imported
    out = output_dir()
    resume_checkpoint(out, bool(cfg.resume))
    from diffrendergan.tasks.train import train_gan

    summary = train_gan(cfg, material, out)
    if summary:
        r = summary["realism"]
        print("\n=== DiffRenderGAN run finished ===")
        print(
            f"material        {summary['material']}  ({summary['steps']} steps, {summary['wall_time_s']} s)"
        )
        print(f"realism (SWD)   start {r['start']:.1f} -> end {r['end']:.1f}  (best {r['best']})")
        if "evaluation" in summary:
            e = summary["evaluation"]
            print(
                f"segmentation    DSC {e['dsc']:.3f}  AP50 {e['ap50']:.3f}  "
                f"PQ {e['pq']:.3f}  mIoU {e['miou']:.3f}"
            )
        print(f"best generator  {summary['checkpoint']}")
        if "evaluation" in summary:
            seg = summary["evaluation"]["segmenter"]
            print(f"segmenter       {seg}")
            print(
                f"measure particles in new micrographs:\n  python -m experiments.analyze segmenter={seg} "
                "input_dir=<micrographs> out_dir=<report>"
            )
        print(f"outputs         {out}  (summary.json, grids/, histograms/, synthetic/, csv/)")
        print(json.dumps({"summary": str(out / "summary.json")}))
    return summary["realism"]["best"] if summary else None


if __name__ == "__main__":
    check_command_line("run")
    main()
