package wedge

import (
	"encoding/binary"
	"errors"
	"unsafe"
)

// Store is an open key-value store.
type Store struct {
	handle uint32
}

// OpenStore opens the store called name; ErrAccessDenied unless the
// function's function.toml lists it in kv.
func OpenStore(name string) (*Store, error) {
	var handle uint32
	if err := kvError(kvOpen(sptr(name), uint32(len(name)), unsafe.Pointer(&handle))); err != nil {
		return nil, err
	}
	return &Store{handle: handle}, nil
}

// Get returns the value of key; ErrNotFound when it is absent.
func (s *Store) Get(key string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		var n uint32
		status := kvGet(s.handle, sptr(key), uint32(len(key)), ptr(buf), uint32(len(buf)), unsafe.Pointer(&n))
		if err := kvError(status); err != nil {
			return nil, err
		}
		if int(n) <= len(buf) {
			return buf[:n], nil
		}
		// Too small: the host said how large the value is.
		buf = make([]byte, n)
	}
}

// Exists reports whether key is set.
func (s *Store) Exists(key string) (bool, error) {
	err := kvError(kvExists(s.handle, sptr(key), uint32(len(key))))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Set sets key to value; durable before it returns on a node with
// durability = "sync".
func (s *Store) Set(key string, value []byte) error {
	return kvError(kvSet(s.handle, sptr(key), uint32(len(key)), ptr(value), uint32(len(value))))
}

// Delete removes key; ErrNotFound when it was absent.
func (s *Store) Delete(key string) error {
	return kvError(kvDelete(s.handle, sptr(key), uint32(len(key))))
}

// Add adds delta to the counter at key (absent counts as 0) atomically and
// returns the new value. When the result would leave [min, max] nothing
// changes: it returns the current value and ErrOutOfRange. A stock decrement
// that never oversells is Add(sku, -n, 0, math.MaxInt64).
func (s *Store) Add(key string, delta, min, max int64) (int64, error) {
	var value int64
	status := kvAdd(s.handle, sptr(key), uint32(len(key)), delta, min, max, unsafe.Pointer(&value))
	return value, kvError(status)
}

// CompareAndSwap sets key to newValue only if its value is expected, or,
// with expected nil, only if key is absent. It reports whether it did.
func (s *Store) CompareAndSwap(key string, expected []byte, newValue []byte) (bool, error) {
	expectedLen := uint32(len(expected))
	if expected == nil {
		expectedLen = 0xFFFFFFFF // -1: the key must be absent
	}
	var swapped uint32
	status := kvCas(s.handle, sptr(key), uint32(len(key)), ptr(expected), expectedLen,
		ptr(newValue), uint32(len(newValue)), unsafe.Pointer(&swapped))
	return swapped == 1, kvError(status)
}

// List returns every key that starts with prefix, in byte order.
func (s *Store) List(prefix string) ([]string, error) {
	var keys []string
	after := ""
	buf := make([]byte, 16<<10)
	for {
		var out [3]uint32
		status := kvList(s.handle, sptr(prefix), uint32(len(prefix)), sptr(after), uint32(len(after)),
			ptr(buf), uint32(len(buf)), unsafe.Pointer(&out))
		if err := kvError(status); err != nil {
			return nil, err
		}
		page := buf[:out[0]]
		for i := uint32(0); i < out[1]; i++ {
			n := binary.LittleEndian.Uint32(page)
			keys = append(keys, string(page[4:4+n]))
			page = page[4+n:]
		}
		if out[2] == 0 || out[1] == 0 {
			return keys, nil
		}
		after = keys[len(keys)-1]
	}
}
