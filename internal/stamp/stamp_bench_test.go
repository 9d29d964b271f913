package stamp_test

import (
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// BenchmarkParseKnown measures parsing the stamp text of a request, as the
// verifier does for every request.
func BenchmarkParseKnown(b *testing.B) {
	const resource = "electrum.example.org:50002"
	text := []byte("1:131072:1800000000:00112233445566778899aabbccddeeff:123456:" + resource)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stamp.ParseKnown(text, resource); err != nil {
			b.Fatal(err)
		}
	}
}
