package tracing_test

import (
	"fmt"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/tracing"
)

// Which of four instances assembles a trace: every instance computes the
// same answer from the trace id alone, and one instance takes everything.
func ExamplePartition() {
	id, _ := events.ParseTraceID("0af7651916cd43dd8448eb211c80319c")
	p := tracing.Partition(id, 4)
	fmt.Println(p >= 0 && p < 4, tracing.Partition(id, 1))
	// Output: true 0
}
