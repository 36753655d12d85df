package products

import (
	"encoding/json"
	"net/http"
	"strings"
)

type Product struct {
	SKU        string `json:"sku"`
	Title      string `json:"title"`
	PriceMinor int64  `json:"price_minor"`
	Currency   string `json:"currency"`
}

func Handler(w http.ResponseWriter, r *http.Request) {
	sku := strings.TrimPrefix(r.URL.Path, "/products/")
	json.NewEncoder(w).Encode(Product{SKU: sku, Title: "Sample", PriceMinor: 1999, Currency: "EUR"})
}
