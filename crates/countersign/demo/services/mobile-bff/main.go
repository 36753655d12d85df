package main

import (
	"log"
	"net/http"
	"time"
)

// upstreamTimeout bounds every call to checkout, catalog and auth.
const upstreamTimeout = 2 * time.Second

var client = &http.Client{Timeout: upstreamTimeout}

func main() {
	http.HandleFunc("/v1/home", homeHandler)
	log.Fatal(http.ListenAndServe(":8080", nil))
}

func homeHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"sections":[]}`))
}
