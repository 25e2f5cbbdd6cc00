"""Print the ceiling of every instance representation on annotated folders (markdown table).

python -m experiments.ceilings labeled_dir=<images/+masks/> [export_dir=<synthetic export>]
"""

from __future__ import annotations

from dataclasses import replace

import hydra
from omegaconf import DictConfig

from diffrendergan.errors import ConfigError
from diffrendergan.evaluation.ceilings import DEFAULT_CASES, ceilings_table
from diffrendergan.segmentation.data import load_samples
from experiments._common import check_command_line, one_line_errors, optional_folder


@hydra.main(version_base="1.3", config_path="../configs", config_name="ceilings")
@one_line_errors
def main(cfg: DictConfig) -> str:
    folders = {"real": optional_folder("labeled_dir", cfg.labeled_dir),
               "synthetic": optional_folder("export_dir", cfg.export_dir)}  # fmt: skip
    sets = {name: load_samples(f, "percentile", cfg.crop_bottom_px)[: int(cfg.max_images)]
            for name, f in folders.items() if f}  # fmt: skip
    if not sets:
        raise ConfigError("labeled_dir", "give labeled_dir=<images/+masks/> and/or export_dir=<export>")
    cases = [replace(rep, min_size_px=int(cfg.min_size_px)) for rep in DEFAULT_CASES]
    table = ceilings_table(sets, cases)
    print(table, end="")
    return table


if __name__ == "__main__":
    check_command_line("ceilings")
    main()
