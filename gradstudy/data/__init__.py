"""Data generated on this machine (never downloaded): MNIST-1D, teacher–student regression,
input transforms, and the sequence tasks of the recurrent studies (adding problem, copy
memory, sequence MNIST-1D).
"""

from gradstudy.data._datasets import (
    MNIST1D_VERSION as MNIST1D_VERSION,
)
from gradstudy.data._datasets import (
    Dataset as Dataset,
)
from gradstudy.data._datasets import (
    mnist1d as mnist1d,
)
from gradstudy.data._datasets import (
    standardize as standardize,
)
from gradstudy.data._datasets import (
    teacher_student as teacher_student,
)
from gradstudy.data._datasets import (
    transform_inputs as transform_inputs,
)
from gradstudy.data._tasks import (
    ADDING_BASELINE_MSE as ADDING_BASELINE_MSE,
)
from gradstudy.data._tasks import (
    COPY_BLANK as COPY_BLANK,
)
from gradstudy.data._tasks import (
    COPY_FIRST_SYMBOL as COPY_FIRST_SYMBOL,
)
from gradstudy.data._tasks import (
    MAX_LENGTH as MAX_LENGTH,
)
from gradstudy.data._tasks import (
    MAX_SAMPLES as MAX_SAMPLES,
)
from gradstudy.data._tasks import (
    MAX_TASK_BYTES as MAX_TASK_BYTES,
)
from gradstudy.data._tasks import (
    adding_baseline_loss as adding_baseline_loss,
)
from gradstudy.data._tasks import (
    adding_problem as adding_problem,
)
from gradstudy.data._tasks import (
    copy_baseline as copy_baseline,
)
from gradstudy.data._tasks import (
    copy_memory as copy_memory,
)
from gradstudy.data._tasks import (
    sequence_mnist1d as sequence_mnist1d,
)

__all__ = [
    "adding_baseline_loss",
    "ADDING_BASELINE_MSE",
    "adding_problem",
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
