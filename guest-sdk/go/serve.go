package wedge

import (
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
	serve(h, environ(), os.Stdin, os.Stdout)
}

// serve is Serve with the request's environment, body and response stream
// given.
func serve(h http.Handler, env []string, body io.Reader, out io.Writer) {
	w := &responseWriter{header: http.Header{}, out: out}
	req, err := readRequest(env, body)
	if err != nil {
		http.Error(w, "cannot read the request: "+err.Error(), http.StatusBadRequest)
	} else {
		h.ServeHTTP(w, req)
	}
	w.finish()
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
	return lookup(environ(), "SCRIPT_NAME")
}

// lookup is the value of name in env, a list of KEY=value strings.
func lookup(env []string, name string) string {
	for _, kv := range env {
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			return kv[len(name)+1:]
		}
	}
	return ""
}

// Request is the request wedge passed in, read from the environment and stdin.
func Request() (*http.Request, error) {
	return readRequest(environ(), os.Stdin)
}

// cgiRequest is what a request's environment says, gathered in one pass
// over it.
type cgiRequest struct {
	method, fullURL, script, pathInfo, query string
	contentType, contentLength, serverName   string
	protocol, remoteAddr                     string
	header                                   http.Header
}

// parseEnv gathers the request from env, a list of KEY=value strings.
func parseEnv(env []string) cgiRequest {
	r := cgiRequest{header: make(http.Header, len(env))}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch name {
		case "REQUEST_METHOD":
			r.method = value
		case "X_FULL_URL":
			r.fullURL = value
		case "SCRIPT_NAME":
			r.script = value
		case "PATH_INFO":
			r.pathInfo = value
		case "QUERY_STRING":
			r.query = value
		case "CONTENT_TYPE":
			r.contentType = value
		case "CONTENT_LENGTH":
			r.contentLength = value
		case "SERVER_NAME":
			r.serverName = value
		case "SERVER_PROTOCOL":
			r.protocol = value
		case "REMOTE_ADDR":
			r.remoteAddr = value
		default:
			if rest, ok := strings.CutPrefix(name, "HTTP_"); ok {
				r.header.Add(strings.ReplaceAll(rest, "_", "-"), value)
			}
		}
	}
	return r
}

// readRequest builds the request from its environment and body.
func readRequest(env []string, stdin io.Reader) (*http.Request, error) {
	r := parseEnv(env)
	if r.method == "" {
		return nil, fmt.Errorf("no REQUEST_METHOD: not running as a wedge handler")
	}
	u, err := url.Parse(r.fullURL)
	if err != nil || r.fullURL == "" {
		u = &url.URL{Path: r.script + r.pathInfo, RawQuery: r.query}
	}
	header := r.header
	if r.contentType != "" {
		header.Set("Content-Type", r.contentType)
	}
	length, _ := strconv.ParseInt(r.contentLength, 10, 64)
	var body []byte
	if length > 0 {
		body, err = io.ReadAll(io.LimitReader(stdin, length))
		if err != nil {
			return nil, fmt.Errorf("reading the body: %w", err)
		}
	}
	if int64(len(body)) != length {
		return nil, fmt.Errorf("the body has %d bytes, CONTENT_LENGTH says %d", len(body), length)
	}
	// As in net/http, the host is the request's Host, not one of its headers.
	host := header.Get("Host")
	header.Del("Host")
	for _, fallback := range []string{u.Host, r.serverName} {
		if host == "" {
			host = fallback
		}
	}
	proto := r.protocol
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		proto, major, minor = "HTTP/1.1", 1, 1
	}
	req := &http.Request{
		Method:        r.method,
		URL:           u,
		Proto:         proto,
		ProtoMajor:    major,
		ProtoMinor:    minor,
		Header:        header,
		Body:          http.NoBody,
		ContentLength: length,
		Host:          host,
		RemoteAddr:    r.remoteAddr,
		RequestURI:    u.RequestURI(),
	}
	if length > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return req, nil
}

// responseWriter keeps the response until the handler returns, and then
// writes it whole in one write, unless the handler flushes it (it is an
// http.Flusher): then the head and what was written go out at once, and
// every later Write goes straight to wedge, which sends it on as the
// handler makes it (server-sent events, large downloads).
type responseWriter struct {
	header    http.Header
	status    int
	body      bytes.Buffer
	out       io.Writer
	streaming bool
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.streaming {
		return w.out.Write(b)
	}
	return w.body.Write(b)
}

// Flush sends the head and the body written so far; what the handler
// writes after it leaves as it is written. wedge sends it to the client
// once the handler waits on anything (a sleep, a store call, an outbound
// request), has computed for 10 ms, or has written 64 KiB.
func (w *responseWriter) Flush() {
	if !w.streaming {
		w.streaming = true
		w.write()
		w.body.Reset()
	}
}

// lineBreaks turns the line breaks in a header value into spaces.
var lineBreaks = strings.NewReplacer("\r", " ", "\n", " ")

// finish writes what is left of the response: all of it, or, once it
// streams, nothing more (every Write went out as it came).
func (w *responseWriter) finish() {
	if !w.streaming {
		w.write()
	}
}

// write writes the response in CGI form: Status, headers, a blank line, the
// body so far.
func (w *responseWriter) write() {
	w.WriteHeader(http.StatusOK)
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	b := bytes.NewBuffer(make([]byte, 0, 512+w.body.Len()))
	b.WriteString("Status: ")
	b.WriteString(strconv.Itoa(w.status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(w.status))
	b.WriteString("\r\n")
	names := make([]string, 0, len(w.header))
	for name := range w.header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, value := range w.header[name] {
			// A value with a line break would forge another header line.
			if strings.ContainsAny(value, "\r\n") {
				value = lineBreaks.Replace(value)
			}
			b.WriteString(name)
			b.WriteString(": ")
			b.WriteString(value)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	b.Write(w.body.Bytes())
	w.out.Write(b.Bytes())
}
