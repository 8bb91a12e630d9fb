package wedge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Serve reads the request wedge passed in (WAGI: environment variables and
// stdin), runs h, and writes its response to stdout. The request's URL has
// the whole path as the client sent it, so an http.ServeMux or any router
// matches the paths a client sees; Route gives the function's route.
//
// A request that cannot be read is answered with 400 without calling h.
func Serve(h http.Handler) {
	w := &responseWriter{header: http.Header{}}
	req, err := Request()
	if err != nil {
		http.Error(w, "cannot read the request: "+err.Error(), http.StatusBadRequest)
	} else {
		h.ServeHTTP(w, req)
	}
	w.finish(os.Stdout)
}

// handler is what Handle registered.
var handler http.Handler

// Handle registers h as the module's handler. Call it from an init function.
//
// Built as a reactor (go build -buildmode=c-shared), the module's init
// functions run once when wedge loads it, wedge snapshots the initialized
// program, and every request starts from that snapshot and runs h: the Go
// runtime starts once per load, not once per request. Built as a command
// (plain go build), main calls Run, which serves h.
func Handle(h http.Handler) {
	handler = h
}

// Run serves the handler Handle registered: the whole of main for a module
// that may be built as a command.
func Run() {
	Serve(registered())
}

// registered is the handler Handle registered, or one that says none was.
func registered() http.Handler {
	if handler != nil {
		return handler
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no handler: call wedge.Handle from an init function", http.StatusInternalServerError)
	})
}

// Route is the route that matched the request (SCRIPT_NAME), such as "/rules".
func Route() string {
	return requestEnv()["SCRIPT_NAME"]
}

// requestEnv is the request's environment, read afresh from the host (not
// from the os package's copy taken when the Go runtime started), so it is
// this request's however the module was built.
func requestEnv() map[string]string {
	vars := map[string]string{}
	for _, kv := range environ() {
		if name, value, ok := strings.Cut(kv, "="); ok {
			vars[name] = value
		}
	}
	return vars
}

// Request is the request wedge passed in, read from the environment and stdin.
func Request() (*http.Request, error) {
	env := requestEnv()
	method := env["REQUEST_METHOD"]
	if method == "" {
		return nil, fmt.Errorf("no REQUEST_METHOD: not running as a wedge handler")
	}
	full := env["X_FULL_URL"]
	u, err := url.Parse(full)
	if err != nil || full == "" {
		u = &url.URL{
			Path:     env["SCRIPT_NAME"] + env["PATH_INFO"],
			RawQuery: env["QUERY_STRING"],
		}
	}
	header := http.Header{}
	for name, value := range env {
		if strings.HasPrefix(name, "HTTP_") {
			header.Add(strings.ReplaceAll(name[len("HTTP_"):], "_", "-"), value)
		}
	}
	if ct := env["CONTENT_TYPE"]; ct != "" {
		header.Set("Content-Type", ct)
	}
	length, _ := strconv.ParseInt(env["CONTENT_LENGTH"], 10, 64)
	body, err := io.ReadAll(io.LimitReader(os.Stdin, length))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(body)) != length {
		return nil, fmt.Errorf("the body has %d bytes, CONTENT_LENGTH says %d", len(body), length)
	}
	// As in net/http, the host is the request's Host, not one of its headers.
	host := header.Get("Host")
	header.Del("Host")
	for _, fallback := range []string{u.Host, env["SERVER_NAME"]} {
		if host == "" {
			host = fallback
		}
	}
	proto := env["SERVER_PROTOCOL"]
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		proto, major, minor = "HTTP/1.1", 1, 1
	}
	req := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         proto,
		ProtoMajor:    major,
		ProtoMinor:    minor,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: length,
		Host:          host,
		RemoteAddr:    env["REMOTE_ADDR"],
		RequestURI:    u.RequestURI(),
	}
	return req, nil
}

// responseWriter keeps the response until the handler returns: wedge reads
// a whole CGI response.
type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// finish writes the response in CGI form: Status, headers, a blank line,
// the body.
func (w *responseWriter) finish(out io.Writer) {
	w.WriteHeader(http.StatusOK)
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	b := bufio.NewWriterSize(out, 4096+w.body.Len())
	fmt.Fprintf(b, "Status: %d %s\r\n", w.status, http.StatusText(w.status))
	names := make([]string, 0, len(w.header))
	for name := range w.header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, value := range w.header[name] {
			// A value with a line break would forge another header line.
			value = strings.NewReplacer("\r", " ", "\n", " ").Replace(value)
			fmt.Fprintf(b, "%s: %s\r\n", name, value)
		}
	}
	b.WriteString("\r\n")
	b.Write(w.body.Bytes())
	b.Flush()
}
