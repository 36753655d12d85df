resource "google_bigquery_dataset" "prod" {
  dataset_id = "acme_prod"
  location   = "EU"
}
