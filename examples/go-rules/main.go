// Command go-rules is a risk-control decision service written in Go with the
// wedge SDK, beside the Rust `rules` example. Its rules are JSON in the
// `go-rules` store, so they change at run time without a redeploy; the facts
// it decides on come from the `sessions` store, which the Rust `session`
// example writes: two languages share context through the store.
//
//	GET /go-rules/config         the current rules
//	PUT /go-rules/config         replace them (checked before they are stored)
//	ANY /go-rules/check/<path>   200 {"decision":"allow"} or 403 {"decision":"deny","rule":"..."}
//
// The session is the x-session-id header or the session cookie.
package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	wedge "example.invalid/wedge/guest-sdk/go"
)

// init registers the handler: wedge runs it once, when it loads the module
// built as a reactor, and serves every request from the snapshot.
func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /go-rules/config", getConfig)
	mux.HandleFunc("PUT /go-rules/config", putConfig)
	mux.HandleFunc("/go-rules/check/", check)
	mux.HandleFunc("/go-rules/check", check)
	wedge.Handle(mux)
}

// main serves one request when the module is built as a command instead.
func main() {
	wedge.Run()
}

func loadRules() (*Rules, error) {
	store, err := wedge.OpenStore("go-rules")
	if err != nil {
		return nil, err
	}
	text, err := store.Get("rules")
	if errors.Is(err, wedge.ErrNotFound) {
		return &Rules{Default: "allow"}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseRules(text)
}

func getConfig(w http.ResponseWriter, r *http.Request) {
	rules, err := loadRules()
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, rules)
}

func putConfig(w http.ResponseWriter, r *http.Request) {
	text, err := io.ReadAll(r.Body)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	rules, err := ParseRules(text)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	store, err := wedge.OpenStore("go-rules")
	if err == nil {
		err = store.Set("rules", text)
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, map[string]int{"stored": len(rules.Rules)})
}

func check(w http.ResponseWriter, r *http.Request) {
	rules, err := loadRules()
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/go-rules/check")
	if path == "" {
		path = "/"
	}
	client, _, _ := strings.Cut(r.RemoteAddr, ":")
	attrs := &Attributes{
		Method:  r.Method,
		Path:    path,
		Client:  client,
		Headers: map[string]string{},
		Query:   map[string]string{},
		Session: map[string]string{},
	}
	for name, values := range r.Header {
		attrs.Headers[strings.ToLower(name)] = strings.Join(values, ", ")
	}
	for name, values := range r.URL.Query() {
		attrs.Query[name] = values[0]
	}
	session := r.Header.Get("X-Session-Id")
	if c, err := r.Cookie("session"); session == "" && err == nil {
		session = c.Value
	}
	if session != "" {
		if attrs.Session, err = sessionFacts(session); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
	}
	verdict := rules.Evaluate(attrs)
	status := http.StatusOK
	if verdict.Decision == "deny" {
		status = http.StatusForbidden
	}
	reply(w, status, verdict)
}

// sessionFacts reads what the session example recorded: keys <session>/<fact>.
func sessionFacts(session string) (map[string]string, error) {
	store, err := wedge.OpenStore("sessions")
	if err != nil {
		return nil, err
	}
	prefix := session + "/"
	keys, err := store.List(prefix)
	if err != nil {
		return nil, err
	}
	facts := map[string]string{}
	for _, key := range keys {
		value, err := store.Get(key)
		if errors.Is(err, wedge.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		facts[strings.TrimPrefix(key, prefix)] = string(value)
	}
	return facts, nil
}

func reply(w http.ResponseWriter, status int, value any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(value)
}

func fail(w http.ResponseWriter, status int, err error) {
	reply(w, status, map[string]string{"error": err.Error()})
}
