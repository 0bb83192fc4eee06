package openapi

import (
	_ "embed"
	"net/http"
)

// Spec is the OpenAPI 3 document of /openapi/v1, served at /openapi.json.
//
//go:embed openapi.json
var Spec []byte

func serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(Spec)
}
