resource "aws_s3_bucket" "invoices" {
  bucket              = "acme-prod-invoices"
  object_lock_enabled = true
}
