package stamp_test

import (
	"testing"

	"github.com/electrum-hashcash/electrum-hashcash/internal/stamp"
)

// TestReasonProperties pins the sets a client and a verifier act on: which
// refusals re-minting cures, which count toward max_rejections, which
// carry the method's price and which close the connection.
func TestReasonProperties(t *testing.T) {
	type props struct{ curable, strike, forgedStrike, movingStrike, priced, closes bool }
	want := map[stamp.Reason]props{
		stamp.ReasonMissing:         {strike: true, forgedStrike: true, priced: true},
		stamp.ReasonMalformed:       {strike: true, forgedStrike: true, movingStrike: true, priced: true},
		stamp.ReasonInsufficient:    {curable: true, forgedStrike: true, priced: true},
		stamp.ReasonExpired:         {curable: true, priced: true},
		stamp.ReasonFuture:          {curable: true, priced: true},
		stamp.ReasonWrongResource:   {curable: true, priced: true},
		stamp.ReasonReplayed:        {curable: true, priced: true},
		stamp.ReasonBusy:            {curable: true, priced: true},
		stamp.ReasonBatch:           {curable: true, priced: true},
		stamp.ReasonTooLarge:        {strike: true, forgedStrike: true, movingStrike: true},
		stamp.ReasonInvalidRequest:  {strike: true, forgedStrike: true, movingStrike: true},
		stamp.ReasonParse:           {strike: true, forgedStrike: true, movingStrike: true},
		stamp.ReasonReadTimeout:     {closes: true},
		stamp.ReasonConnectionLimit: {closes: true},
		stamp.ReasonInternal:        {closes: true},
	}
	for r, w := range want {
		got := props{r.Curable(), r.Strike(false, false), r.Strike(true, false), r.Strike(false, true), r.Priced(), r.ClosesConnection()}
		if got != w {
			t.Errorf("%s: got %+v, want %+v", r, got, w)
		}
		if !r.Known() {
			t.Errorf("%s is not Known", r)
		}
	}
	for _, r := range []stamp.Reason{"", "nonsense"} {
		if r.Known() || r.Curable() || r.Strike(true, false) || r.Priced() || r.ClosesConnection() {
			t.Errorf("%q has a property", r)
		}
	}
}
