package main

import (
	"log"
	"net/http"

	"github.com/acme-shop/monorepo/services/product-catalog/internal/products"
)

func main() {
	http.HandleFunc("/products/", products.Handler)
	log.Fatal(http.ListenAndServe(":8080", nil))
}
