// Command shop is a test guest written in Go with the wedge SDK: a stock
// decrement on the key-value store and an outbound call, behind net/http.
//
//	/<route>/buy?sku=<sku>   take one unit: 200 "sold, <n> left" or 409 "sold out"
//	/<route>/fetch?url=<url> call url: 200 "<status> <body bytes>" or "error <what>"
//	/<route>/events?n=<n>    n server-sent events 200 ms apart ("data: <i> <unix ms>"), each flushed
package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	wedge "example.invalid/wedge/guest-sdk/go"
)

func main() {
	wedge.Serve(http.HandlerFunc(handle))
}

func handle(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/buy"):
		buy(w, r)
	case strings.HasSuffix(r.URL.Path, "/fetch"):
		fetch(w, r)
	case strings.HasSuffix(r.URL.Path, "/events"):
		events(w, r)
	default:
		http.NotFound(w, r)
	}
}

func buy(w http.ResponseWriter, r *http.Request) {
	store, err := wedge.OpenStore("inventory")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	left, err := store.Add(r.URL.Query().Get("sku"), -1, 0, math.MaxInt64)
	switch {
	case errors.Is(err, wedge.ErrOutOfRange):
		http.Error(w, "sold out", http.StatusConflict)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		fmt.Fprintf(w, "sold, %d left\n", left)
	}
}

func fetch(w http.ResponseWriter, r *http.Request) {
	client := &http.Client{Transport: wedge.Transport}
	resp, err := client.Get(r.URL.Query().Get("url"))
	if err != nil {
		fmt.Fprintf(w, "error %v\n", err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintf(w, "error %v\n", err)
		return
	}
	fmt.Fprintf(w, "%d %d\n", resp.StatusCode, len(body))
}

// events streams n events 200 ms apart through http.Flusher.
func events(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	w.Header().Set("Content-Type", "text/event-stream")
	flusher := w.(http.Flusher)
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		fmt.Fprintf(w, "data: %d %d\n\n", i, time.Now().UnixMilli())
		flusher.Flush()
	}
}
