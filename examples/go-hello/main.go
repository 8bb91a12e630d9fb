// Command go-hello greets the caller, written in Go with the wedge SDK. Try
// /go-hello and /go-hello?name=edge.
//
// It registers its handler in init, so it builds either way: as a reactor
// (go build -buildmode=c-shared), which wedge initializes once and
// snapshots, or as a command (plain go build), whose main serves one
// request per run.
package main

import (
	"fmt"
	"net/http"

	wedge "example.invalid/wedge/guest-sdk/go"
)

func init() {
	wedge.Handle(http.HandlerFunc(hello))
}

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if name := r.URL.Query().Get("name"); name != "" {
		fmt.Fprintf(w, "Hello, %s!\n", name)
		return
	}
	fmt.Fprint(w, "Hello from wedge!\n")
}

func main() {
	wedge.Run()
}
