package wedge

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRequestComesFromTheEnvironment(t *testing.T) {
	t.Setenv("REQUEST_METHOD", "GET")
	t.Setenv("X_FULL_URL", "http://shop.example/rules/check/a?x=1")
	t.Setenv("SCRIPT_NAME", "/rules")
	t.Setenv("HTTP_X_SESSION_ID", "s-1")
	t.Setenv("CONTENT_LENGTH", "0")
	t.Setenv("SERVER_PROTOCOL", "HTTP/2.0")
	req, err := Request()
	if err != nil {
		t.Fatal(err)
	}
	if req.URL.Path != "/rules/check/a" || req.URL.Query().Get("x") != "1" {
		t.Errorf("url %v", req.URL)
	}
	if req.Header.Get("X-Session-Id") != "s-1" || req.Host != "shop.example" || req.ProtoMajor != 2 {
		t.Errorf("request %+v", req)
	}
	if Route() != "/rules" {
		t.Errorf("route %q", Route())
	}
}

func TestResponsesAreCGIAndCannotForgeHeaders(t *testing.T) {
	var out bytes.Buffer
	w := &responseWriter{header: http.Header{}, out: &out}
	w.Header().Set("X-Note", "a\r\nStatus: 200")
	w.WriteHeader(http.StatusTeapot)
	w.Write([]byte("{}"))
	w.finish()
	text := out.String()
	if !strings.HasPrefix(text, "Status: 418 I'm a teapot\r\n") {
		t.Errorf("%q", text)
	}
	if strings.Count(text, "Status:") != 2 || strings.Contains(text, "\r\nStatus: 200") {
		t.Errorf("a header value forged a line: %q", text)
	}
	if !strings.HasSuffix(text, "\r\n\r\n{}") || !strings.Contains(text, "Content-Type: text/plain") {
		t.Errorf("%q", text)
	}
}

func TestAFlushedResponseStreams(t *testing.T) {
	var out bytes.Buffer
	w := &responseWriter{header: http.Header{}, out: &out}
	var _ http.Flusher = w
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "data: 0\n\n")
	w.Flush()
	if got := out.String(); !strings.HasPrefix(got, "Status: 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\ndata: 0\n\n") {
		t.Errorf("after the flush: %q", got)
	}
	io.WriteString(w, "data: 1\n\n")
	if !strings.HasSuffix(out.String(), "data: 0\n\ndata: 1\n\n") {
		t.Errorf("a write after the flush waited: %q", out.String())
	}
	w.finish()
	if strings.Count(out.String(), "Status:") != 1 {
		t.Errorf("the head went out twice: %q", out.String())
	}
}

func TestOutsideWedgeCallsSaySo(t *testing.T) {
	if _, err := OpenStore("x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("%v", err)
	}
	client := http.Client{Transport: Transport}
	if _, err := client.Get("http://example.com/"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("%v", err)
	}
	if AbiVersion() != 0 {
		t.Errorf("abi %d", AbiVersion())
	}
}

func TestWithoutHandleTheHandlerSaysWhatIsMissing(t *testing.T) {
	handler = nil
	w := &responseWriter{header: http.Header{}}
	registered().ServeHTTP(w, nil)
	if w.status != http.StatusInternalServerError || !strings.Contains(w.body.String(), "wedge.Handle") {
		t.Errorf("%d %q", w.status, w.body.String())
	}
	Handle(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer func() { handler = nil }()
	w = &responseWriter{header: http.Header{}}
	registered().ServeHTTP(w, nil)
	if w.status != http.StatusNoContent {
		t.Errorf("the registered handler did not serve: %d", w.status)
	}
}

func TestARequestIsReadFromItsVariablesAndBody(t *testing.T) {
	env := []string{
		"REQUEST_METHOD=POST",
		"SCRIPT_NAME=/shop",
		"PATH_INFO=/cart",
		"QUERY_STRING=a=1&b=x%20y",
		"CONTENT_TYPE=application/json",
		"CONTENT_LENGTH=2",
		"HTTP_HOST=shop.example",
		"HTTP_X_TRACE_ID=t-1",
		"NOT_A_PAIR",
		"SERVER_PROTOCOL=bogus",
	}
	req, err := readRequest(env, strings.NewReader("{}and more"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	if req.Method != "POST" || req.URL.Path != "/shop/cart" || req.URL.Query().Get("b") != "x y" || string(body) != "{}" {
		t.Errorf("request %+v body %q", req, body)
	}
	if req.Host != "shop.example" || req.Header.Get("Host") != "" || req.Header.Get("X-Trace-Id") != "t-1" || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("host %q header %v", req.Host, req.Header)
	}
	if req.Proto != "HTTP/1.1" {
		t.Errorf("an unparsable protocol should read as HTTP/1.1, not %q", req.Proto)
	}
	if lookup(env, "SCRIPT_NAME") != "/shop" || lookup(env, "SCRIPT") != "" || lookup(env, "NOT_A_PAIR") != "" {
		t.Error("lookup")
	}
	if _, err := readRequest(env[1:], strings.NewReader("{}")); err == nil {
		t.Error("a request without REQUEST_METHOD was read")
	}
	if _, err := readRequest(env, strings.NewReader("{")); err == nil {
		t.Error("a body shorter than CONTENT_LENGTH was read")
	}
	empty, err := readRequest([]string{"REQUEST_METHOD=GET"}, strings.NewReader("ignored"))
	if err != nil || empty.Body != http.NoBody || empty.ContentLength != 0 {
		t.Errorf("%v %v", empty, err)
	}
}
