package main

import (
	"slices"
	"testing"
)

func TestSplitAddresses(t *testing.T) {
	got := splitAddresses("a,b\n# comment\n c \t d,,e # trailing\r\n")
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := splitAddresses(""); len(got) != 0 {
		t.Fatalf("empty input gave %q", got)
	}
}
