// Command floor is the load benchmark's reference point: an HTTP server
// that does nothing but answer a page of hello's size. What hey measures
// against it on the same machine is the best any server could show there:
// the load generator's own cost and the machine's scheduling.
//
//	go run ./bench/floor -addr 127.0.0.1:18090
package main

import (
	"flag"
	"log"
	"net/http"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "address to listen on")
	flag.Parse()
	page := []byte(strings.Repeat("x", 324)) // the size of hello's page
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})))
}
