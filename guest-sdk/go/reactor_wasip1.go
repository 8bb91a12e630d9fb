//go:build wasip1

package wedge

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// warm holds what init allocated, so the allocator keeps the spans it took.
var warm [][]byte

// init runs once, while wedge initializes the module, and warms what the
// snapshot keeps, so that requests do not each pay for it afresh:
//   - it allocates a few objects of each small size class, so the
//     allocator's per-thread caches already hold a span of each, and a
//     request's first allocation of a size takes the fast path instead of
//     fetching a span from the heap (and faulting in fresh pages);
//   - it serves a made-up request through the SDK's own code (not the
//     registered handler, which may use stores or call out), so the lazy
//     tables that parsing and writing it fill (canonical header names,
//     interface method tables) are filled already.
func init() {
	for size := 8; size <= 32<<10; size += size / 4 {
		for i := 0; i < 4; i++ {
			warm = append(warm, make([]byte, size))
		}
	}
	rehearse()
}

// rehearse serves a made-up request with a handler that does what handlers
// commonly do, and throws the response away.
func rehearse() {
	env := []string{
		"REQUEST_METHOD=GET",
		"X_FULL_URL=http://wedge.invalid/rehearsal/a?name=wedge&n=1",
		"SCRIPT_NAME=/rehearsal",
		"PATH_INFO=/a",
		"QUERY_STRING=name=wedge&n=1",
		"SERVER_NAME=wedge.invalid",
		"SERVER_PROTOCOL=HTTP/1.1",
		"REMOTE_ADDR=127.0.0.1",
		"CONTENT_LENGTH=0",
		"HTTP_HOST=wedge.invalid",
		"HTTP_ACCEPT=*/*",
		"HTTP_USER_AGENT=wedge",
		"HTTP_X_REQUEST_ID=0",
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "Hello, %s! %d %v\n", r.URL.Query().Get("name"), len(r.Header), r.Header.Get("Accept"))
		io.WriteString(w, r.URL.Path)
	})
	serve(h, env, strings.NewReader(""), io.Discard)
}

// wedgeHandle is the entry point wedge calls for each request of a module
// built as a reactor (-buildmode=c-shared): it serves the handler Handle
// registered, with the request read afresh from the host.
//
//go:wasmexport wedge_handle
func wedgeHandle() {
	Serve(registered())
}
