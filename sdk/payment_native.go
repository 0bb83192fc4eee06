//go:build !wasip1

package sdk

import "github.com/jifu-open/jifu/host/abi"

// Compiled natively there is no platform to ask the user: the payment
// functions answer unavailable, so an app's tests see how it handles a
// payment it cannot start.
func hostPaymentCreate(_, _ []byte) int32 { return abi.ErrUnavailable }
func hostPaymentGet(_, _ []byte) int32    { return abi.ErrUnavailable }
func hostPaymentRefund(_, _ []byte) int32 { return abi.ErrUnavailable }
