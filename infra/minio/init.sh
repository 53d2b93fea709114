#!/bin/sh
# One-shot, idempotent: the warehouse bucket and Tidemark's own MinIO user, allowed that bucket only.
# The root credentials stay with MinIO and this job; no Tidemark service ever holds them.
set -eu
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${TIDEMARK_BUCKET:?}" "${TIDEMARK_S3_ACCESS_KEY:?}" "${TIDEMARK_S3_SECRET_KEY:?}"
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" > /dev/null
mc mb --ignore-existing "local/$TIDEMARK_BUCKET"
policy=/tmp/tidemark-warehouse.json
cat > "$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::$TIDEMARK_BUCKET"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::$TIDEMARK_BUCKET/*"]}
  ]
}
JSON
mc admin user add local "$TIDEMARK_S3_ACCESS_KEY" "$TIDEMARK_S3_SECRET_KEY"
mc admin policy create local tidemark-warehouse "$policy"
# Attaching twice is an error in mc; what matters is that the user ends up with the policy.
mc admin policy attach local tidemark-warehouse --user "$TIDEMARK_S3_ACCESS_KEY" > /dev/null 2>&1 || true
mc admin user info local "$TIDEMARK_S3_ACCESS_KEY" | grep -q tidemark-warehouse
