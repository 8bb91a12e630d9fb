//go:build wasip1

package wedge

import "unsafe"

// The wedge host module's functions, exactly as docs/abi.md gives them:
// pointers and lengths are i32, read by the host as unsigned.

//go:wasmimport wedge abi_version
func abiVersion() int32

//go:wasmimport wedge kv_open
//go:noescape
func kvOpen(name unsafe.Pointer, nameLen uint32, handleOut unsafe.Pointer) int32

//go:wasmimport wedge kv_get
//go:noescape
func kvGet(h uint32, key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, bufCap uint32, lenOut unsafe.Pointer) int32

//go:wasmimport wedge kv_exists
//go:noescape
func kvExists(h uint32, key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport wedge kv_list
//go:noescape
func kvList(h uint32, prefix unsafe.Pointer, prefixLen uint32, after unsafe.Pointer, afterLen uint32, buf unsafe.Pointer, bufCap uint32, out unsafe.Pointer) int32

//go:wasmimport wedge kv_set
//go:noescape
func kvSet(h uint32, key unsafe.Pointer, keyLen uint32, value unsafe.Pointer, valueLen uint32) int32

//go:wasmimport wedge kv_delete
//go:noescape
func kvDelete(h uint32, key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport wedge kv_add
//go:noescape
func kvAdd(h uint32, key unsafe.Pointer, keyLen uint32, delta int64, min int64, max int64, valueOut unsafe.Pointer) int32

//go:wasmimport wedge kv_cas
//go:noescape
func kvCas(h uint32, key unsafe.Pointer, keyLen uint32, expected unsafe.Pointer, expectedLen uint32, newValue unsafe.Pointer, newLen uint32, swappedOut unsafe.Pointer) int32

//go:wasmimport wedge http_send
//go:noescape
func httpSend(method unsafe.Pointer, methodLen uint32, url unsafe.Pointer, urlLen uint32, headers unsafe.Pointer, headersLen uint32, body unsafe.Pointer, bodyLen uint32, flags uint32, out unsafe.Pointer) int32

//go:wasmimport wedge http_headers
//go:noescape
func httpHeaders(handle uint32, buf unsafe.Pointer, bufCap uint32, lenOut unsafe.Pointer) int32

//go:wasmimport wedge http_read
//go:noescape
func httpRead(handle uint32, buf unsafe.Pointer, bufCap uint32, nOut unsafe.Pointer) int32

//go:wasmimport wedge http_close
func httpClose(handle uint32) int32

//go:wasmimport wedge http_error
//go:noescape
func httpError(buf unsafe.Pointer, bufCap uint32, lenOut unsafe.Pointer) int32

// The request's environment, read from WASI on every call rather than from
// the os package's copy, which a pre-initialized module would have taken
// before the request existed.

//go:wasmimport wasi_snapshot_preview1 environ_sizes_get
//go:noescape
func environSizesGet(count unsafe.Pointer, size unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 environ_get
//go:noescape
func environGet(environ unsafe.Pointer, buf unsafe.Pointer) uint32

// environ is the request's environment as KEY=value strings.
func environ() []string {
	var count, size uint32
	if environSizesGet(unsafe.Pointer(&count), unsafe.Pointer(&size)) != 0 || count == 0 {
		return nil
	}
	// Pointers into buf, as 32-bit guest addresses.
	pointers := make([]uint32, count)
	buf := make([]byte, size)
	if environGet(unsafe.Pointer(&pointers[0]), unsafe.Pointer(&buf[0])) != 0 {
		return nil
	}
	// buf is never written again, so the variables share it: one string,
	// not one copy per variable.
	all := unsafe.String(&buf[0], len(buf))
	base := uint32(uintptr(unsafe.Pointer(&buf[0])))
	vars := make([]string, 0, count)
	for i, p := range pointers {
		start := p - base
		// wedge lays the variables out one after another, each ending in
		// a NUL, so a variable ends where the next begins; scan for the
		// NUL only where that does not hold.
		end := size - 1
		if i+1 < len(pointers) {
			end = pointers[i+1] - base - 1
		}
		if start > end || end >= size || buf[end] != 0 {
			end = start
			for end < size && buf[end] != 0 {
				end++
			}
		}
		vars = append(vars, all[start:end])
	}
	return vars
}
