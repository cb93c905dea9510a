"""``--segment auto``: which segment of a table this process owns, from the job scheduler that
started it, so a Kubernetes Indexed Job or an AWS Batch array job needs no wrapper script.

- Kubernetes Indexed Job: Kubernetes sets ``JOB_COMPLETION_INDEX`` in each pod; it sets no
  variable for the number of completions, so the manifest sets ``FIELDCRYPT_SEGMENT_COUNT`` to
  the Job's ``completions`` (examples/kubernetes/reencrypt-job.yaml).
- AWS Batch array job: Batch sets ``AWS_BATCH_JOB_ARRAY_INDEX`` in each child; the job
  definition or the submission sets ``AWS_BATCH_JOB_ARRAY_SIZE`` to the array size
  (examples/aws-batch/).

Both numbers are checked: a missing or malformed variable is a clear error, never segment 0/1
(which would make every job process the whole table).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fieldcrypt.errors import ConfigurationError

CONVENTIONS = (
    ("Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", "FIELDCRYPT_SEGMENT_COUNT"),
    ("AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"),
)


def segment_from_environment(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(index, count)`` of this process's segment, read from the scheduler's variables.

    Raises:
        ConfigurationError: neither convention's index is set, its count is missing, or either is
            not a number with ``0 <= index < count``.
    """
    env = os.environ if environ is None else environ
    for name, index_variable, count_variable in CONVENTIONS:
        if index_variable not in env:
            continue
        if count_variable not in env:
            raise ConfigurationError(
                f"--segment auto: {index_variable} is set ({name}) but {count_variable} is not; "
                f"set {count_variable} to the number of segments (docs/scale.md)"
            )
        try:
            index, count = int(env[index_variable]), int(env[count_variable])
        except ValueError:
            raise ConfigurationError(
                f"--segment auto: {index_variable} and {count_variable} must be whole numbers"
            ) from None
        if not 0 <= index < count:
            raise ConfigurationError(
                f"--segment auto: {index_variable}={index} is not below {count_variable}={count}"
            )
        return index, count
    raise ConfigurationError(
        "--segment auto needs a Kubernetes Indexed Job (JOB_COMPLETION_INDEX and "
        "FIELDCRYPT_SEGMENT_COUNT) or an AWS Batch array job (AWS_BATCH_JOB_ARRAY_INDEX and "
        "AWS_BATCH_JOB_ARRAY_SIZE); neither is set"
    )
