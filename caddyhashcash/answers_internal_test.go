package caddyhashcash

import (
	"strings"
	"testing"
)

// TestAnswerLinesCountsAnswersOnly: answers are counted, notifications
// (in either spacing) are not, however the stream is cut into writes.
func TestAnswerLinesCountsAnswersOnly(t *testing.T) {
	stream := `{"jsonrpc":"2.0","result":"x","id":1}` + "\n" +
		`{"jsonrpc": "2.0", "method": "blockchain.headers.subscribe", "params": [{"height": 5}]}` + "\n" +
		`{"jsonrpc":"2.0","error":{"code":1,"message":"unknown method \"x\""},"id":2}` + "\n" +
		`{"jsonrpc":"2.0","method":"blockchain.scripthash.subscribe","params":["ab","cd"]}` + "\n" +
		`{"jsonrpc":"2.0","result":"` + strings.Repeat("f", 200) + `","id":3}` + strings.Repeat(" ", 700) + "\n" +
		`[{"jsonrpc":"2.0","result":1,"id":4},{"jsonrpc":"2.0","result":2,"id":5}]` + "\n"
	const want = 4 // ids 1, 2, 3 and the batch
	for cut1 := 0; cut1 <= len(stream); cut1 += 7 {
		for cut2 := cut1; cut2 <= len(stream); cut2 += 13 {
			var a answerLines
			got := a.count([]byte(stream[:cut1])) + a.count([]byte(stream[cut1:cut2])) + a.count([]byte(stream[cut2:]))
			if got != want {
				t.Fatalf("cut at %d and %d: %d answers, want %d", cut1, cut2, got, want)
			}
		}
	}
	var a answerLines
	for i := range len(stream) {
		if n := a.count([]byte(stream[i : i+1])); n > 0 && stream[i] != '\n' {
			t.Fatalf("an answer counted at byte %d, not a line feed", i)
		}
	}
}

// TestAnswerLinesSkip: lines that began while nothing was awaited are not
// answers, even if they end once something is.
func TestAnswerLinesSkip(t *testing.T) {
	var a answerLines
	a.skip([]byte(`{"jsonrpc":"2.0","result":"late",`))
	if n := a.count([]byte(`"id":9}` + "\n" + `{"jsonrpc":"2.0","result":1,"id":1}` + "\n")); n != 1 {
		t.Fatalf("%d answers, want 1: the line begun while skipping is not one", n)
	}
	a.skip([]byte(`{"jsonrpc":"2.0","method":"m","params":[]}` + "\n"))
	if n := a.count([]byte(`{"jsonrpc":"2.0","result":1,"id":2}` + "\n")); n != 1 {
		t.Fatalf("%d answers after a skipped whole line, want 1", n)
	}
}
