//go:build wasip1

package wedge

// wedgeHandle is the entry point wedge calls for each request of a module
// built as a reactor (-buildmode=c-shared): it serves the handler Handle
// registered, with the request read afresh from the host.
//
//go:wasmexport wedge_handle
func wedgeHandle() {
	Serve(registered())
}
