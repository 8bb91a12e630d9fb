package main

import "testing"

func TestFirstMatchingRuleDecides(t *testing.T) {
	rules, err := ParseRules([]byte(`{"default": "allow", "rules": [
		{"name": "bots", "decision": "deny", "when": [{"attr": "header:user-agent", "op": "contains", "value": "bot"}]},
		{"name": "big-unverified", "decision": "deny", "when": [
			{"attr": "query:amount", "op": "gt", "value": 1000},
			{"attr": "session:verified", "op": "ne", "value": "yes"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	attrs := func(amount, verified string) *Attributes {
		a := &Attributes{Headers: map[string]string{}, Query: map[string]string{"amount": amount}, Session: map[string]string{}}
		if verified != "" {
			a.Session["verified"] = verified
		}
		return a
	}
	for _, c := range []struct {
		amount, verified, decision string
	}{
		{"50", "", "allow"},
		{"5000", "", "deny"},
		{"5000", "no", "deny"},
		{"5000", "yes", "allow"},
	} {
		if got := rules.Evaluate(attrs(c.amount, c.verified)); got.Decision != c.decision {
			t.Errorf("amount %s verified %q: %+v", c.amount, c.verified, got)
		}
	}
}

func TestBadRulesAreRefused(t *testing.T) {
	for _, bad := range []string{
		`{"rules": [{"name": "x", "decision": "deny", "when": []}]}`,
		`{"rules": [{"name": "x", "decision": "maybe", "when": [{"attr": "path", "op": "eq", "value": "/"}]}]}`,
		`{"rules": [{"name": "x", "decision": "deny", "when": [{"attr": "path", "op": "like", "value": "/"}]}]}`,
		`{"rulez": []}`,
	} {
		if _, err := ParseRules([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
