package payment

import (
	"strconv"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ledger"
)

// refused is a method's refusal carrying a ledger reason, as the ledger's own
// refusals do, so that callers test both with errors.Is(err, ledger.ErrX).
func refused(r ledger.Reason, format string, args ...any) error {
	return jifu.Errorf(jifu.CodeConflict, "payment: %w: "+format, append([]any{r}, args...)...)
}

func itoa(i int) string { return strconv.Itoa(i) }
