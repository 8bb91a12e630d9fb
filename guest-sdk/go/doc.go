// Package wedge writes wedge HTTP handlers in Go: any net/http handler
// serves through Serve, key-value stores open with OpenStore, and
// http.Client{Transport: wedge.Transport} calls the origins a function's
// outbound list names.
//
// The fast way is a reactor: register the handler in an init function and
// build with -buildmode=c-shared (Go 1.24 or later):
//
//	func init() { wedge.Handle(mux) }
//	func main() { wedge.Run() }
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o v1.wasm .
//
// wedge runs the Go runtime's start-up and the init functions once when it
// loads the module, snapshots the result, and starts every request from the
// snapshot, calling the wedge_handle export this package provides. The same
// code built as a command (plain go build) starts the runtime per request
// and serves through Run. A main that calls Serve(h) directly builds only
// as a command.
//
// Drop v1.wasm into functions/<name>/. The package uses the standard
// library only, and reads each request's environment from the host on
// every call, so a snapshot never carries one request's variables into the
// next. What init computes is in the snapshot and the same for every
// request, random seeds included: use crypto/rand for values that must
// differ.
package wedge
