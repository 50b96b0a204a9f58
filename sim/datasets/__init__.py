"""IDX image datasets (Fashion-MNIST, MNIST): reading, validation and discovery."""

from sim.datasets.idx import (
    DATASETS,
    ENV_VAR,
    IMAGE_SHAPE,
    N_CLASSES,
    SPLITS,
    DataNotFoundError,
    DatasetError,
    candidate_dirs,
    file_names,
    find_dataset_dir,
    load_dataset,
    read_idx,
)

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "IMAGE_SHAPE",
    "N_CLASSES",
    "SPLITS",
    "DataNotFoundError",
    "DatasetError",
    "candidate_dirs",
    "file_names",
    "find_dataset_dir",
    "load_dataset",
    "read_idx",
]
