// Package wedge writes wedge HTTP handlers in Go: any net/http handler
// serves through Serve, key-value stores open with OpenStore, and
// http.Client{Transport: wedge.Transport} calls the origins a function's
// outbound list names.
//
// Build a handler with the standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -o v1.wasm .
//
// and drop v1.wasm into functions/<name>/. The package uses the standard
// library only. Its API does not depend on how the module is built, so a
// handler keeps its code if wedge later runs it as a pre-initialized
// reactor.
package wedge
