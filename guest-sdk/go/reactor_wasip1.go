//go:build wasip1

package wedge

// warm holds what init allocated, so the allocator keeps the spans it took.
var warm [][]byte

// init runs once, while wedge initializes the module: it allocates a few
// objects of each small size class, so the allocator's per-thread caches
// in the snapshot already hold a span of each. A request's first
// allocation of a size then takes the fast path instead of fetching a span
// from the heap (and faulting in fresh pages) in every request.
func init() {
	for size := 8; size <= 32<<10; size += size / 4 {
		for i := 0; i < 4; i++ {
			warm = append(warm, make([]byte, size))
		}
	}
}

// wedgeHandle is the entry point wedge calls for each request of a module
// built as a reactor (-buildmode=c-shared): it serves the handler Handle
// registered, with the request read afresh from the host.
//
//go:wasmexport wedge_handle
func wedgeHandle() {
	Serve(registered())
}
