package rpcline_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/electrum-hashcash/electrum-hashcash/internal/rpcline"
)

func scan(t *testing.T, line string) *rpcline.Line {
	t.Helper()
	var l rpcline.Line
	if err := rpcline.Scan([]byte(line), "pow", &l); err != nil {
		t.Fatalf("Scan(%q): %v", line, err)
	}
	return &l
}

func TestStripAtAnyPosition(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1,"pow":"s"}`:                       `{"a":1}`,
		`{"a":1 ,"pow":"s"}`:                      `{"a":1 }`,
		`{"pow":"s"}`:                             `{}`,
		`{ "pow":"s"}`:                            `{ }`,
		`{"pow":"s","a":1}`:                       `{"a":1}`,
		`{"pow" : "s" , "a":1}`:                   `{ "a":1}`,
		`{"a":1,"pow":"s","b":2}`:                 `{"a":1,"b":2}`,
		`{"a":{"pow":"inner"},"pow":"s"}`:         `{"a":{"pow":"inner"}}`,
		`{"a":"\"pow\":\"x\"","pow":"s"}`:         `{"a":"\"pow\":\"x\""}`,
		`{"po\u0077":"s","a":["pow"]}`:            `{"a":["pow"]}`,
		`[{"id":1,"pow":"a"},{"pow":"b","id":2}]`: `[{"id":1},{"id":2}]`,
		`[{"id":1},3,{"id":2,"pow":"b"}]`:         `[{"id":1},3,{"id":2}]`,
	} {
		l := scan(t, in)
		if got := string(rpcline.AppendStripped(nil, []byte(in), l)); got != want {
			t.Errorf("strip %s = %s, want %s", in, got, want)
		}
	}
}

func TestNestedPowIsNotTheStamp(t *testing.T) {
	l := scan(t, `{"method":"m","params":[{"pow":"x"},"\"pow\":1"],"id":{"pow":2}}`)
	if o := l.Objects[0]; o.StampCount != 0 || string(o.Method) != `"m"` || string(o.ID) != `{"pow":2}` {
		t.Fatalf("nested pow taken for the stamp: %+v", o)
	}
}

func TestDuplicates(t *testing.T) {
	l := scan(t, `{"pow":"a","pow":"b"}`)
	if l.Objects[0].StampCount != 2 {
		t.Fatalf("StampCount %d", l.Objects[0].StampCount)
	}
	for _, in := range []string{`{"method":"a","method":"b"}`, `{"id":1,"i\u0064":2}`} {
		if l := scan(t, in); l.Objects[0].Duplicate == "" {
			t.Errorf("%s: duplicate not reported", in)
		}
	}
}

func TestInsertThenStripRestores(t *testing.T) {
	for _, in := range []string{
		`{}`, `{ }`, `{"a":1}`, `{"a":1 }`, " \t{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":0}\r",
		`[{"a":1},{},{ "b" : [ ] }]`, `[{"a":1}, 5, "s"]`,
	} {
		l := scan(t, in)
		stamps := make([]string, len(l.Objects))
		for i := range stamps {
			stamps[i] = "1:2:3:x:4:h:5"
		}
		stamped := rpcline.AppendWithStamps(nil, []byte(in), l, "pow", stamps)
		if !json.Valid(stamped) {
			t.Fatalf("stamped %q is not JSON: %s", in, stamped)
		}
		l2 := scan(t, string(stamped))
		for i, o := range l2.Objects {
			if o.IsObject && (o.StampCount != 1 || string(o.Stamp) != `"1:2:3:x:4:h:5"`) {
				t.Fatalf("element %d of %s: %+v", i, stamped, o)
			}
		}
		if got := string(rpcline.AppendStripped(nil, stamped, l2)); got != in {
			t.Fatalf("round trip %q -> %s -> %q", in, stamped, got)
		}
	}
}

func TestRejectsInvalidJSON(t *testing.T) {
	for _, in := range []string{
		``, ` `, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`,
		`{"a":tru}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a":"\u12"}`, `{} {}`, `{"a":1}x`, "{\"a\":\"\xff\"}",
		`{'a':1}`, `{a:1}`, strings.Repeat("[", 600) + strings.Repeat("]", 600),
	} {
		var l rpcline.Line
		if err := rpcline.Scan([]byte(in), "pow", &l); err == nil {
			t.Errorf("Scan(%q) accepted invalid JSON", in)
		}
	}
}

func FuzzScanAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"pow":"x"}`, `[{"pow":"y"},{}]`, `"s"`, `{"a":[1,2,{"b":null}]}`, `{"a":"\u00e9"}`, `1e5`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var l rpcline.Line
		err := rpcline.Scan([]byte(in), "pow", &l)
		if valid := json.Valid([]byte(in)); valid != (err == nil) {
			// Scan is stricter than encoding/json in two documented ways:
			// strings must be valid UTF-8, and nesting is bounded.
			if !utf8.ValidString(in) || strings.Count(in, "[")+strings.Count(in, "{") > rpcline.MaxDepth {
				return
			}
			t.Fatalf("Scan(%q) error %v, but json.Valid = %v", in, err, valid)
		}
		if err != nil {
			return
		}
		stripped := rpcline.AppendStripped(nil, []byte(in), &l)
		if !json.Valid(stripped) {
			t.Fatalf("stripping %q gave invalid JSON %q", in, stripped)
		}
		checkScannedStrings(t, in, &l)
	})
}

// checkScannedStrings: ScannedStringValue with the escapes Scan recorded
// says what RawStringValue says of each object's method and stamp.
func checkScannedStrings(t *testing.T, in string, l *rpcline.Line) {
	t.Helper()
	for i := range l.Objects {
		o := &l.Objects[i]
		for _, v := range []struct {
			raw     []byte
			escaped bool
		}{{o.Method, o.MethodEscaped}, {o.Stamp, o.StampEscaped}} {
			want, wantOK := rpcline.RawStringValue(v.raw)
			got, gotOK := rpcline.ScannedStringValue(v.raw, v.escaped)
			if gotOK != wantOK || gotOK && string(got) != string(want) {
				t.Fatalf("%q, object %d, value %q: ScannedStringValue %q, %v; RawStringValue %q, %v",
					in, i, v.raw, got, gotOK, want, wantOK)
			}
		}
	}
}

// TestScannedStringValue checks the recorded escapes on values of every
// kind, after keys with and without escapes.
func TestScannedStringValue(t *testing.T) {
	for _, in := range []string{
		`{"method":"a","pow":"b"}`,
		`{"method":"a\"b","pow":"c\u0041"}`,
		`{"meth\u006fd":"plain","p\u006fw":"plain"}`,
		`{"meth\u006fd":1,"p\u006fw":{"x":"\n"}}`,
		`[{"method":["\t"]},{"method":"","pow":""},{"pow":null,"method":true}]`,
		`{"method":"x","method":"y\\"}`,
	} {
		var l rpcline.Line
		if err := rpcline.Scan([]byte(in), "pow", &l); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		checkScannedStrings(t, in, &l)
	}
}

func TestScanLimitStopsAtMaxBatch(t *testing.T) {
	var l rpcline.Line
	if err := rpcline.ScanLimit([]byte(`[1,2]`), "pow", 2, &l); err != nil || len(l.Objects) != 2 {
		t.Fatalf("a batch at the limit: %v, %d objects", err, len(l.Objects))
	}
	err := rpcline.ScanLimit([]byte(`[1,2,{"a":`), "pow", 2, &l)
	if !errors.Is(err, rpcline.ErrBatchTooLarge) || errors.Is(err, rpcline.ErrSyntax) {
		t.Fatalf("a batch over the limit (and truncated past it): %v, want ErrBatchTooLarge only", err)
	}
	if len(l.Objects) > 2 {
		t.Fatalf("%d objects kept past the limit", len(l.Objects))
	}
	if err := rpcline.ScanLimit([]byte(`{"a":[1,2,3,4]}`), "pow", 2, &l); err != nil {
		t.Fatalf("arrays inside an object are not batches: %v", err)
	}
}
