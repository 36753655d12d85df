resource "aws_s3_bucket" "product_images" {
  bucket = "acme-prod-product-images"
}
