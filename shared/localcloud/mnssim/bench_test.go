package mnssim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/mnssim"
)

// BenchmarkReceiveWithDelayedBacklog sends, receives and deletes one message
// per op while the queue also holds a backlog of delayed messages, as a
// launch's poll queue does (one delayed poll per install task): the cost of
// a receive must not grow with the backlog.
//
//	go test -run '^$' -bench ReceiveWithDelayedBacklog ./shared/localcloud/mnssim
func BenchmarkReceiveWithDelayedBacklog(b *testing.B) {
	for _, delayed := range []int{0, 1000, 10000, 30000} {
		b.Run(fmt.Sprintf("delayed=%d", delayed), func(b *testing.B) {
			s := mnssim.New(mnssim.Options{})
			s.CreateQueue("q")
			for i := range delayed {
				if _, err := s.Send("q", fmt.Sprint("delayed-", i), time.Hour, 8); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.Send("q", fmt.Sprint("now-", i), 0, 8); err != nil {
					b.Fatal(err)
				}
				msgs, err := s.Receive(ctx, "q", 16, time.Minute, 0)
				if err != nil || len(msgs) != 1 {
					b.Fatalf("receive: %d messages, %v", len(msgs), err)
				}
				if err := s.Delete("q", msgs[0].ReceiptHandle); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
