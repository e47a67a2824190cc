"""Data generated on this machine (never downloaded): MNIST-1D, teacher–student regression,
input transforms, and the sequence tasks of the recurrent studies (adding problem, copy
memory, sequence MNIST-1D).
"""

from gradstudy.data._datasets import (
    MNIST1D_VERSION as MNIST1D_VERSION,
    Dataset as Dataset,
    check_dataset as check_dataset,
    mnist1d as mnist1d,
    standardize as standardize,
    teacher_student as teacher_student,
    transform_inputs as transform_inputs,
)
from gradstudy.data._tasks import (
    ADDING_BASELINE_MSE as ADDING_BASELINE_MSE,
    COPY_BLANK as COPY_BLANK,
    COPY_FIRST_SYMBOL as COPY_FIRST_SYMBOL,
    MAX_LENGTH as MAX_LENGTH,
    MAX_SAMPLES as MAX_SAMPLES,
    MAX_TASK_BYTES as MAX_TASK_BYTES,
    adding_baseline_loss as adding_baseline_loss,
    adding_problem as adding_problem,
    copy_baseline as copy_baseline,
    copy_memory as copy_memory,
    sequence_mnist1d as sequence_mnist1d,
)

__all__ = [
    "adding_baseline_loss",
    "ADDING_BASELINE_MSE",
    "adding_problem",
    "check_dataset",
    "copy_baseline",
    "COPY_BLANK",
    "COPY_FIRST_SYMBOL",
    "copy_memory",
    "Dataset",
    "MAX_LENGTH",
    "MAX_SAMPLES",
    "MAX_TASK_BYTES",
    "mnist1d",
    "MNIST1D_VERSION",
    "sequence_mnist1d",
    "standardize",
    "teacher_student",
    "transform_inputs",
]
