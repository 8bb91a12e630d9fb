package wedge

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unsafe"
)

// Transport sends requests through wedge's outbound HTTP, to the origins the
// function's outbound list names:
//
//	client := &http.Client{Transport: wedge.Transport}
//	resp, err := client.Get("https://api.example.com/items/1")
//
// The http.Client follows redirects itself, each hop through wedge and so
// each checked against the list. Errors wrap ErrAccessDenied, ErrTimeout,
// ErrConnect, ErrTLS, ErrTooLarge, ErrInvalid, ErrBusy or ErrIO.
var Transport http.RoundTripper = transport{}

type transport struct{}

// Headers the host sets itself from the URL and the body.
var hostHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Te": true, "Upgrade": true, "Trailer": true, "Proxy-Authorization": true,
}

func (transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("wedge: reading the request body: %w", err)
		}
	}
	var headers strings.Builder
	for name, values := range req.Header {
		if hostHeaders[http.CanonicalHeaderKey(name)] {
			continue
		}
		for _, v := range values {
			headers.WriteString(name)
			headers.WriteString(": ")
			headers.WriteString(v)
			headers.WriteString("\n")
		}
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	url := req.URL.String()
	h := headers.String()
	var out [2]uint32
	status := httpSend(sptr(method), uint32(len(method)), sptr(url), uint32(len(url)),
		sptr(h), uint32(len(h)), ptr(body), uint32(len(body)), 0, unsafe.Pointer(&out))
	if err := outboundError(status); err != nil {
		return nil, err
	}
	handle, code := out[0], int(out[1])
	header, err := responseHeaders(handle)
	if err != nil {
		httpClose(handle)
		return nil, err
	}
	length := int64(-1)
	if n, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64); err == nil {
		length = n
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", code, http.StatusText(code)),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          &responseBody{handle: handle, open: true},
		ContentLength: length,
		Request:       req,
	}, nil
}

func responseHeaders(handle uint32) (http.Header, error) {
	buf := make([]byte, 1024)
	for {
		var n uint32
		if err := outboundError(httpHeaders(handle, ptr(buf), uint32(len(buf)), unsafe.Pointer(&n))); err != nil {
			return nil, err
		}
		if int(n) <= len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, n)
	}
	header := http.Header{}
	for _, line := range bytes.Split(buf, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(": "))
		if ok {
			header.Add(string(name), string(value))
		}
	}
	return header, nil
}

// responseBody reads a response's body from the host in chunks.
type responseBody struct {
	handle uint32
	// The host holds the handle until the body's end, an error, or Close.
	open bool
}

func (b *responseBody) Read(p []byte) (int, error) {
	if !b.open {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n uint32
	status := httpRead(b.handle, ptr(p), uint32(len(p)), unsafe.Pointer(&n))
	if err := outboundError(status); err != nil {
		// The host let the handle go with the error.
		b.open = false
		return 0, err
	}
	if n == 0 {
		b.Close()
		return 0, io.EOF
	}
	return int(n), nil
}

func (b *responseBody) Close() error {
	if b.open {
		b.open = false
		httpClose(b.handle)
	}
	return nil
}
