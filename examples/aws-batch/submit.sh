#!/bin/sh
# Register the job definition once, then submit one array job: 8 children, each given
# AWS_BATCH_JOB_ARRAY_INDEX (0..7) by Batch and AWS_BATCH_JOB_ARRAY_SIZE (8, the same number as
# arrayProperties.size) by submit-array.json. Each child runs `fieldcrypt reencrypt --segment auto`.
set -eu
cd "$(dirname "$0")"
aws batch register-job-definition --cli-input-json file://job-definition.json
aws batch submit-job --cli-input-json file://submit-array.json
