//go:build !wasip1

package wedge

import (
	"os"
	"unsafe"
)

// Outside wasip1 (a handler's own tests on the build machine, say) there is
// no host: every call answers statusUnavailable.

func abiVersion() int32 { return statusUnavailable }

func kvOpen(unsafe.Pointer, uint32, unsafe.Pointer) int32 { return statusUnavailable }

func kvGet(uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer) int32 {
	return statusUnavailable
}

func kvExists(uint32, unsafe.Pointer, uint32) int32 { return statusUnavailable }

func kvList(uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer) int32 {
	return statusUnavailable
}

func kvSet(uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { return statusUnavailable }

func kvDelete(uint32, unsafe.Pointer, uint32) int32 { return statusUnavailable }

func kvAdd(uint32, unsafe.Pointer, uint32, int64, int64, int64, unsafe.Pointer) int32 {
	return statusUnavailable
}

func kvCas(uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer) int32 {
	return statusUnavailable
}

func httpSend(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, uint32, unsafe.Pointer) int32 {
	return statusUnavailable
}

func httpHeaders(uint32, unsafe.Pointer, uint32, unsafe.Pointer) int32 { return statusUnavailable }

func httpRead(uint32, unsafe.Pointer, uint32, unsafe.Pointer) int32 { return statusUnavailable }

func httpClose(uint32) int32 { return statusUnavailable }

func httpError(unsafe.Pointer, uint32, unsafe.Pointer) int32 { return statusUnavailable }

// environ is the process's environment.
func environ() []string { return os.Environ() }
