package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Rules is a rule set as stored: the first rule whose conditions all hold
// decides, else Default. The format is the Rust `rules` example's:
//
//	{"default": "allow", "rules": [
//	  {"name": "big-orders-need-verification", "decision": "deny",
//	   "when": [{"attr": "query:amount", "op": "gt", "value": 1000},
//	            {"attr": "session:verified", "op": "ne", "value": "yes"}]}]}
//
// Attributes: method, path, client, header:<name>, query:<name>,
// session:<fact>. A missing attribute fails every test but missing, ne and
// not_in.
type Rules struct {
	Default string `json:"default"`
	Rules   []Rule `json:"rules"`
}

// Rule is one named rule.
type Rule struct {
	Name     string      `json:"name"`
	Decision string      `json:"decision"`
	When     []Condition `json:"when"`
}

// Condition tests one attribute.
type Condition struct {
	Attr  string          `json:"attr"`
	Op    string          `json:"op"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Verdict is what the rules decided, and which rule decided it.
type Verdict struct {
	Decision string  `json:"decision"`
	Rule     *string `json:"rule"`
}

// Attributes is what the rules know about a request.
type Attributes struct {
	Method, Path, Client string
	Headers, Query       map[string]string
	Session              map[string]string
}

var ops = map[string]bool{
	"eq": true, "ne": true, "contains": true, "prefix": true, "suffix": true,
	"in": true, "not_in": true, "gt": true, "ge": true, "lt": true, "le": true,
	"exists": true, "missing": true,
}

// ParseRules reads and checks a rule set.
func ParseRules(text []byte) (*Rules, error) {
	r := &Rules{Default: "allow"}
	dec := json.NewDecoder(strings.NewReader(string(text)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, err
	}
	if r.Default != "allow" && r.Default != "deny" {
		return nil, fmt.Errorf("default is allow or deny, not %q", r.Default)
	}
	for _, rule := range r.Rules {
		if rule.Decision != "allow" && rule.Decision != "deny" {
			return nil, fmt.Errorf("rule %q: decision is allow or deny", rule.Name)
		}
		if len(rule.When) == 0 {
			return nil, fmt.Errorf("rule %q has no conditions", rule.Name)
		}
		for _, c := range rule.When {
			if !ops[c.Op] {
				return nil, fmt.Errorf("rule %q: unknown op %q", rule.Name, c.Op)
			}
		}
	}
	return r, nil
}

// Evaluate returns the first matching rule's decision, or the default.
func (r *Rules) Evaluate(a *Attributes) Verdict {
	for _, rule := range r.Rules {
		all := true
		for _, c := range rule.When {
			all = all && c.holds(a)
		}
		if all {
			name := rule.Name
			return Verdict{Decision: rule.Decision, Rule: &name}
		}
	}
	return Verdict{Decision: r.Default}
}

func (a *Attributes) get(attr string) (string, bool) {
	kind, name, _ := strings.Cut(attr, ":")
	var v string
	var ok bool
	switch kind {
	case "header":
		v, ok = a.Headers[strings.ToLower(name)]
	case "query":
		v, ok = a.Query[name]
	case "session":
		v, ok = a.Session[name]
	case "method":
		v, ok = a.Method, true
	case "path":
		v, ok = a.Path, true
	case "client":
		v, ok = a.Client, true
	}
	return v, ok
}

// values is the condition's value as text: one, or each of a list.
func (c *Condition) values() []string {
	var list []json.RawMessage
	if json.Unmarshal(c.Value, &list) != nil {
		list = []json.RawMessage{c.Value}
	}
	out := make([]string, 0, len(list))
	for _, raw := range list {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out = append(out, s)
		} else {
			out = append(out, strings.TrimSpace(string(raw)))
		}
	}
	return out
}

func (c *Condition) holds(a *Attributes) bool {
	v, present := a.get(c.Attr)
	switch c.Op {
	case "exists":
		return present
	case "missing":
		return !present
	case "ne":
		return !present || !equal(v, c.values()[0])
	case "not_in":
		if !present {
			return true
		}
		for _, want := range c.values() {
			if equal(v, want) {
				return false
			}
		}
		return true
	}
	if !present {
		return false
	}
	want := c.values()
	switch c.Op {
	case "eq":
		return equal(v, want[0])
	case "contains":
		return strings.Contains(v, want[0])
	case "prefix":
		return strings.HasPrefix(v, want[0])
	case "suffix":
		return strings.HasSuffix(v, want[0])
	case "in":
		for _, w := range want {
			if equal(v, w) {
				return true
			}
		}
		return false
	}
	x, err1 := strconv.ParseFloat(v, 64)
	y, err2 := strconv.ParseFloat(want[0], 64)
	if err1 != nil || err2 != nil {
		return false
	}
	switch c.Op {
	case "gt":
		return x > y
	case "ge":
		return x >= y
	case "lt":
		return x < y
	case "le":
		return x <= y
	}
	return false
}

// equal compares as numbers when both are numbers, else as text.
func equal(a, b string) bool {
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if err1 == nil && err2 == nil {
		return x == y
	}
	return a == b
}
