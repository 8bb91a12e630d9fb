package wedge

import (
	"errors"
	"fmt"
	"unsafe"
)

// Status codes of the wedge host module (docs/abi.md).
const (
	statusOK           = 0
	statusNotFound     = 1
	statusAccessDenied = 2
	statusOutOfRange   = 3
	statusTooLarge     = 4
	statusInvalid      = 5
	statusIO           = 6
	statusTimeout      = 7
	statusConnect      = 8
	statusTLS          = 9
	statusBusy         = 10
	// Never returned by the host: the stand-ins outside wasip1 return it.
	statusUnavailable = -1
)

// Errors a call can end with; compare with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("wedge: not found")
	// ErrAccessDenied: the store is not in the function's kv list, or the
	// URL (or the address its name resolves to) is not in its outbound list.
	ErrAccessDenied = errors.New("wedge: access denied")
	// ErrOutOfRange: Add would have left its bounds; nothing changed.
	ErrOutOfRange = errors.New("wedge: out of range")
	// ErrTooLarge: a key over 1 KiB, a value over 1 MiB, or a response body
	// over the node's outbound max_response.
	ErrTooLarge = errors.New("wedge: too large")
	// ErrInvalid: a bad argument, such as an empty key or a bad URL.
	ErrInvalid = errors.New("wedge: invalid argument")
	// ErrIO: the storage failed, or an outbound connection broke.
	ErrIO = errors.New("wedge: i/o error")
	// ErrTimeout: an outbound call ran out of time.
	ErrTimeout = errors.New("wedge: timeout")
	// ErrConnect: an outbound name did not resolve or nothing took the connection.
	ErrConnect = errors.New("wedge: cannot connect")
	// ErrTLS: an outbound TLS handshake failed.
	ErrTLS = errors.New("wedge: tls handshake failed")
	// ErrBusy: too many outbound calls open, in the request or on the node.
	ErrBusy = errors.New("wedge: busy")
	// ErrUnavailable: not running inside wedge.
	ErrUnavailable = errors.New("wedge: only available inside wedge")
)

// Error is a failed call: its kind (one of the Err values above, for
// errors.Is) and, for outbound HTTP, the host's explanation.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Kind }

// kind is the error for a status, or nil for ok.
func kind(status int32) error {
	switch status {
	case statusOK:
		return nil
	case statusNotFound:
		return ErrNotFound
	case statusAccessDenied:
		return ErrAccessDenied
	case statusOutOfRange:
		return ErrOutOfRange
	case statusTooLarge:
		return ErrTooLarge
	case statusInvalid:
		return ErrInvalid
	case statusIO:
		return ErrIO
	case statusTimeout:
		return ErrTimeout
	case statusConnect:
		return ErrConnect
	case statusTLS:
		return ErrTLS
	case statusBusy:
		return ErrBusy
	case statusUnavailable:
		return ErrUnavailable
	default:
		return fmt.Errorf("wedge: unknown status %d", status)
	}
}

// kvError is the error for a key-value status.
func kvError(status int32) error {
	k := kind(status)
	if k == nil {
		return nil
	}
	return &Error{Kind: k}
}

// httpError is the error for an outbound status, with the host's message.
func outboundError(status int32) error {
	k := kind(status)
	if k == nil {
		return nil
	}
	return &Error{Kind: k, Message: lastError()}
}

// lastError is the host's message for the last failed outbound call.
func lastError() string {
	buf := make([]byte, 512)
	for {
		var n uint32
		if httpError(ptr(buf), uint32(len(buf)), unsafe.Pointer(&n)) != statusOK {
			return ""
		}
		if int(n) <= len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, n)
	}
}

// ptr is the address of b's first byte (nil for an empty slice, which the
// host reads as address 0 with length 0).
func ptr(b []byte) unsafe.Pointer {
	return unsafe.Pointer(unsafe.SliceData(b))
}

// sptr is the address of s's first byte.
func sptr(s string) unsafe.Pointer {
	return unsafe.Pointer(unsafe.StringData(s))
}

// AbiVersion is the host's ABI version, or 0 outside wedge.
func AbiVersion() int {
	v := abiVersion()
	if v == statusUnavailable {
		return 0
	}
	return int(v)
}
