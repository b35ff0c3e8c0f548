package ebsim

import (
	"bytes"
	"encoding/json"
	"testing"
)

// refMatch is how patterns were matched before events were read lazily:
// the whole event decoded with UseNumber, then walked. The lazy matcher
// must agree with it on every input.
func refMatch(p *Pattern, event []byte) bool {
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if dec.Decode(&ev) != nil {
		return false
	}
	return refObject(p.root, ev)
}

func refObject(pat, ev map[string]any) bool {
	for k, pv := range pat {
		v, present := ev[k]
		switch p := pv.(type) {
		case map[string]any:
			sub, ok := v.(map[string]any)
			if !ok || !refObject(p, sub) {
				return false
			}
		case []any:
			if !matchAny(p, v, present) {
				return false
			}
		}
	}
	return true
}

// FuzzLazyMatchAgreesWithFullDecode checks Pattern.Match and the bus's
// parse-once path against refMatch.
func FuzzLazyMatchAgreesWithFullDecode(f *testing.F) {
	events := []string{
		`{"source":"acs.ecs","type":"ecs:ActionTrail:ConsoleOperation","data":{"eventName":"RunInstances","ids":["i-1","i-2"],"n":3}}`,
		`{"source":"acs.ecs","type":"ecs:Instance:StateChange","data":{"state":"Running"}}`,
		`{ "source" : "acs.ecs" , "data" : { "n" : -1.5e3 , "o" : {"k":[1,{"a":null}]}, "s": "a\"b\u00e9", "t": true, "f": false, "z": null } }`,
		`{"data":null,"type":["x","y"],"source":{"a":"b"}}`,
		`[1]`, `null`, `{}`, `{"a":1} trailing`, `"str"`,
	}
	patterns := []string{
		`{}`,
		`{"source":["acs.ecs"],"type":["ecs:Instance:StateChange","ecs:CloudAssistant:FirstHeartbeat"]}`,
		`{"source":["acs.ecs"],"type":["ecs:ActionTrail:ApiCall","ecs:ActionTrail:ConsoleOperation","ecs:ActionTrail:AliyunServiceEvent"],"data":{"eventName":["RunInstances"]}}`,
		`{"data":{"n":[3,-1500,"3"]}}`,
		`{"data":{"s":["a\"bé"],"t":[true],"f":[false],"z":[null]}}`,
		`{"data":{"o":{"k":[1]}}}`,
		`{"data":{"state":[{"exists":false}]},"type":[{"prefix":"ecs:"}]}`,
		`{"type":[{"anything-but":["x"]}],"source":[{"suffix":"ecs"}]}`,
		`{"data":{"x":{"y":["z"]}}}`,
		`{"data":[{"exists":true}]}`,
		`{"source":[{"exists":true}]}`,
	}
	for _, e := range events {
		for _, p := range patterns {
			f.Add(p, e)
		}
	}
	f.Fuzz(func(t *testing.T, pattern, event string) {
		p, err := CompilePattern(pattern)
		if err != nil {
			return
		}
		want := refMatch(p, []byte(event))
		if got := p.Match([]byte(event)); got != want {
			t.Errorf("Match(%s, %s) = %v, full decode says %v", pattern, event, got, want)
		}
		if t := bytes.TrimSpace([]byte(event)); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			return // the bus rejects it before matching
		}
		ev, ok := parseEvent([]byte(event))
		if got := ok && matchObject(p.root, ev); got != want {
			t.Errorf("bus match(%s, %s) = %v, full decode says %v", pattern, event, got, want)
		}
	})
}
